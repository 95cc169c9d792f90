package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/e2e/cluster"
	"github.com/dfp2p/dfp2p/tracker"
)

// TestBadInput is the bad-input corpus against real processes: a tracker and
// a daemon of a closed cluster, hit with malformed CLI arguments, API and
// proxy requests, hostile config files and hostile libp2p streams from a
// member and from an outsider. Each case must give one clear error line and
// the right exit code or HTTP status, or a stream reset within the
// protocol's deadline; afterwards nothing on disk has changed, the goroutine
// counts are back to their baseline and a good get still works.
//
// Cases covered elsewhere are not repeated: origin 404/500, digest mismatch
// and ftp:// (TestGetFailures), the proxy's path and digest grammar
// (proxy.TestBadInput), config parsing (cmd/dfp2p TestParseConfigFile,
// TestConfigTypes), frame decoding (make fuzz).
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	good := e.file("good.bin", 3<<20)
	goodURL := e.origin.FileURL(good.Name)
	tr := e.tracker()
	d := e.daemons(1, tr)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	// A good get first: the task exists, the seed and daemon hold pieces.
	goodGet := func(name string) {
		t.Helper()
		out := e.outPath(name)
		if r := e.c.Get(ctx, goodURL, out, "--daemon", d.URL()); r.ExitCode != 0 {
			t.Fatalf("good get: exit %d: %s", r.ExitCode, r.Stderr)
		}
		if sha256File(t, out) != good.SHA256 {
			t.Fatal("good get: output corrupt")
		}
	}
	goodGet("good-before")
	before := map[string]dirState{d.Name: snapshot(t, d.DataDir), tr.Name: snapshot(t, tr.DataDir)}

	t.Run("cli", func(t *testing.T) { badCLI(t, e, d, goodURL, good) })
	t.Run("api", func(t *testing.T) { badAPI(t, d, goodURL) })
	t.Run("proxy", func(t *testing.T) { badProxy(t, d) })
	t.Run("slow-http", func(t *testing.T) { slowHTTP(t, d) })
	t.Run("config", func(t *testing.T) { badConfig(t, e) })
	t.Run("protocol", func(t *testing.T) { badProtocol(t, e, tr, d, goodURL) })

	// Nothing on disk changed but the metadata database, logs and the one
	// good task the flood case fetched.
	floodTask, _ := content.TaskIDFor(e.origin.FileURL("flood.bin"), "", "", content.DefaultQueryFilter)
	for _, p := range []*cluster.Proc{d, tr} {
		if diff := before[p.Name].diff(snapshot(t, p.DataDir), string(floodTask)); diff != "" {
			t.Errorf("%s data dir changed by bad input:\n%s", p.Name, diff)
		}
		if !p.Healthy() {
			t.Errorf("%s is not healthy after the corpus", p.Name)
		}
	}
	goodGet("good-after")
}

// --- CLI ---------------------------------------------------------------

