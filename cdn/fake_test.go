package cdn

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"go.uber.org/goleak"

	"github.com/dfp2p/dfp2p/content"
)

// fakeStore is a PieceWriter keeping each piece in its own temp file.
type fakeStore struct {
	dir string

	mu     sync.Mutex
	tasks  map[content.TaskID]*fakeTask
	writes map[int]int // successful WritePiece calls per index (all tasks)
	drops  int
}

type fakeTask struct {
	url       string
	length    int64
	pieceSize int64
	cids      []cid.Cid
	manifest  *content.Manifest
}

func newFakeStore(t *testing.T) *fakeStore {
	return &fakeStore{dir: t.TempDir(), tasks: map[content.TaskID]*fakeTask{}, writes: map[int]int{}}
}

func (s *fakeStore) piecePath(id content.TaskID, idx int) string {
	return filepath.Join(s.dir, string(id), strconv.Itoa(idx))
}

func (s *fakeStore) Begin(id content.TaskID, url string, length, pieceSize int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tasks[id]; t != nil {
		if t.length != length || t.pieceSize != pieceSize {
			return errors.New("fake: geometry mismatch")
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Join(s.dir, string(id)), 0o755); err != nil {
		return err
	}
	s.tasks[id] = &fakeTask{url: url, length: length, pieceSize: pieceSize,
		cids: make([]cid.Cid, content.NumPieces(length, pieceSize))}
	return nil
}

func (s *fakeStore) WritePiece(id content.TaskID, idx int, want cid.Cid, r io.Reader) (cid.Cid, error) {
	s.mu.Lock()
	t := s.tasks[id]
	s.mu.Unlock()
	if t == nil || idx < 0 || idx >= len(t.cids) {
		return cid.Undef, fmt.Errorf("fake: no piece %d", idx)
	}
	_, size := content.PieceRange(t.length, t.pieceSize, idx)
	f, err := os.CreateTemp(filepath.Join(s.dir, string(id)), "tmp-*")
	if err != nil {
		return cid.Undef, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, size+1))
	if err != nil {
		return cid.Undef, fmt.Errorf("fake: %w", err)
	}
	if n != size {
		return cid.Undef, fmt.Errorf("fake: piece %d has %d bytes, want %d", idx, n, size)
	}
	c, _ := content.CIDFromSHA256(h.Sum(nil))
	if want.Defined() && !want.Equals(c) {
		return cid.Undef, errors.New("fake: CID mismatch")
	}
	if err := os.Rename(f.Name(), s.piecePath(id, idx)); err != nil {
		return cid.Undef, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tasks[id] != t {
		return cid.Undef, errors.New("fake: task dropped")
	}
	t.cids[idx] = c
	s.writes[idx]++
	return c, nil
}

func (s *fakeStore) Have(id content.TaskID) []bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tasks[id]
	if t == nil {
		return nil
	}
	have := make([]bool, len(t.cids))
	for i, c := range t.cids {
		have[i] = c.Defined()
	}
	return have
}

func (s *fakeStore) PieceCID(id content.TaskID, idx int) (cid.Cid, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tasks[id]
	if t == nil || idx < 0 || idx >= len(t.cids) || !t.cids[idx].Defined() {
		return cid.Undef, false
	}
	return t.cids[idx], true
}

func (s *fakeStore) Complete(id content.TaskID, m *content.Manifest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tasks[id]
	if t == nil {
		return errors.New("fake: no task")
	}
	for i, c := range t.cids {
		if !c.Equals(m.Pieces[i]) {
			return fmt.Errorf("fake: manifest piece %d differs", i)
		}
	}
	t.manifest = m
	return nil
}

// NewReader reads held pieces in order; a missing piece is an error.
func (s *fakeStore) NewReader(id content.TaskID, off int64) (io.ReadCloser, error) {
	s.mu.Lock()
	t := s.tasks[id]
	s.mu.Unlock()
	if t == nil {
		return nil, errors.New("fake: no task")
	}
	return &fakeReader{s: s, id: id, t: t, off: off}, nil
}

type fakeReader struct {
	s   *fakeStore
	id  content.TaskID
	t   *fakeTask
	off int64
	f   *os.File
	end int64 // end offset of the open piece
}

