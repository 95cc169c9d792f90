package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/dfp2p/dfp2p/daemon"
)

func TestMain(m *testing.M) {
	// The in-process peer's libp2p host leaves these behind (as in package
	// daemon's tests).
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreTopFunction("github.com/libp2p/go-libp2p/p2p/transport/quicreuse.(*reuse).gc"),
		goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"))
}

// fakeDaemon answers POST /api/v1/fetch with body, declaring length and
// sending sum (and errMsg) as trailers.
func fakeDaemon(t *testing.T, body string, length int, sum, errMsg string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/fetch" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Trailer", daemon.TrailerSHA256+", "+daemon.TrailerError)
		w.Header().Set(daemon.HeaderTask, strings.Repeat("a", 64))
		w.Header().Set(daemon.HeaderLength, strconv.Itoa(length))
		w.WriteHeader(200)
		w.Write([]byte(body))
		w.Header().Set(daemon.TrailerSHA256, sum)
		if errMsg != "" {
			w.Header().Set(daemon.TrailerError, errMsg)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func hexSHA(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func TestGetWritesOnlyVerifiedFiles(t *testing.T) {
	body := "hello, swarm"
	cases := []struct {
		name   string
		length int
		sum    string
		errMsg string
		digest string
		ok     bool
	}{
		{"good", len(body), hexSHA(body), "", "", true},
		{"good with digest", len(body), hexSHA(body), "", "sha256:" + hexSHA(body), true},
		{"wrong sum", len(body), hexSHA("other"), "", "", false},
		{"no sum", len(body), "", "", "", false},
		{"short", len(body) + 5, hexSHA(body), "", "", false},
		{"error trailer", len(body), "", "piece 3 failed", "", false},
		{"digest mismatch", len(body), hexSHA(body), "", "sha256:" + strings.Repeat("0", 64), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			url := fakeDaemon(t, body, c.length, c.sum, c.errMsg)
			dir := t.TempDir()
			out := filepath.Join(dir, "out")
			_, err := Get(context.Background(), Options{Daemon: url}, Request{URL: "http://o/f", Digest: c.digest}, out, nil)
			if c.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, c.ok)
			}
			entries, _ := os.ReadDir(dir)
			if c.ok {
				b, _ := os.ReadFile(out)
				if string(b) != body || len(entries) != 1 {
					t.Fatalf("output %q, dir %v", b, entries)
				}
			} else if len(entries) != 0 {
				t.Fatalf("failed get left %v", entries)
			}
		})
	}
}

func TestDaemonErrorsPassThrough(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(404)
		w.Write([]byte(`{"error":"origin returned 404 Not Found for http://o/f","origin_status":404}`))
	}))
	defer srv.Close()
	_, err := Open(context.Background(), Options{Daemon: srv.URL}, Request{URL: "http://o/f"})
	e, ok := err.(*Error)
	if !ok || e.Status != 404 || !strings.Contains(e.Msg, "404") {
		t.Fatalf("err = %#v", err)
	}
	if _, err := Open(context.Background(), Options{Daemon: "ftp://x"}, Request{URL: "http://o/f"}); err == nil {
		t.Fatal("bad daemon address accepted")
	}
}

func TestGetRefusesBadOutput(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"", filepath.Join(dir, "missing", "f"), dir} {
		if _, err := Get(context.Background(), Options{Daemon: "http://127.0.0.1:1"}, Request{URL: "http://o/f"}, p, nil); err == nil {
			t.Errorf("%q accepted", p)
		}
	}
}

// An output directory that cannot take the file fails before the download
// starts (the daemon is never asked), with a message naming the directory.
func TestGetChecksOutputBeforeFetching(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	asked := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { asked = true }))
	defer srv.Close()
	for path, want := range map[string]string{
		filepath.Join(dir, "missing", "f"): "does not exist",
		filepath.Join(file, "f"):           "is not a directory",
		dir:                                "is a directory",
	} {
		_, err := Get(context.Background(), Options{Daemon: srv.URL}, Request{URL: "http://o/f"}, path, nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", path, err, want)
		}
	}
	if asked {
		t.Error("the daemon was asked to fetch for an unusable output path")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}
