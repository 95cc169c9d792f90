// Package e2e holds dfp2p's end-to-end tests: real dfp2p processes on
// loopback, started through the one shared harness in e2e/cluster.
package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dfp2p/dfp2p/e2e/cluster"
)

var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dfp2p-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin, err = cluster.Build(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
			goleak.IgnoreTopFunction("internal/poll.runtime_pollWait")); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// env is one test's cluster and origin, torn down by t.Cleanup.
type env struct {
	t      *testing.T
	dir    string
	c      *cluster.Cluster
	origin *cluster.Origin
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	o, err := cluster.NewOrigin(filepath.Join(dir, "origin"))
	if err != nil {
		t.Fatal(err)
	}
	c := cluster.New(bin, filepath.Join(dir, "cluster"))
	c.Log = t.Logf
	e := &env{t: t, dir: dir, c: c, origin: o}
	t.Cleanup(func() {
		c.Close()
		o.Close()
		if t.Failed() {
			dumpLogs(t, filepath.Join(dir, "cluster"))
		}
	})
	return e
}

func dumpLogs(t *testing.T, dir string) {
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		if len(b) > 8000 {
			b = b[len(b)-8000:]
		}
		t.Logf("==== %s (tail)\n%s", filepath.Base(l), b)
	}
}

func (e *env) tracker() *cluster.Proc {
	e.t.Helper()
	p, err := e.c.StartTracker()
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *env) daemons(n int, trackers ...*cluster.Proc) []*cluster.Proc {
	e.t.Helper()
	var out []*cluster.Proc
	for i := 0; i < n; i++ {
		p, err := e.c.StartDaemon(trackers)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func (e *env) file(name string, size int64) cluster.File {
	e.t.Helper()
	f, err := e.origin.Generate(name, size, uint64(size))
	if err != nil {
		e.t.Fatal(err)
	}
	return f
}

func (e *env) outPath(name string) string {
	d := filepath.Join(e.dir, "out")
	_ = os.MkdirAll(d, 0o755)
	return filepath.Join(d, name)
}

// startGets runs `dfp2p get url` on every daemon at once, writing
// out/<prefix><i>, and returns a function that waits for all of them and
// returns their results in daemon order.
func (e *env) startGets(ctx context.Context, url, prefix string, ds []*cluster.Proc) (wait func() []cluster.GetResult) {
	results := make([]cluster.GetResult, len(ds))
	var wg sync.WaitGroup
	for i, d := range ds {
		wg.Go(func() {
			results[i] = e.c.Get(ctx, url, e.outPath(fmt.Sprintf("%s%d", prefix, i)), "--daemon", d.URL())
		})
	}
	return func() []cluster.GetResult {
		wg.Wait()
		return results
	}
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// noOutput asserts that neither path nor any temp file beside it exists.
func noOutput(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err == nil {
		t.Errorf("output %s exists after a failed download", path)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".dfp2p-*"))
	if len(left) > 0 {
		t.Errorf("temp files left behind: %v", left)
	}
}

// getJSON fetches a JSON document from a process's API on the host.
func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	return getJSONWith(t, http.DefaultClient, url, v)
}

// getJSONWith is getJSON through hc (a site's client for a process in a
// network namespace: cluster.Proc.HTTPClient).
func getJSONWith(t *testing.T, hc *http.Client, url string, v any) int {
	t.Helper()
	body, status := httpGet(t, hc, url)
	if v != nil {
		_ = json.Unmarshal(body, v)
	}
	return status
}

// httpGet GETs url through hc within 5 s and returns at most 4 MiB of the
// body and the status.
func httpGet(t *testing.T, hc *http.Client, url string) ([]byte, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return b, resp.StatusCode
}

// metric reads an unlabelled metric (or the first series of a labelled one
// when name includes the labels) from a process's /metrics; 0 if absent.
func metric(t *testing.T, p *cluster.Proc, name string) float64 {
	t.Helper()
	// A series that is not there fails the test rather than reading as 0:
	// a renamed metric must not turn an assertion into a silent pass.
	v, err := p.Metric(context.Background(), name)
	if err != nil {
		t.Fatalf("metric %s: %v", name, err)
	}
	return v
}

// textWith GETs url through hc and returns at most 4 MiB of the body.
func textWith(t *testing.T, hc *http.Client, url string) string {
	t.Helper()
	b, _ := httpGet(t, hc, url)
	return string(b)
}
