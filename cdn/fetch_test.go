package cdn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"go.uber.org/goleak"

	"github.com/dfp2p/dfp2p/content"
)

// The tests below assume the rule cuts their files into pieces of ps.
func TestTestGeometry(t *testing.T) {
	for _, n := range []int64{size35, 2*ps + 5, ps / 4} {
		if got := content.PieceSize(n); got != ps {
			t.Fatalf("PieceSize(%d) = %d, tests assume %d", n, got, ps)
		}
	}
	if n := content.NumPieces(size35, ps); n != 4 {
		t.Fatalf("size35 is %d pieces, tests assume 4", n)
	}
}

func TestRangedOrigin(t *testing.T) {
	o := &origin{data: testData(size35, 1), ranges: true}
	srv := start(t, o)
	st := newFakeStore(t)
	var counted atomic.Int64
	f := newTestFetcher(t, st, WithByteCounter(func(n int64) { counted.Add(n) }))
	u := srv.URL + "/blob"
	id := taskFor(u)
	rec := newRecorder(t)
	m, err := f.Fetch(context.Background(), Request{Task: id, URL: u}, rec)
	if err != nil {
		t.Fatal(err)
	}
	checkManifest(t, m, id, o.data)
	if len(m.Pieces) != 4 {
		t.Fatalf("%d pieces", len(m.Pieces))
	}
	if st.manifest(id) != m {
		t.Fatal("manifest not completed in the store")
	}
	if got := o.bodyBytes.Load(); got != int64(len(o.data)) {
		t.Fatalf("origin served %d bytes for a %d-byte file", got, len(o.data))
	}
	if got := counted.Load(); got != int64(len(o.data)) {
		t.Fatalf("byte counter says %d", got)
	}
	if rec.starts != 1 || len(rec.pieces) != 4 {
		t.Fatalf("observer: %d starts, %d pieces", rec.starts, len(rec.pieces))
	}
	for i, c := range m.Pieces {
		if !rec.pieces[i].Equals(c) {
			t.Fatalf("observer got a different CID for piece %d", i)
		}
	}
	seen := o.rangesSeen()
	if seen[0] != fmt.Sprintf("bytes=0-%d", ps-1) || len(seen) != 4 {
		t.Fatalf("requests: %q", seen)
	}
}