func badCLI(t *testing.T, e *env, d *cluster.Proc, goodURL string, good cluster.File) {
	outDir := filepath.Join(e.dir, "cli")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// An outside file a planted symlink points at: it must never be written.
	victim := filepath.Join(e.dir, "victim")
	if err := os.WriteFile(victim, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	roDir := filepath.Join(e.dir, "ro")
	_ = os.MkdirAll(roDir, 0o755)
	if err := exec.Command("mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", roDir).Run(); err != nil {
		t.Logf("read-only tmpfs not available (%v): the read-only case checks a chmod 0555 dir, which root may still write", err)
		_ = os.Chmod(roDir, 0o555)
	} else {
		t.Cleanup(func() { _ = exec.Command("umount", roDir).Run() })
	}
	hex64 := strings.Repeat("ab", 32)
	daemonArgs := []string{"--daemon", d.URL()}
	type cliCase struct {
		name string
		url  string
		out  string // relative to outDir unless absolute
		args []string
		code int
		want string // in the one error line (lower case)
		// setup runs before, check after (for cases that succeed).
		setup func(t *testing.T, out string)
		check func(t *testing.T, out string)
	}
	cases := []cliCase{
		{name: "url/unparsable", url: "http://[::1", code: 2, want: "invalid url"},
		{name: "url/no-scheme", url: "example.com/x", code: 2, want: "missing scheme"},
		{name: "url/file-scheme", url: "file:///etc/passwd", code: 2, want: "unsupported url scheme"},
		{name: "url/gopher", url: "gopher://example.invalid/", code: 2, want: "unsupported url scheme"},
		{name: "url/no-host", url: "http:///x", code: 2, want: "missing host"},
		{name: "url/space-in-host", url: "http://a b/", code: 2, want: "invalid url"},
		{name: "url/crlf", url: "http://x/\r\nHost: y", code: 2, want: "invalid control character"},
		{name: "header/crlf", args: []string{"-H", "X-A: b\r\nEvil: 1"}, code: 2, want: "control characters"},
		{name: "header/lf-only", args: []string{"-H", "X-A: b\nEvil: 1"}, code: 2, want: "control characters"},
		{name: "header/no-colon", args: []string{"-H", "just words"}, code: 2, want: "want 'name: value'"},
		{name: "header/bad-name", args: []string{"-H", "Bad Name: x"}, code: 2, want: "not a valid token"},
		{name: "header/oversized", args: []string{"-H", "X-Big: " + strings.Repeat("a", 100<<10)}, code: 2, want: "headers larger than"},
		{name: "digest/md5", args: []string{"--digest", "md5:" + hex64[:32]}, code: 2, want: "invalid digest"},
		{name: "digest/short", args: []string{"--digest", "sha256:" + hex64[:63]}, code: 2, want: "invalid digest"},
		{name: "digest/long", args: []string{"--digest", "sha256:" + hex64 + "ab"}, code: 2, want: "invalid digest"},
		{name: "digest/non-hex", args: []string{"--digest", "sha256:" + strings.Repeat("zz", 32)}, code: 2, want: "invalid digest"},
		{name: "digest/no-algorithm", args: []string{"--digest", hex64}, code: 2, want: "invalid digest"},
		{name: "daemon/bad-address", args: []string{"--daemon", "ftp://x"}, code: 2, want: "--daemon"},
		{name: "join/garbage", args: []string{"--join", "dfp2p-join-v1.garbage"}, code: 2, want: "--join"},
		{name: "out/missing", out: "", code: 2, want: "missing -o"},
		{name: "out/no-such-dir", out: "nope/x", code: 1, want: "does not exist"},
		{name: "out/parent-is-file", out: "afile/x", code: 1, want: "is not a directory",
			setup: func(t *testing.T, _ string) { _ = os.WriteFile(filepath.Join(outDir, "afile"), []byte("f"), 0o644) }},
		{name: "out/is-dir", out: "adir", code: 1, want: "is a directory",
			setup: func(t *testing.T, out string) { _ = os.MkdirAll(out, 0o755) }},
		{name: "out/read-only-dir", out: filepath.Join(roDir, "x"), code: 1, want: "cannot write to output directory"},
		// -O is the user's own path: a relative path with .. is allowed and
		// resolves like any path; the file lands exactly there.
		{name: "out/dotdot-relative", out: "sub/../dotdot.bin", code: 0,
			setup: func(t *testing.T, _ string) { _ = os.MkdirAll(filepath.Join(outDir, "sub"), 0o755) },
			check: func(t *testing.T, _ string) { checkFile(t, filepath.Join(outDir, "dotdot.bin"), good.SHA256) }},
		// A symlink at -O is replaced by the file (rename), never written
		// through: the file it pointed at is untouched.
		{name: "out/symlink-to-outside", out: "link.bin", code: 0,
			setup: func(t *testing.T, out string) { mustSymlink(t, victim, out) },
			check: func(t *testing.T, out string) {
				checkFile(t, out, good.SHA256)
				if fi, _ := os.Lstat(out); fi.Mode()&fs.ModeSymlink != 0 {
					t.Error("output is still a symlink")
				}
				if b, _ := os.ReadFile(victim); string(b) != "precious" {
					t.Errorf("symlink target was written: %q", b)
				}
			}},
		{name: "out/dangling-symlink", out: "dangling.bin", code: 0,
			setup: func(t *testing.T, out string) { mustSymlink(t, filepath.Join(e.dir, "nowhere", "x"), out) },
			check: func(t *testing.T, out string) { checkFile(t, out, good.SHA256) }},
		// Planted files named like our temp files are never opened (the
		// temp name is random and created with O_EXCL).
		{name: "out/planted-temp-symlinks", out: "planted.bin", code: 0,
			setup: func(t *testing.T, out string) {
				for i := range 20 {
					mustSymlink(t, victim, filepath.Join(outDir, fmt.Sprintf(".planted.bin.dfp2p-%d", i)))
				}
			},
			check: func(t *testing.T, out string) {
				checkFile(t, out, good.SHA256)
				if b, _ := os.ReadFile(victim); string(b) != "precious" {
					t.Errorf("planted symlink target was written: %q", b)
				}
				left, _ := filepath.Glob(filepath.Join(outDir, ".planted.bin.dfp2p-*"))
				if len(left) != 20 {
					t.Errorf("planted files: %d left, want the 20 planted", len(left))
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			url := c.url
			if url == "" {
				url = goodURL
			}
			out := c.out
			if out == "" {
				out = "o-" + strings.ReplaceAll(c.name, "/", "-")
			}
			if !filepath.IsAbs(out) {
				out = filepath.Join(outDir, out)
			}
			if c.setup != nil {
				c.setup(t, out)
			}
			listBefore := listDir(t, outDir)
			args := append([]string{"get", url}, c.args...)
			if !containsFlag(c.args, "--daemon") {
				args = append(args, daemonArgs...)
			}
			if c.name != "out/missing" {
				args = append(args, "-O", out)
			}
			args = append(args, "--no-progress")
			cctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(cctx, bin, args...)
			cmd.Dir = outDir
			code, msg := runExit(t, cmd)
			if code != c.code {
				t.Errorf("exit %d, want %d", code, c.code)
			}
			if c.code != 0 {
				if strings.Contains(msg, "\n") || msg == "" {
					t.Errorf("error is not one line: %q", truncateMsg(msg))
				}
				if !strings.Contains(strings.ToLower(msg), c.want) {
					t.Errorf("error %q does not mention %q", truncateMsg(msg), c.want)
				}
				if diff := diffLists(listBefore, listDir(t, outDir)); diff != "" {
					t.Errorf("output dir changed by a failed get: %s", diff)
				}
			}
			if c.check != nil {
				c.check(t, out)
			}
			if left, _ := filepath.Glob(filepath.Join(outDir, ".*.dfp2p-[0-9]*[0-9]")); len(left) > 0 {
				var real []string
				for _, l := range left {
					if !strings.Contains(l, ".planted.bin.") {
						real = append(real, l)
					}
				}
				if len(real) > 0 {
					t.Errorf("temp files left: %v", real)
				}
			}
		})
	}
}

func containsFlag(args []string, f string) bool {
	for _, a := range args {
		if a == f {
			return true
		}
	}
	return false
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func checkFile(t *testing.T, path, sum string) {
	t.Helper()
	if got := sha256File(t, path); got != sum {
		t.Errorf("%s: sha256 %s, want %s", path, got, sum)
	}
}

func truncateMsg(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

// listDir names the entries of dir (one level, with their sizes).
func listDir(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, e := range ents {
		fi, err := e.Info()
		if err == nil {
			out[e.Name()] = fi.Size()
		}
	}
	return out
}

func diffLists(a, b map[string]int64) string { return strings.Join(diffMaps(a, b, ""), ", ") }

// diffMaps names the keys of b that are new or changed against a, and those
// of a that b lacks; keys containing ignore (when set) are left out of the
// first two.
func diffMaps[V comparable](a, b map[string]V, ignore string) []string {
	var d []string
	for k, v := range b {
		if ignore != "" && strings.Contains(k, ignore) {
			continue
		}
		if w, ok := a[k]; !ok {
			d = append(d, "new "+k)
		} else if v != w {
			d = append(d, "changed "+k)
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			d = append(d, "removed "+k)
		}
	}
	return d
}

// --- daemon API --------------------------------------------------------

func badAPI(t *testing.T, d *cluster.Proc, goodURL string) {
	hex64 := strings.Repeat("ab", 32)
	fetch := func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	}
	for _, c := range []struct {
		name, method, path, body string
		status                   int
		want                     string
	}{
		{"fetch/not-json", "POST", "/api/v1/fetch", "{not json", 400, "bad fetch request"},
		{"fetch/unknown-field", "POST", "/api/v1/fetch", `{"url":"` + goodURL + `","evil":1}`, 400, "unknown field"},
		{"fetch/wrong-type", "POST", "/api/v1/fetch", `{"url":12}`, 400, "bad fetch request"},
		{"fetch/oversized-body", "POST", "/api/v1/fetch", `{"url":"` + goodURL + `","tag":"` + strings.Repeat("a", 2<<20) + `"}`, 400, "bad fetch request"},
		{"fetch/file-scheme", "POST", "/api/v1/fetch", fetch(map[string]any{"url": "file:///etc/passwd"}), 400, "unsupported url scheme"},
		{"fetch/header-crlf", "POST", "/api/v1/fetch", fetch(map[string]any{"url": goodURL, "header": map[string][]string{"X-A": {"b\r\nEvil: 1"}}}), 400, "control characters"},
		{"fetch/header-nul", "POST", "/api/v1/fetch", fetch(map[string]any{"url": goodURL, "header": map[string][]string{"X-A": {"b\x00c"}}}), 400, "control characters"},
		{"fetch/header-bad-name", "POST", "/api/v1/fetch", fetch(map[string]any{"url": goodURL, "header": map[string][]string{"X A\r\n": {"b"}}}), 400, "not a valid token"},
		{"fetch/header-oversized", "POST", "/api/v1/fetch", fetch(map[string]any{"url": goodURL, "header": map[string][]string{"X-Big": {strings.Repeat("a", 100<<10)}}}), 400, "larger than"},
		{"fetch/digest-md5", "POST", "/api/v1/fetch", fetch(map[string]any{"url": goodURL, "digest": "md5:" + hex64[:32]}), 400, "invalid digest"},
		{"fetch/digest-traversal", "POST", "/api/v1/fetch", fetch(map[string]any{"url": goodURL, "digest": "sha256:../../../etc/passwd"}), 400, "invalid digest"},
		{"fetch/get-method", "GET", "/api/v1/fetch", "", 405, ""},
		// ServeMux cleans the path and redirects: nothing is served.
		{"tasks/traversal", "GET", "/api/v1/tasks/../../meta.db", "", 307, ""},
		{"tasks/encoded-traversal", "GET", "/api/v1/tasks/..%2f..%2fmeta.db", "", 400, "invalid task id"},
		{"tasks/dotdot", "GET", "/api/v1/tasks/..", "", 307, ""},
		{"tasks/short", "GET", "/api/v1/tasks/abc", "", 400, "invalid task id"},
		{"tasks/unknown", "GET", "/api/v1/tasks/" + hex64, "", 404, "unknown task"},
		{"raw/traversal", "GET", "/../../etc/passwd", "", 307, ""},
		{"pprof/no-token", "GET", "/debug/pprof/goroutine", "", 401, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, body := rawHTTP(t, d.API, c.method, c.path, "Content-Type: application/json\r\n", c.body)
			t.Logf("%d %s", status, truncateMsg(strings.TrimSpace(body)))
			if status != c.status {
				t.Errorf("status %d, want %d", status, c.status)
			}
			if c.want != "" && !strings.Contains(strings.ToLower(body), c.want) {
				t.Errorf("body %q does not mention %q", truncateMsg(body), c.want)
			}
		})
	}
	// Header injection and oversized headers on the API's own HTTP.
	for _, c := range []struct {
		name, head string
		status     int
	}{
		{"http/header-crlf-in-value", "X-A: b\rEvil: 1\r\n", 400},
		{"http/oversized-header", "X-Big: " + strings.Repeat("a", 2<<20) + "\r\n", 431},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, body := rawHTTP(t, d.API, "GET", "/healthz", c.head, "")
			t.Logf("%d %s", status, truncateMsg(strings.TrimSpace(body)))
			if status != c.status {
				t.Errorf("status %d, want %d", status, c.status)
			}
		})
	}
}