func (r *fakeReader) Read(p []byte) (int, error) {
	if r.off >= r.t.length {
		return 0, io.EOF
	}
	if r.f == nil || r.off >= r.end {
		if r.f != nil {
			r.f.Close()
		}
		idx := int(r.off / r.t.pieceSize)
		if _, ok := r.s.PieceCID(r.id, idx); !ok {
			return 0, fmt.Errorf("fake: piece %d not held", idx)
		}
		f, err := os.Open(r.s.piecePath(r.id, idx))
		if err != nil {
			return 0, err
		}
		pOff, size := content.PieceRange(r.t.length, r.t.pieceSize, idx)
		if _, err := f.Seek(r.off-pOff, io.SeekStart); err != nil {
			f.Close()
			return 0, err
		}
		r.f, r.end = f, pOff+size
	}
	if int64(len(p)) > r.end-r.off {
		p = p[:r.end-r.off]
	}
	n, err := r.f.Read(p)
	r.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (r *fakeReader) Close() error {
	if r.f != nil {
		return r.f.Close()
	}
	return nil
}

func (s *fakeStore) Drop(id content.TaskID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tasks, id)
	s.drops++
	return os.RemoveAll(filepath.Join(s.dir, string(id)))
}

func (s *fakeStore) manifest(id content.TaskID) *content.Manifest {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tasks[id]; t != nil {
		return t.manifest
	}
	return nil
}

// checkPieces asserts every held piece of id matches data.
func (s *fakeStore) checkPieces(t *testing.T, id content.TaskID, data []byte) {
	t.Helper()
	s.mu.Lock()
	ft := s.tasks[id]
	s.mu.Unlock()
	if ft == nil {
		return
	}
	for i, c := range ft.cids {
		if !c.Defined() {
			continue
		}
		off, n := content.PieceRange(int64(len(data)), ft.pieceSize, i)
		b, err := os.ReadFile(s.piecePath(id, i))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, data[off:off+n]) || !content.PieceCID(b).Equals(c) {
			t.Fatalf("piece %d is corrupt", i)
		}
	}
}

// origin is a test HTTP origin serving data.
type origin struct {
	release chan struct{} // closed when the test ends (stall)
	data    []byte
	ranges  bool // honour Range
	chunked bool // no Content-Length on full responses
	// hook, if set, may handle request number n (from 1) itself.
	hook func(w http.ResponseWriter, r *http.Request, n int64) bool

	requests  atomic.Int64
	bodyBytes atomic.Int64

	mu      sync.Mutex
	seen    []string // Range header of each request ("" for none)
	headers []http.Header
}

func (o *origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := o.requests.Add(1)
	o.mu.Lock()
	o.seen = append(o.seen, r.Header.Get("Range"))
	o.headers = append(o.headers, r.Header.Clone())
	o.mu.Unlock()
	if o.hook != nil && o.hook(w, r, n) {
		return
	}
	if rng := r.Header.Get("Range"); o.ranges && rng != "" {
		a, b, ok := parseRange(rng, int64(len(o.data)))
		if !ok {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", len(o.data)))
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		o.serveRange(w, a, b, int64(len(o.data)))
		return
	}
	o.serveFull(w)
}

func (o *origin) serveRange(w http.ResponseWriter, a, b, total int64) {
	w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", a, b, total))
	w.Header().Set("Content-Length", strconv.FormatInt(b-a+1, 10))
	w.WriteHeader(http.StatusPartialContent)
	o.write(w, o.data[a:b+1])
}

func (o *origin) serveFull(w http.ResponseWriter) {
	if !o.chunked {
		w.Header().Set("Content-Length", strconv.Itoa(len(o.data)))
	}
	w.WriteHeader(http.StatusOK)
	o.write(w, o.data)
}

func (o *origin) write(w http.ResponseWriter, b []byte) {
	for len(b) > 0 {
		chunk := b[:min(len(b), 64<<10)]
		n, err := w.Write(chunk)
		o.bodyBytes.Add(int64(n))
		if err != nil {
			return
		}
		if o.chunked {
			w.(http.Flusher).Flush()
		}
		b = b[n:]
	}
}

func (o *origin) rangesSeen() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.seen...)
}