// A first range shorter than piece 0: the rest of piece 0 is a second range.
func TestRangedOriginShortProbe(t *testing.T) {
	o := &origin{data: testData(2*ps+5, 2), ranges: true}
	srv := start(t, o)
	st := newFakeStore(t)
	f := newTestFetcher(t, st, WithParallel(2))
	f.probeSize = 300000
	u := srv.URL + "/x"
	m, err := f.Fetch(context.Background(), Request{Task: taskFor(u), URL: u}, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkManifest(t, m, taskFor(u), o.data)
	if !slices.Contains(o.rangesSeen(), fmt.Sprintf("bytes=300000-%d", ps-1)) {
		t.Fatalf("requests: %q", o.rangesSeen())
	}
	if got := o.bodyBytes.Load(); got != int64(len(o.data)) {
		t.Fatalf("origin served %d bytes", got)
	}
}

func TestOriginWithoutRanges(t *testing.T) {
	o := &origin{data: testData(size35, 3)}
	srv := start(t, o)
	st := newFakeStore(t)
	f := newTestFetcher(t, st)
	u := srv.URL + "/plain"
	rec := newRecorder(t)
	m, err := f.Fetch(context.Background(), Request{Task: taskFor(u), URL: u}, rec)
	if err != nil {
		t.Fatal(err)
	}
	checkManifest(t, m, taskFor(u), o.data)
	if o.requests.Load() != 1 || o.bodyBytes.Load() != int64(len(o.data)) {
		t.Fatalf("%d requests, %d bytes", o.requests.Load(), o.bodyBytes.Load())
	}
	if len(rec.pieces) != 4 {
		t.Fatalf("%d pieces observed", len(rec.pieces))
	}
}

func TestUnknownLengthOrigin(t *testing.T) {
	o := &origin{data: testData(size35, 4), chunked: true}
	srv := start(t, o)
	st := newFakeStore(t)
	spool := t.TempDir()
	f := newTestFetcher(t, st, WithTempDir(spool))
	u := srv.URL + "/chunked"
	m, err := f.Fetch(context.Background(), Request{Task: taskFor(u), URL: u}, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkManifest(t, m, taskFor(u), o.data)
	if left, _ := os.ReadDir(spool); len(left) != 0 {
		t.Fatalf("spool files left: %v", left)
	}
}

func TestNotFound(t *testing.T) {
	o := &origin{data: testData(10, 5), hook: func(w http.ResponseWriter, r *http.Request, n int64) bool {
		http.NotFound(w, r)
		return true
	}}
	srv := start(t, o)
	st := newFakeStore(t)
	f := newTestFetcher(t, st)
	f.backoff = time.Second // a retry would show in the elapsed time
	u := srv.URL + "/missing?X-Amz-Signature=SECRETSIG&token=SECRETTOKEN"
	id := taskFor(u)
	began := time.Now()
	_, err := f.Fetch(context.Background(), Request{Task: id, URL: u}, nil)
	var oe *OriginError
	if !errors.As(err, &oe) || oe.StatusCode != 404 {
		t.Fatalf("err = %v, want *OriginError 404", err)
	}
	if time.Since(began) > 900*time.Millisecond || o.requests.Load() != 1 {
		t.Fatalf("404 took %s and %d requests", time.Since(began), o.requests.Load())
	}
	if st.Have(id) != nil {
		t.Fatal("a task was left in the store")
	}
	want := "origin returned 404 Not Found for " + srv.URL + "/missing"
	if err.Error() != want {
		t.Fatalf("err = %q, want %q", err, want)
	}
	if strings.Contains(err.Error(), "SECRET") {
		t.Fatal("error leaks the query string")
	}
}

func TestNetworkErrorRedacted(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	f := newTestFetcher(t, newFakeStore(t), WithRetries(1))
	u := "http://" + addr + "/f?X-Amz-Signature=SECRETSIG"
	_, err = f.Fetch(context.Background(), Request{Task: taskFor(u), URL: u}, nil)
	if err == nil || strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("err = %v", err)
	}
}

func TestServerErrorRetriedThenFails(t *testing.T) {
	o := &origin{data: testData(10, 6), hook: func(w http.ResponseWriter, r *http.Request, n int64) bool {
		http.Error(w, "boom", http.StatusInternalServerError)
		return true
	}}
	srv := start(t, o)
	f := newTestFetcher(t, newFakeStore(t), WithRetries(2))
	u := srv.URL + "/err"
	_, err := f.Fetch(context.Background(), Request{Task: taskFor(u), URL: u}, nil)
	var oe *OriginError
	if !errors.As(err, &oe) || oe.StatusCode != 500 {
		t.Fatalf("err = %v, want *OriginError 500", err)
	}
	if got := o.requests.Load(); got != 3 {
		t.Fatalf("%d requests, want 1 + 2 retries", got)
	}
}

func TestUnavailableOnceThenOK(t *testing.T) {
	o := &origin{data: testData(size35, 7), ranges: true}
	o.hook = func(w http.ResponseWriter, r *http.Request, n int64) bool {
		if n == 1 || n == 3 { // the first request and one piece
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return true
		}
		return false
	}
	fetchOK(t, o, "/busy")
}

// The origin answers one mid-way Range request with the whole body (200).
func TestRangeIgnoredMidway(t *testing.T) {
	o := &origin{data: testData(size35, 8), ranges: true}
	var ignored atomic.Int64
	o.hook = func(w http.ResponseWriter, r *http.Request, n int64) bool {
		if n > 1 && ignored.Add(1) == 1 {
			o.serveFull(w)
			return true
		}
		return false
	}
	srv := start(t, o)
	st := newFakeStore(t)
	f := newTestFetcher(t, st)
	u := srv.URL + "/lb"
	m, err := f.Fetch(context.Background(), Request{Task: taskFor(u), URL: u}, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkManifest(t, m, taskFor(u), o.data)
	st.checkPieces(t, taskFor(u), o.data)
}

// An origin that stops honouring Range after the first request fails the
// fetch without storing wrong bytes.
func TestRangeAlwaysIgnoredMidway(t *testing.T) {
	o := &origin{data: testData(size35, 9), ranges: true}
	o.hook = func(w http.ResponseWriter, r *http.Request, n int64) bool {
		if n > 1 {
			o.serveFull(w)
			return true
		}
		return false
	}
	srv := start(t, o)
	st := newFakeStore(t)
	f := newTestFetcher(t, st, WithRetries(1))
	u := srv.URL + "/bad"
	id := taskFor(u)
	_, err := f.Fetch(context.Background(), Request{Task: id, URL: u}, nil)
	if err == nil || !strings.Contains(err.Error(), "ignored") {
		t.Fatalf("err = %v", err)
	}
	if st.manifest(id) != nil {
		t.Fatal("task completed")
	}
	st.checkPieces(t, id, o.data)
}

// A 206 for a different range than asked is rejected and retried.
func TestWrongContentRange(t *testing.T) {
	o := &origin{data: testData(size35, 10), ranges: true}
	var wrong atomic.Int64
	o.hook = func(w http.ResponseWriter, r *http.Request, n int64) bool {
		if n > 1 && wrong.Add(1) == 1 {
			o.serveRange(w, 0, ps-1, int64(len(o.data))) // always piece 0
			return true
		}
		return false
	}
	fetchOK(t, o, "/wrong")
}

// The origin's length changes mid-way: the fetch fails and the task is dropped.
func TestOriginChanged(t *testing.T) {
	o := &origin{data: testData(size35, 11), ranges: true}
	o.hook = func(w http.ResponseWriter, r *http.Request, n int64) bool {
		if n > 1 {
			a, b, _ := parseRange(r.Header.Get("Range"), int64(len(o.data)))
			o.serveRange(w, a, b, int64(len(o.data))+1)
			return true
		}
		return false
	}
	srv := start(t, o)
	st := newFakeStore(t)
	f := newTestFetcher(t, st)
	u := srv.URL + "/changing"
	_, err := f.Fetch(context.Background(), Request{Task: taskFor(u), URL: u}, nil)
	if !errors.Is(err, ErrOriginChanged) {
		t.Fatalf("err = %v", err)
	}
	if st.Have(taskFor(u)) != nil {
		t.Fatal("task not dropped")
	}
}

// abortAfter sends the response headers and half the range, then resets the
// connection.
func abortHalf(o *origin, w http.ResponseWriter, a, b int64) {
	w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", a, b, len(o.data)))
	w.Header().Set("Content-Length", fmt.Sprint(b-a+1))
	w.WriteHeader(http.StatusPartialContent)
	w.Write(o.data[a : a+(b-a+1)/2])
	w.(http.Flusher).Flush()
	panic(http.ErrAbortHandler)
}

func TestBodyCutShortRetried(t *testing.T) {
	o := &origin{data: testData(size35, 12), ranges: true}
	piece2 := fmt.Sprintf("bytes=%d-%d", 2*ps, 3*ps-1)
	var cut atomic.Int64
	o.hook = func(w http.ResponseWriter, r *http.Request, n int64) bool {
		if r.Header.Get("Range") == piece2 && cut.Add(1) == 1 {
			abortHalf(o, w, 2*ps, 3*ps-1)
		}
		return false
	}
	fetchOK(t, o, "/cut")
	if cut.Load() != 2 {
		t.Fatalf("piece 2 requested %d times, want 2", cut.Load())
	}
}

// A sequential stream cut mid-way resumes at the first missing piece.
func TestStreamCutShortResumes(t *testing.T) {
	o := &origin{data: testData(size35, 13)}
	o.hook = func(w http.ResponseWriter, r *http.Request, n int64) bool {
		if n == 1 {
			w.Header().Set("Content-Length", fmt.Sprint(len(o.data)))
			w.WriteHeader(http.StatusOK)
			w.Write(o.data[:2*ps+100])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		return false
	}
	st := fetchOK(t, o, "/stream")
	if seen := o.rangesSeen(); len(seen) != 2 || seen[1] != fmt.Sprintf("bytes=%d-", 2*ps) {
		t.Fatalf("requests: %q", seen)
	}
	for i := range 4 {
		if st.writes[i] != 1 {
			t.Fatalf("piece %d written %d times", i, st.writes[i])
		}
	}
}

func TestDigest(t *testing.T) {
	o := &origin{data: testData(size35, 14), ranges: true}
	srv := start(t, o)
	st := newFakeStore(t)
	f := newTestFetcher(t, st)
	u := srv.URL + "/d"
	id := taskFor(u)
	_, err := f.Fetch(context.Background(), Request{Task: id, URL: u, Digest: sha([]byte("something else"))}, nil)
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("err = %v, want ErrDigestMismatch", err)
	}
	if st.Have(id) != nil {
		t.Fatal("task not dropped")
	}
	m, err := f.Fetch(context.Background(), Request{Task: id, URL: u, Digest: "sha256:" + strings.ToUpper(sha(o.data))}, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkManifest(t, m, id, o.data)
	if _, err := f.Fetch(context.Background(), Request{Task: id, URL: u, Digest: "nope"}, nil); err == nil {
		t.Fatal("bad digest accepted")
	}
}

func TestHeadersPassedThrough(t *testing.T) {
	o := &origin{data: testData(size35, 15), ranges: true}
	srv := start(t, o)
	f := newTestFetcher(t, newFakeStore(t))
	u := srv.URL + "/private"
	h := http.Header{}
	h.Set("Authorization", "Bearer tok")
	h.Set("Cookie", "a=b")
	h.Set("Connection", "X-Hop")
	h.Set("X-Hop", "1")
	h.Set("Proxy-Authorization", "Basic x")
	h.Set("Range", "bytes=5-6")
	if _, err := f.Fetch(context.Background(), Request{Task: taskFor(u), URL: u, Header: h}, nil); err != nil {
		t.Fatal(err)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.headers) != 4 {
		t.Fatalf("%d requests", len(o.headers))
	}
	for _, got := range o.headers {
		if got.Get("Authorization") != "Bearer tok" || got.Get("Cookie") != "a=b" {
			t.Fatalf("end-to-end headers missing: %v", got)
		}
		if got.Get("X-Hop") != "" || got.Get("Proxy-Authorization") != "" {
			t.Fatalf("hop-by-hop headers forwarded: %v", got)
		}
		if got.Get("Range") == "bytes=5-6" {
			t.Fatal("caller's Range forwarded")
		}
	}
	if h.Get("X-Hop") != "1" {
		t.Fatal("caller's header map modified")
	}
}

// A first fetch fails at piece 3; the second fetches only piece 3.
func TestResume(t *testing.T) {
	o := &origin{data: testData(size35, 16), ranges: true}
	piece3 := fmt.Sprintf("bytes=%d-%d", 3*ps, size35-1)
	var failing atomic.Bool
	failing.Store(true)
	o.hook = func(w http.ResponseWriter, r *http.Request, n int64) bool {
		if failing.Load() && r.Header.Get("Range") == piece3 {
			http.Error(w, "no", http.StatusForbidden)
			return true
		}
		return false
	}
	srv := start(t, o)
	st := newFakeStore(t)
	u := srv.URL + "/resume"
	id := taskFor(u)
	_, err := newTestFetcher(t, st, WithParallel(1)).Fetch(context.Background(), Request{Task: id, URL: u}, nil)
	var oe *OriginError
	if !errors.As(err, &oe) || oe.StatusCode != 403 {
		t.Fatalf("err = %v", err)
	}
	if have := st.Have(id); !slices.Equal(have, []bool{true, true, true, false}) {
		t.Fatalf("have %v", have)
	}

	failing.Store(false)
	before := o.bodyBytes.Load()
	nreq := len(o.rangesSeen())
	rec := newRecorder(t)
	m, err := newTestFetcher(t, st).Fetch(context.Background(), Request{Task: id, URL: u}, rec)
	if err != nil {
		t.Fatal(err)
	}
	checkManifest(t, m, id, o.data)
	if seen := o.rangesSeen()[nreq:]; !slices.Equal(seen, []string{"bytes=0-0", piece3}) {
		t.Fatalf("resume requests: %q", seen)
	}
	if got := o.bodyBytes.Load() - before; got != 1+size35-3*ps {
		t.Fatalf("resume read %d bytes", got)
	}
	for i := range 4 {
		if st.writes[i] != 1 {
			t.Fatalf("piece %d written %d times", i, st.writes[i])
		}
	}
	if len(rec.pieces) != 4 {
		t.Fatalf("observer saw %d pieces", len(rec.pieces))
	}
}

func TestCancel(t *testing.T) {
	o := &origin{data: testData(size35, 17), ranges: true}
	o.hook = func(w http.ResponseWriter, r *http.Request, n int64) bool {
		if n == 1 {
			return false
		}
		a, b, _ := parseRange(r.Header.Get("Range"), int64(len(o.data)))
		head := o.data[a : a+10]
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", a, b, len(o.data)))
		w.Header().Set("Content-Length", fmt.Sprint(b-a+1))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(head) // then stall mid-body
		w.(http.Flusher).Flush()
		o.stall(r)
		return true
	}
	srv := start(t, o)
	st := newFakeStore(t)
	f := newTestFetcher(t, st)
	u := srv.URL + "/slow"
	ctx, cancel := context.WithCancel(context.Background())
	rec := newRecorder(t)
	errc := make(chan error, 1)
	go func() {
		_, err := f.Fetch(ctx, Request{Task: taskFor(u), URL: u}, rec)
		errc <- err
	}()
	<-rec.started
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Fetch did not return after cancel")
	}
}

func TestZeroLength(t *testing.T) {
	for name, o := range map[string]*origin{
		"ranged":   {data: []byte{}, ranges: true},
		"plain":    {data: []byte{}},
		"chunked":  {data: []byte{}, chunked: true},
		"416-bare": {data: []byte{}, hook: bare416},
	} {
		t.Run(name, func(t *testing.T) {
			srv := start(t, o)
			st := newFakeStore(t)
			f := newTestFetcher(t, st)
			u := srv.URL + "/empty"
			rec := newRecorder(t)
			m, err := f.Fetch(context.Background(), Request{Task: taskFor(u), URL: u, Digest: sha(nil)}, rec)
			if err != nil {
				t.Fatal(err)
			}
			checkManifest(t, m, taskFor(u), nil)
			if len(m.Pieces) != 0 || st.manifest(taskFor(u)) == nil || rec.starts != 1 {
				t.Fatalf("manifest %+v, %d starts", m, rec.starts)
			}
		})
	}
}

// bare416 answers a Range with 416 and no Content-Range; a plain GET with an
// empty 200.
func bare416(w http.ResponseWriter, r *http.Request, n int64) bool {
	if r.Header.Get("Range") != "" {
		w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		return true
	}
	w.Header().Set("Content-Length", "0")
	return true
}

func TestUnsupportedScheme(t *testing.T) {
	f := newTestFetcher(t, newFakeStore(t))
	u := "ftp://example.com/file"
	_, err := f.Fetch(context.Background(), Request{Task: taskFor("http://example.com/file"), URL: u}, nil)
	if !errors.Is(err, content.ErrUnsupportedScheme) {
		t.Fatalf("err = %v", err)
	}
	_, err = f.Fetch(context.Background(), Request{Task: "bad", URL: "http://example.com/"}, nil)
	if err == nil {
		t.Fatal("bad task id accepted")
	}
}

func TestContentRange(t *testing.T) {
	for _, c := range []struct {
		in                 string
		first, last, total int64
		ok                 bool
	}{
		{"bytes 0-9/10", 0, 9, 10, true},
		{"bytes 5-9/*", 5, 9, -1, true},
		{"bytes */0", -1, -1, 0, true},
		{"bytes 0-10/10", 0, 0, 0, false},
		{"bytes 9-5/10", 0, 0, 0, false},
		{"items 0-9/10", 0, 0, 0, false},
		{"bytes 0-9", 0, 0, 0, false},
	} {
		first, last, total, ok := contentRange(c.in)
		if ok != c.ok || ok && (first != c.first || last != c.last || total != c.total) {
			t.Errorf("%q: %d %d %d %v", c.in, first, last, total, ok)
		}
	}
}

// Interop with the standard library's file server (real Range semantics).
func TestStdlibFileServer(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	dir := t.TempDir()
	data := testData(size35, 30)
	if err := os.WriteFile(dir+"/blob", data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/empty", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	st := newFakeStore(t)
	f := newTestFetcher(t, st)
	for name, want := range map[string][]byte{"/blob": data, "/empty": nil} {
		u := srv.URL + name
		m, err := f.Fetch(context.Background(), Request{Task: taskFor(u), URL: u}, nil)
		if err != nil {
			t.Fatal(name, err)
		}
		checkManifest(t, m, taskFor(u), want)
	}
}

// An unknown-length body cut mid-way is spooled again.
func TestSpoolRetried(t *testing.T) {
	o := &origin{data: testData(size35, 31), chunked: true}
	o.hook = func(w http.ResponseWriter, r *http.Request, n int64) bool {
		if n == 1 {
			w.WriteHeader(http.StatusOK)
			w.Write(o.data[:ps])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		return false
	}
	srv := start(t, o)
	f := newTestFetcher(t, newFakeStore(t), WithTempDir(t.TempDir()))
	u := srv.URL + "/chunked"
	m, err := f.Fetch(context.Background(), Request{Task: taskFor(u), URL: u}, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkManifest(t, m, taskFor(u), o.data)
	if o.requests.Load() != 2 {
		t.Fatalf("%d requests", o.requests.Load())
	}
}

// A body that stalls longer than the timeout is abandoned and retried.
func TestBodyStallRetried(t *testing.T) {
	o := &origin{data: testData(size35, 32), ranges: true}
	var stalled atomic.Int64
	o.hook = func(w http.ResponseWriter, r *http.Request, n int64) bool {
		if n == 1 || stalled.Add(1) != 1 {
			return false
		}
		a, b, _ := parseRange(r.Header.Get("Range"), int64(len(o.data)))
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", a, b, len(o.data)))
		w.Header().Set("Content-Length", fmt.Sprint(b-a+1))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(o.data[a : a+100])
		w.(http.Flusher).Flush()
		o.stall(r)
		return true
	}
	srv := start(t, o)
	f := newTestFetcher(t, newFakeStore(t), WithTimeout(150*time.Millisecond))
	u := srv.URL + "/stall"
	m, err := f.Fetch(context.Background(), Request{Task: taskFor(u), URL: u}, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkManifest(t, m, taskFor(u), o.data)
}

// Pieces already held are skipped in a sequential stream, not rewritten.
func TestStreamSkipsHeldPieces(t *testing.T) {
	o := &origin{data: testData(size35, 33)}
	srv := start(t, o)
	st := newFakeStore(t)
	u := srv.URL + "/plain"
	id := taskFor(u)
	if err := st.Begin(id, u, size35, ps); err != nil {
		t.Fatal(err)
	}
	if _, err := st.WritePiece(id, 1, cid.Undef, bytes.NewReader(o.data[ps:2*ps])); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder(t)
	m, err := newTestFetcher(t, st).Fetch(context.Background(), Request{Task: id, URL: u}, rec)
	if err != nil {
		t.Fatal(err)
	}
	checkManifest(t, m, id, o.data)
	if st.writes[1] != 1 || st.writes[0] != 1 || st.writes[3] != 1 {
		t.Fatalf("writes %v", st.writes)
	}
	if len(rec.pieces) != 4 {
		t.Fatalf("observer saw %d pieces", len(rec.pieces))
	}
}

// A task left in the store with other geometry but the same number of pieces
// (begun under another piece-size rule, or before the origin's length
// changed) is started over, not a permanent failure.
func TestResumeOtherGeometry(t *testing.T) {
	for name, c := range map[string]struct {
		length, oldLength, oldPieceSize int64
	}{
		"piece size": {ps / 4, ps / 4, ps / 2},
		"length":     {size35, size35 - 1000, ps},
	} {
		t.Run(name, func(t *testing.T) {
			o := &origin{data: testData(c.length, 35), ranges: true}
			srv := start(t, o)
			st := newFakeStore(t)
			u := srv.URL + "/changed"
			id := taskFor(u)
			if content.NumPieces(c.oldLength, c.oldPieceSize) != content.NumPieces(c.length, ps) {
				t.Fatal("test needs the same piece count")
			}
			old := testData(c.oldLength, 36)
			if err := st.Begin(id, u, c.oldLength, c.oldPieceSize); err != nil {
				t.Fatal(err)
			}
			if _, err := st.WritePiece(id, 0, cid.Undef, bytes.NewReader(old[:min(c.oldLength, c.oldPieceSize)])); err != nil {
				t.Fatal(err)
			}
			rec := newRecorder(t)
			m, err := newTestFetcher(t, st).Fetch(context.Background(), Request{Task: id, URL: u}, rec)
			if err != nil {
				t.Fatal(err)
			}
			checkManifest(t, m, id, o.data)
			st.checkPieces(t, id, o.data)
			if st.drops != 1 || st.manifest(id) != m || len(rec.pieces) != len(m.Pieces) {
				t.Fatalf("%d drops, %d pieces observed", st.drops, len(rec.pieces))
			}
		})
	}
}

// A 206 without a total length makes the fetcher read the file in one GET.
func TestRangeWithoutTotal(t *testing.T) {
	o := &origin{data: testData(size35, 34)}
	o.hook = func(w http.ResponseWriter, r *http.Request, n int64) bool {
		if r.Header.Get("Range") == "" {
			return false
		}
		w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-%d/*", ps-1))
		w.WriteHeader(http.StatusPartialContent)
		o.write(w, o.data[:ps])
		return true
	}
	srv := start(t, o)
	f := newTestFetcher(t, newFakeStore(t))
	u := srv.URL + "/nototal"
	m, err := f.Fetch(context.Background(), Request{Task: taskFor(u), URL: u}, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkManifest(t, m, taskFor(u), o.data)
	if seen := o.rangesSeen(); len(seen) != 2 || seen[1] != "" {
		t.Fatalf("requests %q", seen)
	}
}

func BenchmarkFetch64MiB(b *testing.B) {
	dir := b.TempDir()
	data := testData(64*mib, 40)
	if err := os.WriteFile(dir+"/blob", data, 0o644); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	u := srv.URL + "/blob"
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		st := &fakeStore{dir: b.TempDir(), tasks: map[content.TaskID]*fakeTask{}, writes: map[int]int{}}
		if _, err := NewFetcher(st).Fetch(context.Background(), Request{Task: taskFor(u), URL: u}, nil); err != nil {
			b.Fatal(err)
		}
	}
}