// HTTP slow loris on the daemon's API and proxy: headers that never end
// are cut by the header timeout (10 s), a fetch body that never ends by the
// body deadline (httpapi.BodyTimeout, 30 s, answered 400).
func slowHTTP(t *testing.T, d *cluster.Proc) {
	for _, c := range []struct {
		name, addr, partial, want string
		within                    time.Duration
	}{
		{"api/headers", d.API, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ", "", 10*time.Second + 10*time.Second},
		{"proxy/headers", d.Proxy, "GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: ", "", 10*time.Second + 10*time.Second},
		{"api/fetch-body", d.API, "POST /api/v1/fetch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"url\"", "400 Bad Request", 30*time.Second + 10*time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			conn, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			start := time.Now()
			if _, err := io.WriteString(conn, c.partial); err != nil {
				t.Fatal(err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(c.within + 10*time.Second))
			b, err := io.ReadAll(io.LimitReader(conn, 64<<10))
			el := time.Since(start)
			first, _, _ := strings.Cut(string(b), "\r\n")
			t.Logf("closed after %s (%v), first line %q", el.Round(time.Millisecond), err, first)
			if ne, ok := err.(net.Error); ok && ne.Timeout() || el > c.within {
				t.Errorf("held for %s, want the server to end it within %s", el.Round(time.Millisecond), c.within)
			}
			if c.want != "" && !strings.Contains(first, c.want) {
				t.Errorf("answer %q, want %q", first, c.want)
			}
		})
	}
}

// rawHTTP writes one HTTP/1.1 request by hand (so that nothing is
// sanitized on the way) and returns the status and up to 64 KiB of body.
func rawHTTP(t *testing.T, addr, method, path, head, body string) (int, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n%s", method, path, addr, head)
	if body != "" || method == "POST" {
		req += fmt.Sprintf("Content-Length: %d\r\n", len(body))
	}
	go func() { _, _ = io.WriteString(conn, req+"\r\n"+body) }()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, truncateMsg(path), err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(b)
}

// --- proxy -------------------------------------------------------------

// A representative handful of proxy.TestBadInput's cases against the real
// daemon's proxy, plus injection through a proxied (absolute-URI) request.
func badProxy(t *testing.T, d *cluster.Proc) {
	if d.Proxy == "" {
		t.Fatal("daemon runs no proxy")
	}
	hex64 := strings.Repeat("ab", 32)
	for _, c := range []struct {
		name, method, path, head string
		status                   int
	}{
		{"traversal", "GET", "/v2/../../etc/passwd", "", 400},
		{"encoded-traversal", "GET", "/v2/a/%2e%2e/%2e%2e/manifests/latest", "", 400},
		{"repo-traversal", "GET", "/v2/library/..%2f..%2fetc/blobs/sha256:" + hex64, "", 400},
		{"digest-traversal", "GET", "/v2/library/a/blobs/sha256:..%2f..%2f" + hex64[:58], "", 400},
		{"digest-md5", "GET", "/v2/library/a/blobs/md5:" + hex64[:32], "", 400},
		{"digest-short", "GET", "/v2/library/a/blobs/sha256:" + hex64[:10], "", 400},
		{"digest-non-hex", "GET", "/v2/library/a/blobs/sha256:" + strings.Repeat("zz", 32), "", 400},
		{"ns-injection", "GET", "/v2/a/manifests/latest?ns=evil.example%0d%0aX:1", "", 400},
		{"header-crlf", "GET", "/v2/", "X-A: b\rX-Evil: 1\r\n", 400},
		{"oversized-header", "GET", "/v2/", "X-Big: " + strings.Repeat("a", 2<<20) + "\r\n", 431},
		{"proxied-file-url", "GET", "file:///etc/passwd", "", 400},
		{"proxied-crlf-path", "GET", "http://127.0.0.1:1/a%0d%0aX-Evil:%201", "", 502},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, body := rawHTTP(t, d.Proxy, c.method, c.path, c.head, "")
			t.Logf("%d %s", status, truncateMsg(strings.TrimSpace(body)))
			if status != c.status {
				t.Errorf("status %d, want %d", status, c.status)
			}
		})
	}
}

