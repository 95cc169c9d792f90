package swarm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	crand "crypto/rand"
	"github.com/dfp2p/dfp2p/cdn"
	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/crypto"
	"github.com/dfp2p/dfp2p/exchange"
	"github.com/dfp2p/dfp2p/internal/nodetest"
	"github.com/dfp2p/dfp2p/store"
	lpcrypto "github.com/libp2p/go-libp2p/core/crypto"
)

const ps = content.MinPieceSize // the piece size the rule picks for the test files

func openStore(t testing.TB) (*store.Store, string) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(dir, store.WithSync(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, dir
}

// testFile is a task fetched once from an HTTP origin by cdn into seed: its
// manifest is the one cdn builds.
type testFile struct {
	url  string
	id   content.TaskID
	data []byte
	m    *content.Manifest
	seed *store.Store
}

func newTestFile(t *testing.T, size int, seed uint64) *testFile {
	t.Helper()
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{byte(seed), 7}).Read(data)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "blob", time.Time{}, bytes.NewReader(data))
	}))
	t.Cleanup(srv.Close)
	u := srv.URL + "/blob?X-Amz-Signature=secret"
	id, err := content.TaskIDFor(u, "", "", content.DefaultQueryFilter)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := openStore(t)
	m, err := cdn.NewFetcher(st, cdn.WithHTTPClient(srv.Client())).Fetch(context.Background(), cdn.Request{Task: id, URL: u}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.PieceSize != ps {
		t.Fatalf("piece size %d, tests assume %d", m.PieceSize, ps)
	}
	return &testFile{url: u, id: id, data: data, m: m, seed: st}
}

func (f *testFile) pieceLen(i int) int64 {
	_, n := content.PieceRange(f.m.Length, f.m.PieceSize, i)
	return n
}

// provider is a peer serving pieces and statuses from its own store.
type provider struct {
	h       host.Host
	st      *store.Store
	dir     string
	srv     *exchange.Server
	uploads atomic.Int64 // pieces (partly) uploaded
}

// newProvider holds the given pieces of f (all and complete when pieces is
// nil).
func newProvider(t *testing.T, f *testFile, pieces []int) *provider {
	t.Helper()
	p := &provider{}
	p.st, p.dir = openStore(t)
	if err := p.st.Begin(f.id, f.url, f.m.Length, f.m.PieceSize); err != nil {
		t.Fatal(err)
	}
	complete := pieces == nil
	if complete {
		for i := range f.m.Pieces {
			pieces = append(pieces, i)
		}
	}
	for _, i := range pieces {
		copyPiece(t, f.seed, p.st, f.id, i)
	}
	if complete {
		if err := p.st.Complete(f.id, f.m); err != nil {
			t.Fatal(err)
		}
	}
	p.start(t)
	return p
}

func copyPiece(t *testing.T, from, to *store.Store, id content.TaskID, i int) {
	t.Helper()
	file, _, c, err := from.OpenPiece(id, i)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if _, err := to.WritePiece(id, i, c, file); err != nil {
		t.Fatal(err)
	}
}

// start serves p's store from a new host.
func (p *provider) start(t *testing.T) {
	p.h = nodetest.Host(t)
	p.srv = exchange.NewServer(p.h, p.st, exchange.WithStatus(exchange.StoreStatus(p.st)),
		exchange.WithUploadObserver(func(peer.ID, int64) { p.uploads.Add(1) }))
	srv := p.srv
	t.Cleanup(func() { srv.Close() })
}

func (p *provider) stop() {
	p.srv.Close()
	p.h.Close()
}

func (p *provider) info() peer.AddrInfo { return peer.AddrInfo{ID: p.h.ID(), Addrs: p.h.Addrs()} }

// staticFinder returns a fixed list of providers.
type staticFinder struct {
	mu  sync.Mutex
	ais []peer.AddrInfo
}

func (f *staticFinder) FindProviders(ctx context.Context, _ content.TaskID, max int) ([]peer.AddrInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]peer.AddrInfo(nil), f.ais[:min(max, len(f.ais))]...), nil
}

