package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// statusErr is a Fetcher error carrying an HTTP status.
type statusErr struct {
	status int
	msg    string
}

func (e *statusErr) Error() string   { return e.msg }
func (e *statusErr) HTTPStatus() int { return e.status }

// fakeFetcher serves blobs from memory and records what it was asked.
type fakeFetcher struct {
	calls atomic.Int64

	mu    sync.Mutex // guards all below; change them with set
	blobs map[string][]byte
	reqs  []BlobRequest
	fakeBehaviour
}

type fakeBehaviour struct {
	err       error         // returned by FetchBlob
	failAfter int64         // >0: the body fails after this many bytes
	failAtEOF bool          // the body yields every byte, then fails instead of io.EOF
	extra     bool          // the body yields one byte more than its length
	block     chan struct{} // reads wait for this to close
}

func (f *fakeFetcher) set(fn func(*fakeFetcher)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func newFakeFetcher(blobs ...[]byte) *fakeFetcher {
	f := &fakeFetcher{blobs: map[string][]byte{}}
	for _, b := range blobs {
		f.blobs[digestOf(b)] = b
	}
	return f
}

func (f *fakeFetcher) FetchBlob(ctx context.Context, req BlobRequest) (io.ReadCloser, int64, error) {
	f.calls.Add(1)
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	b, ok := f.blobs[req.Digest]
	bh := f.fakeBehaviour
	f.mu.Unlock()
	if bh.err != nil {
		return nil, 0, bh.err
	}
	if !ok {
		return nil, 0, &statusErr{http.StatusNotFound, "blob unknown to the swarm and origin"}
	}
	return &fakeBody{ctx: ctx, data: b, f: bh}, int64(len(b)), nil
}

func (f *fakeFetcher) lastReq() BlobRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reqs[len(f.reqs)-1]
}

type fakeBody struct {
	ctx  context.Context
	data []byte
	off  int64
	f    fakeBehaviour
}

var errVerify = errors.New("sha256 mismatch: blob failed verification")

func (b *fakeBody) Read(p []byte) (int, error) {
	if b.f.block != nil {
		select {
		case <-b.f.block:
		case <-b.ctx.Done():
			return 0, b.ctx.Err()
		}
	}
	if b.f.failAfter > 0 && b.off >= b.f.failAfter {
		return 0, errors.New("peer went away")
	}
	data := b.data
	if b.f.extra {
		data = append(append([]byte(nil), data...), 'X')
	}
	if b.off >= int64(len(data)) {
		if b.f.failAtEOF {
			return 0, errVerify
		}
		return 0, io.EOF
	}
	end := int64(len(data))
	if b.f.failAfter > 0 && end > b.f.failAfter {
		end = b.f.failAfter
	}
	n := copy(p, data[b.off:end])
	b.off += int64(n)
	return n, nil
}

func (b *fakeBody) Close() error { return nil }

// fakeRegistry is an upstream registry: manifests, blobs (HEAD/GET), tags,
// with optional Basic auth.
type fakeRegistry struct {
	*httptest.Server
	user, pass string // when set, every request needs Basic auth

	mu        sync.Mutex
	blobs     map[string][]byte // "name@digest"
	manifests map[string][]byte // "name:ref"
	reqs      []*http.Request
	heads     atomic.Int64 // HEAD requests on blobs
}

const manifestType = "application/vnd.oci.image.manifest.v1+json"

func newFakeRegistry(t *testing.T, tlsServer bool) *fakeRegistry {
	t.Helper()
	r := &fakeRegistry{blobs: map[string][]byte{}, manifests: map[string][]byte{}}
	if tlsServer {
		r.Server = httptest.NewTLSServer(r)
	} else {
		r.Server = httptest.NewServer(r)
	}
	t.Cleanup(r.Close)
	return r
}

func (r *fakeRegistry) addBlob(name string, b []byte) string {
	d := digestOf(b)
	r.mu.Lock()
	r.blobs[name+"@"+d] = b
	r.mu.Unlock()
	return d
}

func (r *fakeRegistry) addManifest(name, ref string, b []byte) {
	r.mu.Lock()
	r.manifests[name+":"+ref] = b
	r.mu.Unlock()
}

func (r *fakeRegistry) requests() []*http.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*http.Request(nil), r.reqs...)
}

func (r *fakeRegistry) last() *http.Request {
	rs := r.requests()
	if len(rs) == 0 {
		return nil
	}
	return rs[len(rs)-1]
}

func (r *fakeRegistry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req.Clone(context.Background()))
	user, pass := r.user, r.pass
	r.mu.Unlock()
	w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
	if req.Method == http.MethodHead && strings.Contains(req.URL.Path, "/blobs/") {
		r.heads.Add(1)
	}
	if user != "" {
		u, p, ok := req.BasicAuth()
		if !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="fake-registry"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintln(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
			return
		}
	}
	path := req.URL.Path
	switch {
	case path == "/v2/":
		w.WriteHeader(http.StatusOK)
		fmt.Fprint(w, "{}")
	case strings.HasSuffix(path, "/tags/list"):
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"name":%q,"tags":["latest"],"query":%q}`, strings.TrimSuffix(strings.TrimPrefix(path, "/v2/"), "/tags/list"), req.URL.RawQuery)
	case strings.Contains(path, "/manifests/"):
		name, ref, _ := strings.Cut(strings.TrimPrefix(path, "/v2/"), "/manifests/")
		r.mu.Lock()
		b, ok := r.manifests[name+":"+ref]
		r.mu.Unlock()
		if !ok {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintln(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`)
			return
		}
		w.Header().Set("Content-Type", manifestType)
		w.Header().Set("Docker-Content-Digest", digestOf(b))
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		if req.Method == http.MethodGet {
			_, _ = w.Write(b)
		}
	case strings.Contains(path, "/blobs/"):
		name, d, _ := strings.Cut(strings.TrimPrefix(path, "/v2/"), "/blobs/")
		r.mu.Lock()
		b, ok := r.blobs[name+"@"+d]
		r.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Docker-Content-Digest", d)
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		if req.Method == http.MethodGet {
			_, _ = w.Write(b)
		}
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// startProxy runs a proxy on a free loopback port; it is closed at cleanup.
func startProxy(t *testing.T, cfg Config) *Proxy {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HTTPClient == nil {
		tr := defaultTransport()
		t.Cleanup(tr.CloseIdleConnections)
		cfg.HTTPClient = &http.Client{Transport: tr}
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	return p
}

// testClient is a plain HTTP client whose idle connections close at cleanup.
func testClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{Proxy: nil, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// proxyClient sends requests through p as an HTTP proxy.
func proxyClient(t *testing.T, p *Proxy, tr *http.Transport) *http.Client {
	t.Helper()
	if tr == nil {
		tr = &http.Transport{}
	}
	pu, _ := url.Parse("http://" + p.Addr())
	tr.Proxy = http.ProxyURL(pu)
	tr.DisableCompression = true
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

type result struct {
	status int
	header http.Header
	body   []byte
	err    error // reading the body
}

func do(t *testing.T, c *http.Client, method, u string, hdr map[string]string) result {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, header: resp.Header, body: b, err: err}
}

func hostOf(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