// --- config --------------------------------------------------------------

// Hostile --config files at the start of daemon, tracker and get: exit 2
// with one line naming the file, quickly, and no data dir created.
func badConfig(t *testing.T, e *env) {
	dir := filepath.Join(e.dir, "configs")
	_ = os.MkdirAll(dir, 0o755)
	laughs := `a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]` + "\n"
	for i := range 8 {
		p, n := string(rune('a'+i)), string(rune('b'+i))
		laughs += n + ": &" + n + " [" + strings.TrimSuffix(strings.Repeat("*"+p+",", 9), ",") + "]\n"
	}
	files := []struct {
		name, body, want string
	}{
		{"huge", "a: " + strings.Repeat("x", 2<<20), "larger than"},
		{"billion-laughs", laughs, "excessive aliasing"},
		{"non-utf8", "data-dir: /tmp/\xff\xfe\n", "utf-8"},
		{"deeply-nested", "listen: " + strings.Repeat("[", 10000) + strings.Repeat("]", 10000), "config"},
		{"wrong-type-duration", "DURKEY: banana\n", "invalid duration"},
		{"wrong-type-list", "log-level: [debug]\n", "got a list"},
		{"wrong-type-map", "log-level: {a: 1}\n", "got a mapping"},
		{"not-a-mapping", "- a\n- b\n", "want a mapping"},
		{"unknown-key", "no-such-option: 1\n", "unknown key"},
		{"two-documents", "log-level: info\n---\nlog-level: debug\n", "more than one"},
		{"tabs", "log-level:\tinfo\n\t- x\n", "config"},
	}
	for _, role := range []string{"daemon", "tracker", "get"} {
		for _, f := range files {
			t.Run(role+"/"+f.name, func(t *testing.T) {
				path := filepath.Join(dir, f.name+".yaml")
				durKey := "gc-interval"
				if role == "get" {
					durKey = "timeout"
				}
				if err := os.WriteFile(path, []byte(strings.ReplaceAll(f.body, "DURKEY", durKey)), 0o644); err != nil {
					t.Fatal(err)
				}
				dataDir := filepath.Join(dir, role+"-"+f.name+"-data")
				args := []string{role, "--config", path}
				if role == "get" {
					args = append(args, "http://127.0.0.1:1/x", "-O", filepath.Join(dir, "out"))
				} else {
					args = append(args, "--data-dir", dataDir, "--api", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1")
				}
				runStartup(t, args, f.want)
				if _, err := os.Stat(dataDir); err == nil {
					t.Errorf("data dir %s created despite the bad config", dataDir)
				}
			})
		}
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"missing-file", []string{"daemon", "--config", filepath.Join(dir, "missing.yaml")}, "no such file"},
		{"directory", []string{"tracker", "--config", dir}, "is a directory"},
		{"device", []string{"get", "--config", "/dev/zero", "http://x/", "-O", filepath.Join(dir, "o")}, "larger than"},
	} {
		t.Run("file/"+c.name, func(t *testing.T) { runStartup(t, c.args, c.want) })
	}
}