func (f *staticFinder) set(ps ...*provider) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ais = nil
	for _, p := range ps {
		f.ais = append(f.ais, p.info())
	}
}

// client is a downloading peer.
type client struct {
	h      host.Host
	st     *store.Store
	finder *staticFinder
	f      *Fetcher
	log    *lockedBuffer
	mu     sync.Mutex
	bytes  map[peer.ID]int64
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func newClient(t *testing.T, opts ...Option) *client {
	t.Helper()
	c := &client{h: nodetest.Host(t), finder: &staticFinder{}, log: &lockedBuffer{}, bytes: map[peer.ID]int64{}}
	c.st, _ = openStore(t)
	xc := exchange.NewClient(c.h, exchange.WithIdleTimeout(5*time.Second))
	base := []Option{
		WithLogger(slog.New(slog.NewTextHandler(c.log, &slog.HandlerOptions{Level: slog.LevelDebug}))),
		WithByteCounter(func(from peer.ID, n int64) {
			c.mu.Lock()
			c.bytes[from] += n
			c.mu.Unlock()
		}),
		WithRefresh(200 * time.Millisecond),
		WithLookupTimeout(2 * time.Second),
		WithStallTimeout(5 * time.Second),
	}
	c.f = New(c.h, xc, c.st, c.finder, append(base, opts...)...)
	return c
}

func (c *client) bytesFrom(p *provider) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes[p.h.ID()]
}

func (c *client) totalBytes() (sum int64, peers int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.bytes {
		if n > 0 {
			sum += n
			peers++
		}
	}
	return sum, peers
}

// check verifies that the client's store holds f, complete, with f's
// manifest.
func (c *client) check(t *testing.T, f *testFile, m *content.Manifest) {
	t.Helper()
	want, _ := f.m.Encode()
	got, err := m.Encode()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("manifest differs from cdn's:\n%s\n%s", got, want)
	}
	r, err := c.st.NewReader(f.id, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil || n != int64(len(f.data)) {
		t.Fatalf("read back %d bytes: %v", n, err)
	}
	if sum := sha256.Sum256(f.data); !bytes.Equal(h.Sum(nil), sum[:]) {
		t.Fatal("sha256 of the stored file differs")
	}
	task, err := c.st.Task(f.id)
	if err != nil || !task.Complete || !bytes.Equal(task.Manifest, want) {
		t.Fatalf("task not complete in the store: %+v %v", task, err)
	}
	if task.URL != strings.TrimSuffix(f.url, "?X-Amz-Signature=secret") {
		t.Fatalf("recorded URL %q", task.URL)
	}
}

// recorder checks the cdn.Observer contract.
type recorder struct {
	t       *testing.T
	mu      sync.Mutex
	started int
	pieces  map[int]cid.Cid
	onPiece func(n int)
}

func newRecorder(t *testing.T) *recorder { return &recorder{t: t, pieces: map[int]cid.Cid{}} }

func (r *recorder) Started(content.TaskID, int64, int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started++
}

func (r *recorder) Piece(_ content.TaskID, idx int, c cid.Cid) {
	r.mu.Lock()
	if r.started != 1 {
		r.t.Errorf("Piece %d before Started", idx)
	}
	if _, dup := r.pieces[idx]; dup {
		r.t.Errorf("Piece %d twice", idx)
	}
	r.pieces[idx] = c
	n, fn := len(r.pieces), r.onPiece
	r.mu.Unlock()
	if fn != nil {
		fn(n)
	}
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pieces)
}

