package swarm

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dfp2p/dfp2p/cdn"
	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/exchange"
	"github.com/dfp2p/dfp2p/internal/nodetest"
)

// memDHT is an in-memory provider table standing in for the DHT.
type memDHT struct {
	mu    sync.Mutex
	provs map[content.TaskID][]peer.AddrInfo
}

// memNode is one node's view of a memDHT: Finder and Announcer.
type memNode struct {
	d    *memDHT
	self peer.AddrInfo
}

func (n memNode) FindProviders(_ context.Context, task content.TaskID, max int) ([]peer.AddrInfo, error) {
	n.d.mu.Lock()
	defer n.d.mu.Unlock()
	var out []peer.AddrInfo
	for _, ai := range n.d.provs[task] {
		if ai.ID != n.self.ID && len(out) < max {
			out = append(out, ai)
		}
	}
	return out, nil
}

func (n memNode) Provide(_ context.Context, task content.TaskID) error {
	n.d.mu.Lock()
	defer n.d.mu.Unlock()
	for _, ai := range n.d.provs[task] {
		if ai.ID == n.self.ID {
			return nil
		}
	}
	n.d.provs[task] = append(n.d.provs[task], n.self)
	return nil
}

// slowReader trickles its bytes so that the elected reader is still reading
// the origin while the others start.
type slowReader struct {
	r     *bytes.Reader
	count *atomic.Int64
}

func (s slowReader) Read(p []byte) (int, error) {
	time.Sleep(2 * time.Millisecond)
	n, err := s.r.Read(p[:min(len(p), 256<<10)])
	s.count.Add(int64(n))
	return n, err
}

func (s slowReader) Seek(off int64, whence int) (int64, error) { return s.r.Seek(off, whence) }

// Three nodes want a task nobody holds at the same moment: one is elected to
// read the origin, the other two fetch from it as its pieces arrive, and the
// origin serves the file once.
func TestFetchOrElectColdStart(t *testing.T) {
	data := make([]byte, 6*ps+ps/3)
	rand.NewChaCha8([32]byte{9}).Read(data)
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "blob", time.Time{}, slowReader{bytes.NewReader(data), &served})
	}))
	t.Cleanup(srv.Close)
	u := srv.URL + "/cold"
	task, _ := content.TaskIDFor(u, "", "", content.DefaultQueryFilter)
	dht := &memDHT{provs: map[content.TaskID][]peer.AddrInfo{}}

	const nodes = 3
	var elected atomic.Int32
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	for i := range nodes {
		h := nodetest.Host(t)
		st, _ := openStore(t)
		xs := exchange.NewServer(h, st, exchange.WithStatus(exchange.StoreStatus(st)))
		t.Cleanup(func() { xs.Close() })
		n := memNode{d: dht, self: peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}}
		f := New(h, exchange.NewClient(h), st, n, WithRefresh(100*time.Millisecond), WithLookupTimeout(time.Second),
			WithLogger(slog.New(slog.DiscardHandler)))
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			m, err := FetchOrElect(ctx, f, n, 300*time.Millisecond, Request{Task: task, URL: u}, nil)
			if errors.Is(err, ErrNoProviders) {
				elected.Add(1)
				m, err = cdn.NewFetcher(st, cdn.WithHTTPClient(srv.Client())).Fetch(ctx, cdn.Request{Task: task, URL: u}, nil)
			}
			if err == nil && m.Length != int64(len(data)) {
				err = errors.New("wrong length")
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
	if elected.Load() != 1 {
		t.Fatalf("%d nodes read the origin, want 1", elected.Load())
	}
	// cdn's first ranged request may read a little past what it keeps.
	if got := served.Load(); got < int64(len(data)) || got > int64(len(data))*11/10 {
		t.Fatalf("origin served %d bytes, want about %d (once)", got, len(data))
	}
}

// Without an election (settle 0) FetchOrElect is Fetch.
func TestFetchOrElectNoSettle(t *testing.T) {
	c := newClient(t)
	f := newTestFile(t, int(2*ps), 3)
	start := time.Now()
	_, err := FetchOrElect(context.Background(), c.f, nil, 0, Request{Task: f.id, URL: f.url}, nil)
	if !errors.Is(err, ErrNoProviders) {
		t.Fatalf("err = %v, want ErrNoProviders", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %s", d)
	}
}

// Three nodes hold the same first half of a task and nobody holds the rest
// (the seed died under them): each stalls, then they elect one to read the
// rest from the origin; the others copy it from the reader, and the origin
// serves the missing half once instead of three times.
func TestElectOnStall(t *testing.T) {
	f := newTestFile(t, int(6*ps), 21)
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "blob", time.Time{}, slowReader{bytes.NewReader(f.data), &served})
	}))
	t.Cleanup(srv.Close)
	dht := &memDHT{provs: map[content.TaskID][]peer.AddrInfo{}}

	const nodes = 3
	var elected atomic.Int32
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	for i := range nodes {
		h := nodetest.Host(t)
		st, _ := openStore(t)
		if err := st.Begin(f.id, f.url, f.m.Length, f.m.PieceSize); err != nil {
			t.Fatal(err)
		}
		for p := range 3 {
			copyPiece(t, f.seed, st, f.id, p)
		}
		xs := exchange.NewServer(h, st, exchange.WithStatus(exchange.StoreStatus(st)))
		t.Cleanup(func() { xs.Close() })
		n := memNode{d: dht, self: peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}}
		_ = n.Provide(context.Background(), f.id)
		fe := New(h, exchange.NewClient(h), st, n, WithRefresh(100*time.Millisecond), WithLookupTimeout(time.Second),
			WithStarveTimeout(time.Second), WithLogger(slog.New(slog.DiscardHandler)))
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			req := Request{Task: f.id, URL: f.url}
			m, err := fe.Fetch(ctx, req, nil)
			if errors.Is(err, ErrStalled) {
				m, err = ElectOnStall(ctx, fe, req, nil, err)
			}
			if errors.Is(err, ErrStalled) {
				elected.Add(1)
				m, err = cdn.NewFetcher(st, cdn.WithHTTPClient(srv.Client())).Fetch(ctx, cdn.Request{Task: f.id, URL: srv.URL + "/blob?X-Amz-Signature=secret"}, nil)
			}
			if err == nil && m.SHA256 != f.m.SHA256 {
				err = errors.New("wrong file")
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
	if elected.Load() != 1 {
		t.Fatalf("%d nodes read the origin, want 1", elected.Load())
	}
	half := f.m.Length - 3*ps
	// cdn's first ranged request may read a little past what it keeps.
	if got := served.Load(); got < half || got > half+ps {
		t.Fatalf("origin served %d bytes, want about the missing %d once", got, half)
	}
}