func runStartup(t *testing.T, args []string, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	code, msg := runExit(t, exec.CommandContext(ctx, bin, args...))
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error is not one line: %q", truncateMsg(msg))
	}
	if !strings.Contains(strings.ToLower(msg), strings.ToLower(want)) {
		t.Errorf("error %q does not mention %q", truncateMsg(msg), want)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("took %s", time.Since(start))
	}
}

// --- protocols -----------------------------------------------------------

const (
	kadProtocol  = "/dfp2p/kad/1.0.0"
	exchangeProt = "/dfp2p/exchange/1.0.0"
	statusProt   = "/dfp2p/status/1.0.0"
	memberProt   = "/dfp2p/member/1.0.0"
	joinProt     = "/dfp2p/join/1.0.0"
)

// protoCase is one hostile stream. want is "reset" (the remote resets the
// stream), "refused" (protocol negotiation fails), or "answer:TEXT" (the
// remote answers with TEXT and closes). within bounds how long the remote
// may take; hold leaves the request unfinished (slow loris).
type protoCase struct {
	name    string
	target  string // "daemon" or "tracker"
	proto   protocol.ID
	payload []byte
	hold    bool
	member  bool
	want    string
	within  time.Duration
}

func frame(b []byte) []byte {
	var hdr [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(hdr[:], uint64(len(b)))
	return append(hdr[:n:n], b...)
}

func frameJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return frame(b)
}

func varint(n uint64) []byte {
	var hdr [binary.MaxVarintLen64]byte
	return append([]byte(nil), hdr[:binary.PutUvarint(hdr[:], n)]...)
}