func TestFetchFromCompleteProviders(t *testing.T) {
	f := newTestFile(t, 16<<20, 1)
	a, b, c := newProvider(t, f, nil), newProvider(t, f, nil), newProvider(t, f, nil)
	// A provider without the task and one with other geometry are ignored.
	empty := &provider{}
	empty.st, empty.dir = openStore(t)
	empty.start(t)
	odd := &provider{}
	odd.st, odd.dir = openStore(t)
	if err := odd.st.Begin(f.id, f.url, f.m.Length+ps, ps); err != nil {
		t.Fatal(err)
	}
	if _, err := odd.st.WritePiece(f.id, 0, cid.Undef, bytes.NewReader(make([]byte, ps))); err != nil {
		t.Fatal(err)
	}
	odd.start(t)

	cl := newClient(t)
	cl.finder.set(odd, empty, a, b, c)
	rec := newRecorder(t)
	start := time.Now()
	m, err := cl.f.Fetch(context.Background(), Request{Task: f.id, URL: f.url, Digest: "sha256:" + strings.ToUpper(f.m.SHA256)}, rec)
	if err != nil {
		t.Fatalf("%v\n%s", err, cl.log)
	}
	t.Logf("fetched %d MiB in %v", len(f.data)>>20, time.Since(start))
	cl.check(t, f, m)
	sum, peers := cl.totalBytes()
	if sum != int64(len(f.data)) || peers < 2 {
		t.Fatalf("%d bytes from %d providers", sum, peers)
	}
	if rec.count() != len(f.m.Pieces) {
		t.Fatalf("observer saw %d pieces", rec.count())
	}
	if odd.uploads.Load() != 0 || empty.uploads.Load() != 0 {
		t.Fatal("an unusable provider was asked for pieces")
	}
	if !strings.Contains(cl.log.String(), "geometry") {
		t.Fatalf("geometry disagreement not logged:\n%s", cl.log)
	}
}

func TestFetchDisjointHalves(t *testing.T) {
	f := newTestFile(t, 16<<20+12345, 2)
	n := len(f.m.Pieces)
	var lo, hi []int
	for i := range n {
		if i < n/2 {
			lo = append(lo, i)
		} else {
			hi = append(hi, i)
		}
	}
	a, b := newProvider(t, f, lo), newProvider(t, f, hi)
	cl := newClient(t)
	cl.finder.set(a, b)
	m, err := cl.f.Fetch(context.Background(), Request{Task: f.id, URL: f.url}, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, cl.log)
	}
	cl.check(t, f, m)
	var wantA, wantB int64
	for _, i := range lo {
		wantA += f.pieceLen(i)
	}
	for _, i := range hi {
		wantB += f.pieceLen(i)
	}
	if cl.bytesFrom(a) != wantA || cl.bytesFrom(b) != wantB {
		t.Fatalf("bytes from a %d (want %d), b %d (want %d)", cl.bytesFrom(a), wantA, cl.bytesFrom(b), wantB)
	}
}