// parseRange handles "bytes=a-b" and "bytes=a-".
func parseRange(h string, size int64) (a, b int64, ok bool) {
	spec, found := strings.CutPrefix(h, "bytes=")
	if !found {
		return 0, 0, false
	}
	as, bs, found := strings.Cut(spec, "-")
	if !found {
		return 0, 0, false
	}
	a, err := strconv.ParseInt(as, 10, 64)
	if err != nil || a >= size {
		return 0, 0, false
	}
	b = size - 1
	if bs != "" {
		if b, err = strconv.ParseInt(bs, 10, 64); err != nil || b < a {
			return 0, 0, false
		}
		b = min(b, size-1)
	}
	return a, b, true
}

// recorder is an Observer that checks event order.
type recorder struct {
	t       *testing.T
	mu      sync.Mutex
	starts  int
	length  int64
	pieces  map[int]cid.Cid
	started chan struct{}
}

func newRecorder(t *testing.T) *recorder {
	return &recorder{t: t, pieces: map[int]cid.Cid{}, started: make(chan struct{})}
}

func (r *recorder) Started(task content.TaskID, length, pieceSize int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.starts++
	r.length = length
	if r.starts == 1 {
		close(r.started)
	}
	if pieceSize != content.PieceSize(length) {
		r.t.Errorf("Started: piece size %d for length %d", pieceSize, length)
	}
}

func (r *recorder) Piece(task content.TaskID, idx int, c cid.Cid) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.starts == 0 {
		r.t.Errorf("Piece %d before Started", idx)
	}
	if _, dup := r.pieces[idx]; dup {
		r.t.Errorf("Piece %d reported twice", idx)
	}
	r.pieces[idx] = c
}

// helpers

// ps is the piece size the rule picks for every file in these tests (all are
// far below content.TargetPieces pieces of it). Sizes, ranges and piece
// indexes are written in terms of it, so a change of the rule moves them too.
const ps = content.MinPieceSize

// size35 is three and a half pieces: four pieces, the last one short.
const size35 = 3*ps + ps/2

const mib = 1 << 20

func testData(size int64, seed uint64) []byte {
	n := int(size)
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := 0; i+8 <= n; i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n - n%8; i < n; i++ {
		b[i] = byte(i)
	}
	return b
}

func taskFor(u string) content.TaskID {
	id, err := content.TaskIDFor(u, "", "", content.DefaultQueryFilter)
	if err != nil {
		panic(err)
	}
	return id
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// start registers leak checking first (so it runs last) and serves o.
func start(t *testing.T, o *origin) *httptest.Server {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	o.release = make(chan struct{})
	srv := httptest.NewServer(o)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(o.release) }) // runs first: frees stalled handlers
	return srv
}

// stall holds a hooked request until the client gives up or the test ends.
func (o *origin) stall(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-o.release:
	}
}

// newTestFetcher has fast retries and its own client.
func newTestFetcher(t *testing.T, w PieceWriter, opts ...Option) *Fetcher {
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	f := NewFetcher(w, append([]Option{WithHTTPClient(&http.Client{Transport: tr}), WithTimeout(5 * time.Second)}, opts...)...)
	f.backoff = 5 * time.Millisecond
	f.maxBackoff = 50 * time.Millisecond
	return f
}

// fetchOK serves o, fetches path from it into a fresh fake store, and
// asserts the fetch succeeded with a manifest that describes o.data.
func fetchOK(t *testing.T, o *origin, path string) *fakeStore {
	t.Helper()
	srv := start(t, o)
	st := newFakeStore(t)
	u := srv.URL + path
	m, err := newTestFetcher(t, st).Fetch(context.Background(), Request{Task: taskFor(u), URL: u}, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkManifest(t, m, taskFor(u), o.data)
	return st
}

// checkManifest asserts m describes data.
func checkManifest(t *testing.T, m *content.Manifest, id content.TaskID, data []byte) {
	t.Helper()
	if m == nil {
		t.Fatal("nil manifest")
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	length := int64(len(data))
	if m.TaskID != id || m.Length != length || m.PieceSize != content.PieceSize(length) || m.SHA256 != sha(data) {
		t.Fatalf("manifest %+v does not describe the data", m)
	}
	for i, c := range m.Pieces {
		off, n := content.PieceRange(length, m.PieceSize, i)
		if !c.Equals(content.PieceCID(data[off : off+n])) {
			t.Fatalf("piece %d CID wrong", i)
		}
	}
}