func badProtocol(t *testing.T, e *env, tr, d *cluster.Proc, goodURL string) {
	task, err := content.TaskIDFor(goodURL, "", "", content.DefaultQueryFilter)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("no such piece"))
	unknownCID, _ := content.CIDFromSHA256(sum[:])
	ref := func(task string, idx int64, c cid.Cid) map[string]any {
		return map[string]any{"task": task, "index": idx, "cid": c}
	}
	pieces := func(refs ...map[string]any) []byte { return frameJSON(map[string]any{"pieces": refs}) }
	var tooMany []map[string]any
	for i := range 65 {
		tooMany = append(tooMany, ref(string(task), int64(i), unknownCID))
	}
	hex64 := strings.Repeat("cd", 32)
	const (
		quick     = 5 * time.Second
		exchIdle  = 15 * time.Second // exchange.DefaultServerIdleTimeout
		trackIdle = 10 * time.Second // the tracker's request read deadline
		memberIO  = 10 * time.Second // member.ioTimeout
		gateWait  = 5 * time.Second  // member.certWait
		dhtIdle   = time.Minute      // go-libp2p-kad-dht's stream idle timeout
		slack     = 10 * time.Second
	)
	cases := []protoCase{
		// exchange (piece protocol), from a member
		{name: "exchange/oversized-frame", target: "daemon", proto: exchangeProt, payload: varint(1 << 40), member: true, want: "reset", within: quick},
		{name: "exchange/frame-over-limit", target: "daemon", proto: exchangeProt, payload: append(varint(64<<10+1), 'x'), member: true, want: "reset", within: quick},
		{name: "exchange/truncated-frame", target: "daemon", proto: exchangeProt, payload: append(varint(100), []byte(`{"pieces"`)...), member: true, want: "reset", within: quick},
		{name: "exchange/empty-stream", target: "daemon", proto: exchangeProt, member: true, want: "reset", within: quick},
		{name: "exchange/garbage-json", target: "daemon", proto: exchangeProt, payload: frame([]byte("{not json at all")), member: true, want: "reset", within: quick},
		{name: "exchange/wrong-shape", target: "daemon", proto: exchangeProt, payload: frame([]byte(`{"pieces":"all of them"}`)), member: true, want: "reset", within: quick},
		{name: "exchange/no-pieces", target: "daemon", proto: exchangeProt, payload: pieces(), member: true, want: "reset", within: quick},
		{name: "exchange/too-many-pieces", target: "daemon", proto: exchangeProt, payload: pieces(tooMany...), member: true, want: "reset", within: quick},
		{name: "exchange/huge-index", target: "daemon", proto: exchangeProt, payload: pieces(ref(string(task), 1<<40, unknownCID)), member: true, want: "reset", within: quick},
		{name: "exchange/negative-index", target: "daemon", proto: exchangeProt, payload: pieces(ref(string(task), -1, unknownCID)), member: true, want: "reset", within: quick},
		{name: "exchange/traversal-task", target: "daemon", proto: exchangeProt, payload: pieces(ref("../../../etc", 0, unknownCID)), member: true, want: "reset", within: quick},
		{name: "exchange/unknown-cid", target: "daemon", proto: exchangeProt, payload: pieces(ref(string(task), 0, unknownCID)), member: true, want: "answer:not_found", within: quick},
		{name: "exchange/unknown-task", target: "daemon", proto: exchangeProt, payload: pieces(ref(hex64, 0, unknownCID)), member: true, want: "answer:not_found", within: quick},
		{name: "exchange/slow-loris", target: "daemon", proto: exchangeProt, payload: append(varint(200), []byte(`{"pie`)...), hold: true, member: true, want: "reset", within: exchIdle + slack},
		{name: "exchange/wrong-version", target: "daemon", proto: "/dfp2p/exchange/9.9.9", payload: pieces(ref(string(task), 0, unknownCID)), member: true, want: "refused", within: quick},
		{name: "exchange/seed-garbage", target: "tracker", proto: exchangeProt, payload: frame([]byte("\x00\x01\x02")), member: true, want: "reset", within: quick},
		// status
		{name: "status/garbage-json", target: "daemon", proto: statusProt, payload: frame([]byte("][")), member: true, want: "reset", within: quick},
		{name: "status/oversized-frame", target: "daemon", proto: statusProt, payload: varint(1 << 50), member: true, want: "reset", within: quick},
		{name: "status/traversal-task", target: "daemon", proto: statusProt, payload: frameJSON(map[string]string{"task": "../../meta.db"}), member: true, want: "reset", within: quick},
		{name: "status/unknown-task", target: "daemon", proto: statusProt, payload: frameJSON(map[string]string{"task": hex64}), member: true, want: "answer:not_found", within: quick},
		{name: "status/slow-loris", target: "daemon", proto: statusProt, payload: append(varint(100), []byte(`{"ta`)...), hold: true, member: true, want: "reset", within: exchIdle + slack},
		// tracker
		{name: "tracker/oversized-frame", target: "tracker", proto: tracker.ProtocolID, payload: varint(1<<20 + 1), member: true, want: "reset", within: quick},
		{name: "tracker/truncated-frame", target: "tracker", proto: tracker.ProtocolID, payload: append(varint(1000), []byte(`{"type":"reg`)...), member: true, want: "reset", within: quick},
		{name: "tracker/garbage-json", target: "tracker", proto: tracker.ProtocolID, payload: frame([]byte(`{"type":`)), member: true, want: "reset", within: quick},
		{name: "tracker/unknown-type", target: "tracker", proto: tracker.ProtocolID, payload: frameJSON(tracker.Request{Type: "format-disk"}), member: true, want: "answer:unknown request type", within: quick},
		{name: "tracker/register-file-url", target: "tracker", proto: tracker.ProtocolID, payload: frameJSON(tracker.Request{Type: tracker.TypeRegister, URL: "file:///etc/shadow"}), member: true, want: "answer:unsupported url scheme", within: quick},
		{name: "tracker/register-header-crlf", target: "tracker", proto: tracker.ProtocolID, payload: frameJSON(tracker.Request{Type: tracker.TypeRegister, URL: goodURL, Header: map[string][]string{"X-A": {"b\r\nEvil: 1"}}}), member: true, want: "answer:control characters", within: quick},
		{name: "tracker/register-task-mismatch", target: "tracker", proto: tracker.ProtocolID, payload: frameJSON(tracker.Request{Type: tracker.TypeRegister, URL: goodURL, Task: content.TaskID(hex64)}), member: true, want: "answer:does not match", within: quick},
		{name: "tracker/schedule-unknown-task", target: "tracker", proto: tracker.ProtocolID, payload: frameJSON(tracker.Request{Type: tracker.TypeSchedule, Task: content.TaskID(hex64), Max: -5}), member: true, want: "answer:unknown task", within: quick},
		{name: "tracker/report-huge-index", target: "tracker", proto: tracker.ProtocolID, payload: frameJSON(tracker.Request{Type: tracker.TypeReport, Task: task, Done: []int{-1, 1 << 40}, Failed: []tracker.Failure{{Piece: -7}}}), member: true, want: "answer:", within: quick},
		{name: "tracker/slow-loris", target: "tracker", proto: tracker.ProtocolID, payload: append(varint(500), '{'), hold: true, member: true, want: "reset", within: trackIdle + slack},
		{name: "tracker/wrong-version", target: "tracker", proto: "/dfp2p/tracker/0.1.0", payload: frameJSON(tracker.Request{Type: tracker.TypeSchedule}), member: true, want: "refused", within: quick},
		{name: "tracker/on-daemon", target: "daemon", proto: tracker.ProtocolID, payload: frameJSON(tracker.Request{Type: tracker.TypeSchedule}), member: true, want: "refused", within: quick},
		// membership and join
		{name: "member/garbage", target: "daemon", proto: memberProt, payload: frame([]byte("not a certificate")), member: true, want: "reset", within: quick},
		{name: "member/oversized-frame", target: "daemon", proto: memberProt, payload: varint(1 << 30), member: true, want: "reset", within: quick},
		{name: "member/forged-cert", target: "daemon", proto: memberProt, payload: frameJSON(map[string][]byte{"cert": []byte(`{"peer":"x","role":"tracker","sig":"AAAA"}`)}), want: "answer:", within: quick},
		{name: "member/slow-loris", target: "tracker", proto: memberProt, payload: varint(100), hold: true, member: true, want: "reset", within: memberIO + slack},
		{name: "join/garbage", target: "tracker", proto: joinProt, payload: frame([]byte("{{{{")), want: "reset", within: quick},
		{name: "join/bad-proof", target: "tracker", proto: joinProt, payload: frameJSON(map[string]any{"proof": []byte("guess")}), want: "answer:", within: quick},
		{name: "join/slow-loris", target: "tracker", proto: joinProt, payload: varint(64), hold: true, want: "reset", within: memberIO + slack},
		{name: "join/oversized-frame", target: "tracker", proto: joinProt, payload: varint(1 << 21), want: "reset", within: quick},
		// DHT
		{name: "dht/garbage", target: "daemon", proto: kadProtocol, payload: []byte("\x05hello garbage"), member: true, want: "reset", within: quick + slack},
		{name: "dht/oversized-frame", target: "tracker", proto: kadProtocol, payload: varint(1 << 40), member: true, want: "reset", within: quick + slack},
		{name: "dht/slow-loris", target: "daemon", proto: kadProtocol, payload: varint(100), hold: true, member: true, want: "reset", within: dhtIdle + slack},
		// outsiders: every gated protocol refuses them before reading
		{name: "outsider/exchange", target: "daemon", proto: exchangeProt, payload: pieces(ref(string(task), 0, unknownCID)), want: "reset", within: gateWait + slack},
		{name: "outsider/status", target: "daemon", proto: statusProt, payload: frameJSON(map[string]string{"task": string(task)}), want: "reset", within: gateWait + slack},
		{name: "outsider/tracker-register", target: "tracker", proto: tracker.ProtocolID, payload: frameJSON(tracker.Request{Type: tracker.TypeRegister, URL: goodURL}), want: "reset", within: gateWait + slack},
		{name: "outsider/dht", target: "tracker", proto: kadProtocol, payload: []byte("\x00"), want: "reset", within: gateWait + slack},
		{name: "outsider/slow-loris", target: "daemon", proto: exchangeProt, payload: varint(10), hold: true, want: "reset", within: gateWait + slack},
	}

	procs := map[string]*cluster.Proc{"daemon": d, "tracker": tr}
	settle := func() map[string]int {
		base := map[string]int{}
		for name, p := range procs {
			g, err := p.Goroutines(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			base[name] = g
		}
		return base
	}
	time.Sleep(2 * time.Second)
	baseline := settle()
	t.Logf("goroutines before: %v", baseline)
	refusedBefore := metric(t, d, "dfp2p_member_refused_streams_total") + metric(t, tr, "dfp2p_member_refused_streams_total")

	hostiles := map[bool]*cluster.Hostile{}
	for _, member := range []bool{true, false} {
		key := ""
		if member {
			key = e.c.CAKey()
		}
		h, err := cluster.NewHostile(key)
		if err != nil {
			t.Fatal(err)
		}
		hostiles[member] = h
	}
	ids := map[string]peer.ID{}
	for name, p := range procs {
		for _, h := range hostiles {
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			id, err := h.Connect(cctx, p)
			cancel()
			if err != nil {
				t.Fatalf("connect to %s: %v", name, err)
			}
			ids[name] = id
		}
	}
	// Let the member's certificate exchange finish.
	time.Sleep(time.Second)

	var mu sync.Mutex
	outsiders := 0 // gated-protocol streams the outsider opened
	t.Run("cases", func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				wait := c.within + 5*time.Second
				cctx, cancel := context.WithTimeout(context.Background(), wait)
				defer cancel()
				o := hostiles[c.member].Send(cctx, ids[c.target], c.proto, c.payload, c.hold, wait)
				mu.Lock()
				defer mu.Unlock()
				t.Logf("CASE %s -> %s", c.name, o)
				if strings.HasPrefix(c.name, "outsider/") {
					outsiders++
				}
				switch want, text, _ := strings.Cut(c.want, ":"); want {
				case "refused":
					if o.Opened {
						t.Errorf("protocol %s opened, want refused: %s", c.proto, o)
					}
				case "reset":
					if o.TimedOut || !o.Reset && o.Opened && len(o.Answer) > 0 {
						t.Errorf("want a reset: %s", o)
					}
				case "answer":
					if !o.Opened || o.TimedOut || !bytes.Contains(bytes.ToLower(o.Answer), []byte(strings.ToLower(text))) {
						t.Errorf("want an answer with %q: %s", text, o)
					}
				}
				if o.Elapsed > c.within {
					t.Errorf("the remote took %s, want at most %s", o.Elapsed.Round(time.Millisecond), c.within)
				}
			})
		}
	})
	// A flood: a member holds 100 unfinished streams each on the seed's
	// exchange and tracker protocols. The cluster still serves a new file
	// (whose pieces come from that seed) to the daemon meanwhile.
	t.Run("flood", func(t *testing.T) {
		f := e.file("flood.bin", 2<<20)
		fctx, fcancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer fcancel()
		var fwg sync.WaitGroup
		var resets, opened, held sync.Map
		for i := range 200 {
			proto := protocol.ID(exchangeProt)
			if i%2 == 1 {
				proto = tracker.ProtocolID
			}
			fwg.Go(func() {
				o := hostiles[true].Send(fctx, ids["tracker"], proto, varint(1000), true, 40*time.Second)
				switch {
				case !o.Opened:
					resets.Store(i, true)
				case o.TimedOut:
					held.Store(i, true)
				default:
					opened.Store(i, true)
				}
			})
		}
		time.Sleep(2 * time.Second)
		out := e.outPath("flood.bin")
		r := e.c.Get(fctx, e.origin.FileURL(f.Name), out, "--daemon", d.URL())
		if r.ExitCode != 0 {
			t.Errorf("get during the flood: exit %d: %s", r.ExitCode, r.Stderr)
		} else if sha256File(t, out) != f.SHA256 {
			t.Error("get during the flood: wrong data")
		}
		t.Logf("get during the flood took %s", r.Elapsed.Round(time.Millisecond))
		fwg.Wait()
		count := func(m *sync.Map) (n int) {
			m.Range(func(any, any) bool { n++; return true })
			return n
		}
		t.Logf("flood streams: %d refused at open, %d reset or closed by the tracker, %d still held after 40 s", count(&resets), count(&opened), count(&held))
		if count(&held) > 0 {
			t.Errorf("%d streams were held for 40 s without a request: the read deadlines did not fire", count(&held))
		}
	})
	for _, h := range hostiles {
		h.Close()
	}
	refused := metric(t, d, "dfp2p_member_refused_streams_total") + metric(t, tr, "dfp2p_member_refused_streams_total") - refusedBefore
	t.Logf("streams refused to the outsider: %v", refused)
	if refused < float64(outsiders) {
		t.Errorf("refused-stream metrics rose by %v, want at least the %d outsider streams", refused, outsiders)
	}
	// Goroutines come back to the baseline once the hostile hosts are gone.
	for name, p := range procs {
		max := baseline[name] + baseline[name]/10 + 10
		g, err := p.WaitGoroutines(context.Background(), max, 60*time.Second)
		t.Logf("%s goroutines: %d before, %d after (limit %d)", name, baseline[name], g, max)
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if !p.Healthy() {
			t.Errorf("%s unhealthy after the hostile streams", name)
		}
	}
}