func TestFetchCorruptProvider(t *testing.T) {
	f := newTestFile(t, 16<<20, 3)
	good, bad := newProvider(t, f, nil), newProvider(t, f, nil)
	// Overwrite every piece file of bad with garbage of the same size: its
	// store still claims the right CIDs.
	files, err := filepath.Glob(filepath.Join(bad.dir, "tasks", string(f.id), "*-*"))
	if err != nil || len(files) != len(f.m.Pieces) {
		t.Fatalf("%d piece files: %v", len(files), err)
	}
	for i, name := range files {
		info, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		garbage := bytes.Repeat([]byte{byte(i + 1)}, int(info.Size()))
		if err := os.WriteFile(name, garbage, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var badFails, drops int // the failure observer runs on Fetch's goroutine
	cl := newClient(t, WithFailureObserver(func(from peer.ID, err error, dropped bool) {
		if from == bad.h.ID() && errors.Is(err, store.ErrBadPiece) {
			badFails++
		}
		if dropped {
			drops++
		}
	}))
	cl.finder.set(bad, good)
	m, err := cl.f.Fetch(context.Background(), Request{Task: f.id, URL: f.url}, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, cl.log)
	}
	cl.check(t, f, m)
	if n := cl.bytesFrom(bad); n != 0 {
		t.Fatalf("%d bytes stored from the corrupt provider", n)
	}
	if badFails < 1 || drops != 1 {
		t.Fatalf("failure observer: %d bad pieces from the corrupt provider, %d drops; want >= 1 and 1", badFails, drops)
	}
	// The first pick spreads over both providers, so bad was asked once (one
	// stream of at most DefaultPeerLimit pieces, aborted at its first bad
	// piece) and then never again.
	if up := bad.uploads.Load(); up < 1 || up > DefaultPeerLimit {
		t.Fatalf("corrupt provider uploaded %d pieces", up)
	}
	logs := cl.log.String()
	if !strings.Contains(logs, "bad piece") || !strings.Contains(logs, bad.h.ID().String()) {
		t.Fatalf("bad piece not logged:\n%s", logs)
	}
}

func TestFetchNoProviders(t *testing.T) {
	f := newTestFile(t, 4<<20, 4)
	cl := newClient(t, WithLookupTimeout(time.Second))
	start := time.Now()
	_, err := cl.f.Fetch(context.Background(), Request{Task: f.id, URL: f.url}, nil)
	if !errors.Is(err, ErrNoProviders) {
		t.Fatalf("no providers: %v", err)
	}
	if el := time.Since(start); el > 1500*time.Millisecond {
		t.Fatalf("took %v", el)
	}
	// Providers without the task, or that do not answer status queries.
	empty := &provider{}
	empty.st, empty.dir = openStore(t)
	empty.start(t)
	plain := nodetest.Host(t)
	srv := exchange.NewServer(plain, f.seed) // no WithStatus
	defer srv.Close()
	cl.finder.set(empty)
	cl.finder.ais = append(cl.finder.ais, peer.AddrInfo{ID: plain.ID(), Addrs: plain.Addrs()},
		peer.AddrInfo{ID: cl.h.ID(), Addrs: cl.h.Addrs()}) // self is skipped
	start = time.Now()
	_, err = cl.f.Fetch(context.Background(), Request{Task: f.id, URL: f.url}, nil)
	if !errors.Is(err, ErrNoProviders) {
		t.Fatalf("useless providers: %v", err)
	}
	if el := time.Since(start); el > 1500*time.Millisecond {
		t.Fatalf("took %v", el)
	}
	t.Log(err)
	if _, err := cl.st.Task(f.id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("task created without providers: %v", err)
	}
}

func TestFetchStallThenResume(t *testing.T) {
	f := newTestFile(t, 20<<20, 5)
	a, b := newProvider(t, f, nil), newProvider(t, f, nil)
	cl := newClient(t, WithMaxConcurrent(1), WithStallTimeout(600*time.Millisecond))
	cl.finder.set(a, b)
	rec := newRecorder(t)
	rec.onPiece = func(n int) {
		if n == 2 { // both providers go away mid-download
			a.stop()
			b.stop()
		}
	}
	start := time.Now()
	_, err := cl.f.Fetch(context.Background(), Request{Task: f.id, URL: f.url}, rec)
	if !errors.Is(err, ErrStalled) {
		t.Fatalf("want ErrStalled, got %v\n%s", err, cl.log)
	}
	t.Logf("%v after %v", err, time.Since(start))
	held := 0
	var missing int64
	for i, h := range cl.st.Have(f.id) {
		if h {
			held++
		} else {
			missing += f.pieceLen(i)
		}
	}
	if held < 2 || held == len(f.m.Pieces) {
		t.Fatalf("%d pieces kept after the stall", held)
	}
	if task, err := cl.st.Task(f.id); err != nil || task.Complete {
		t.Fatalf("task after stall: %+v %v", task, err)
	}

	// a comes back (new host, same store): a second Fetch fetches only the
	// rest.
	a.uploads.Store(0)
	a.start(t)
	cl.finder.set(a)
	cl.mu.Lock()
	clear(cl.bytes)
	cl.mu.Unlock()
	rec2 := newRecorder(t)
	m, err := cl.f.Fetch(context.Background(), Request{Task: f.id, URL: f.url}, rec2)
	if err != nil {
		t.Fatalf("%v\n%s", err, cl.log)
	}
	cl.check(t, f, m)
	if sum, _ := cl.totalBytes(); sum != missing {
		t.Fatalf("resume fetched %d bytes, %d were missing", sum, missing)
	}
	if up := a.uploads.Load(); up != int64(len(f.m.Pieces)-held) {
		t.Fatalf("provider uploaded %d pieces, %d were missing", up, len(f.m.Pieces)-held)
	}
	if rec2.count() != len(f.m.Pieces) {
		t.Fatalf("observer saw %d pieces on resume", rec2.count())
	}
}

func TestFetchDigestMismatch(t *testing.T) {
	f := newTestFile(t, 8<<20, 6)
	a := newProvider(t, f, []int{0, 1})
	b := newProvider(t, f, nil)
	cl := newClient(t)
	cl.finder.set(a, b)
	start := time.Now()
	_, err := cl.f.Fetch(context.Background(), Request{Task: f.id, URL: f.url, Digest: "sha256:" + strings.Repeat("0", 64)}, nil)
	if !errors.Is(err, cdn.ErrDigestMismatch) {
		t.Fatalf("want ErrDigestMismatch, got %v", err)
	}
	t.Logf("%v after %v", err, time.Since(start))
	if _, err := cl.st.Task(f.id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("task kept after a digest mismatch: %v", err)
	}
	if _, err := cl.f.Fetch(context.Background(), Request{Task: f.id, URL: f.url, Digest: "sha256:zz"}, nil); err == nil {
		t.Fatal("malformed digest accepted")
	}
}

func TestFetchContextCancel(t *testing.T) {
	f := newTestFile(t, 8<<20, 7)
	a := newProvider(t, f, nil)
	cl := newClient(t, WithMaxConcurrent(1))
	cl.finder.set(a)
	ctx, cancel := context.WithCancel(context.Background())
	rec := newRecorder(t)
	rec.onPiece = func(n int) { cancel() }
	_, err := cl.f.Fetch(ctx, Request{Task: f.id, URL: f.url}, rec)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
}

// Pieces held locally from another version of the file are dropped when the
// providers' manifest disagrees with them.
func TestFetchStaleLocalPieces(t *testing.T) {
	f := newTestFile(t, 8<<20, 8)
	a := newProvider(t, f, nil)
	cl := newClient(t)
	cl.finder.set(a)
	if err := cl.st.Begin(f.id, f.url, f.m.Length, f.m.PieceSize); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.st.WritePiece(f.id, 1, cid.Undef, bytes.NewReader(make([]byte, ps))); err != nil {
		t.Fatal(err)
	}
	copyPiece(t, f.seed, cl.st, f.id, 2) // a good piece is dropped too
	m, err := cl.f.Fetch(context.Background(), Request{Task: f.id, URL: f.url}, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, cl.log)
	}
	cl.check(t, f, m)
	if !strings.Contains(cl.log.String(), "starting the task over") {
		t.Fatalf("stale pieces not reported:\n%s", cl.log)
	}
}

