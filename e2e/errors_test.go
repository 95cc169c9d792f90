package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Failed gets exit non-zero within seconds, say why in one line, and leave no
// output — through a daemon, through an in-process peer with a tracker, and
// straight from the origin.
func TestGetFailures(t *testing.T) {
	e := newEnv(t)
	f := e.file("ok.bin", 3<<20)
	tr := e.tracker()
	d := e.daemons(1, tr)[0]
	modes := map[string][]string{
		"daemon":     {"--daemon", d.URL()},
		"in-process": {"--join", tr.JoinToken()},
		"origin":     {},
	}
	cases := []struct {
		name, url string
		extra     []string
		want      string
	}{
		{"404", e.origin.URL + "/files/missing.bin", nil, "404"},
		{"500", e.origin.URL + "/status/500", nil, "500"},
		{"digest", e.origin.FileURL(f.Name), []string{"--digest", "sha256:" + strings.Repeat("ab", 32)}, "digest"},
		{"scheme", "ftp://example.invalid/file", nil, "unsupported"},
	}
	for mode, args := range modes {
		for _, c := range cases {
			t.Run(mode+"/"+c.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				out := e.outPath(mode + "-" + c.name)
				r := e.c.Get(ctx, c.url, out, append(append([]string{}, args...), c.extra...)...)
				if r.ExitCode == 0 {
					t.Fatalf("exit 0, want failure")
				}
				msg := strings.TrimSpace(r.Stderr)
				if strings.Contains(msg, "\n") {
					t.Errorf("error is not one line: %q", msg)
				}
				if !strings.Contains(strings.ToLower(msg), c.want) {
					t.Errorf("error %q does not mention %q", msg, c.want)
				}
				if r.Elapsed > 10*time.Second {
					t.Errorf("took %s", r.Elapsed)
				}
				noOutput(t, out)
			})
		}
	}
	// The daemon is still alive and serving after all that.
	if !strings.Contains(fetchText(t, d.URL()+"/healthz"), "ok") {
		t.Fatal("daemon unhealthy after bad requests")
	}
}

func fetchText(t *testing.T, url string) string {
	t.Helper()
	return textWith(t, http.DefaultClient, url)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