// --- data dir snapshots ---------------------------------------------------

type dirState map[string]string

// snapshot records every file under dir with its size and modification
// time, except those a running process rewrites on its own (the metadata
// database, logs, renewed certificates and revocation lists).
func snapshot(t *testing.T, dir string) dirState {
	t.Helper()
	s := dirState{}
	_ = filepath.WalkDir(dir, func(path string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		base := filepath.Base(rel)
		if base == "meta.db" || strings.HasSuffix(base, ".log") || strings.Contains(base, "revocation") || strings.HasSuffix(base, ".cert") {
			return nil
		}
		fi, err := de.Info()
		if err != nil {
			return nil
		}
		s[rel] = fmt.Sprintf("%d@%d", fi.Size(), fi.ModTime().UnixNano())
		return nil
	})
	return s
}

func (a dirState) diff(b dirState, ignore string) string {
	return strings.Join(diffMaps(a, b, ignore), "\n")
}

// runExit runs cmd and returns its exit code and its stderr, trimmed; a
// command that could not run at all fails the test.
func runExit(t *testing.T, cmd *exec.Cmd) (int, string) {
	t.Helper()
	r := cluster.RunCommand(cmd)
	if r.ExitCode < 0 {
		t.Fatal(r.Stderr)
	}
	msg := strings.TrimSpace(r.Stderr)
	t.Logf("exit %d in %s: %s", r.ExitCode, r.Elapsed.Round(time.Millisecond), truncateMsg(msg))
	return r.ExitCode, msg
}