// A provider whose manifest lies about the whole-file sha256 (its pieces are
// right): the download fails with ErrManifestMismatch.
func TestFetchManifestMismatch(t *testing.T) {
	f := newTestFile(t, 8<<20, 9)
	a := newProvider(t, f, []int{0, 1, 2, 3})
	bogus := *f.m
	bogus.SHA256 = strings.Repeat("e", 64)
	if err := a.st.Complete(f.id, &bogus); err != nil {
		t.Fatal(err)
	}
	cl := newClient(t)
	cl.finder.set(a)
	_, err := cl.f.Fetch(context.Background(), Request{Task: f.id, URL: f.url}, nil)
	if !errors.Is(err, ErrManifestMismatch) {
		t.Fatalf("want ErrManifestMismatch, got %v", err)
	}
	if task, err := cl.st.Task(f.id); err != nil || task.Complete || task.Held != len(f.m.Pieces) {
		t.Fatalf("task after mismatch: %+v %v", task, err)
	}
}

// A manifest that appears mid-download (a provider completes) is adopted.
func TestFetchManifestArrivesLater(t *testing.T) {
	f := newTestFile(t, 8<<20, 10)
	all := []int{0, 1, 2, 3}
	a := newProvider(t, f, all) // every piece, not complete: no manifest
	cl := newClient(t, WithMaxConcurrent(1))
	cl.finder.set(a)
	rec := newRecorder(t)
	rec.onPiece = func(n int) {
		if n == 1 {
			if err := a.st.Complete(f.id, f.m); err != nil {
				t.Error(err)
			}
		}
		if n <= 2 {
			// Slow down (the loop waits for the observer) so that a
			// refresh starts and comes back before the last piece.
			time.Sleep(250 * time.Millisecond)
		}
	}
	m, err := cl.f.Fetch(context.Background(), Request{Task: f.id, URL: f.url}, rec)
	if err != nil {
		t.Fatalf("%v\n%s", err, cl.log)
	}
	cl.check(t, f, m)
	if !strings.Contains(cl.log.String(), "using the providers' manifest") {
		t.Fatalf("manifest not adopted:\n%s", cl.log)
	}
}

func TestFetchEmptyFile(t *testing.T) {
	f := newTestFile(t, 0, 11)
	a := newProvider(t, f, nil)
	cl := newClient(t)
	cl.finder.set(a)
	m, err := cl.f.Fetch(context.Background(), Request{Task: f.id, URL: f.url}, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, cl.log)
	}
	cl.check(t, f, m)
}

// Providers that hold only some pieces and gain none (they are stuck on the
// same pieces) end the download after the starve timeout, well before the
// stall timeout, with what they had stored.
func TestFetchStarved(t *testing.T) {
	f := newTestFile(t, 8<<20, 11)
	a := newProvider(t, f, []int{0, 1})
	cl := newClient(t, WithStarveTimeout(time.Second), WithStallTimeout(time.Minute))
	cl.finder.set(a)
	start := time.Now()
	_, err := cl.f.Fetch(context.Background(), Request{Task: f.id, URL: f.url}, nil)
	if !errors.Is(err, ErrStalled) {
		t.Fatalf("want ErrStalled, got %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("gave up after %s", d)
	}
	if got := fmt.Sprint(cl.st.Have(f.id)); got != "[true true false false]" {
		t.Fatalf("kept %s, want the two pieces the provider had", got)
	}
}

// A manifest the check refuses is ignored: the download still completes from
// the providers' pieces, and the manifest is built from them.
func TestFetchManifestCheck(t *testing.T) {
	f := newTestFile(t, 6<<20, 12)
	a := newProvider(t, f, nil)
	var checked atomic.Int32
	cl := newClient(t, WithManifestCheck(func(st *exchange.Status) error {
		checked.Add(1)
		return errors.New("not signed by the cluster")
	}))
	cl.finder.set(a)
	m, err := cl.f.Fetch(context.Background(), Request{Task: f.id, URL: f.url}, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, cl.log)
	}
	cl.check(t, f, m)
	if checked.Load() == 0 || !strings.Contains(cl.log.String(), "ignoring a provider's manifest") {
		t.Fatal("the manifest check was not applied")
	}
}

// SignedBy accepts a manifest signed under the cluster CA and refuses an
// unsigned one, another CA's and a tampered one.
func TestSignedBy(t *testing.T) {
	f := newTestFile(t, 2<<20, 13)
	mb, _ := f.m.Encode()
	ca, _ := crypto.NewCA()
	other, _ := crypto.NewCA()
	sk, _, _ := lpcrypto.GenerateEd25519Key(crand.Reader)
	id, _ := peer.IDFromPrivateKey(sk)
	sign := func(ca *crypto.CA) *exchange.Status {
		cert, err := ca.Issue(id, crypto.RoleSeed, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		sm, err := crypto.SignManifest(mb, sk, cert)
		if err != nil {
			t.Fatal(err)
		}
		return &exchange.Status{Manifest: mb, Signer: sm.Cert, Sig: sm.Sig}
	}
	check := SignedBy(ca.Public())
	if err := check(sign(ca)); err != nil {
		t.Fatalf("genuine signature refused: %v", err)
	}
	if check(&exchange.Status{Manifest: mb}) == nil {
		t.Fatal("unsigned manifest accepted")
	}
	if check(sign(other)) == nil {
		t.Fatal("another CA's signature accepted")
	}
	st := sign(ca)
	st.Manifest = bytes.Replace(mb, []byte(`"length":`), []byte(`"length":7`), 1)
	if check(st) == nil {
		t.Fatal("tampered manifest accepted")
	}
}
