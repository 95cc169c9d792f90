package cdn

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/dfp2p/dfp2p/content"
)

func TestSeedOncePerTask(t *testing.T) {
	o := &origin{data: testData(size35, 20), ranges: true}
	srv := start(t, o)
	st := newFakeStore(t)
	rec := newRecorder(t)
	s := NewSeed(newTestFetcher(t, st), rec)
	defer s.Close()
	u := srv.URL + "/popular"
	id := taskFor(u)

	var wg sync.WaitGroup
	jobs := make([]*Job, 20)
	for i := range jobs {
		wg.Go(func() {
			j := s.Start(Request{Task: id, URL: u})
			jobs[i] = j
			length, pieceSize, err := j.Started(context.Background())
			if err != nil || length != size35 || pieceSize != ps {
				t.Errorf("Started: %d %d %v", length, pieceSize, err)
			}
			<-j.Done()
			m, err := j.Result()
			if err != nil {
				t.Error(err)
				return
			}
			checkManifest(t, m, id, o.data)
		})
	}
	wg.Wait()
	for _, j := range jobs {
		if j != jobs[0] {
			t.Fatal("different jobs for one task")
		}
	}
	if got := o.bodyBytes.Load(); got != size35 {
		t.Fatalf("origin served %d bytes, want %d", got, size35)
	}
	if rec.starts != 1 || len(rec.pieces) != 4 {
		t.Fatalf("observer: %d starts, %d pieces", rec.starts, len(rec.pieces))
	}
	// A finished job is returned again until forgotten.
	if s.Start(Request{Task: id, URL: u}) != jobs[0] {
		t.Fatal("finished job not reused")
	}
	s.Forget(id)
	if s.Start(Request{Task: id, URL: u}) == jobs[0] {
		t.Fatal("forgotten job reused")
	}
}

func TestSeedFailureShared(t *testing.T) {
	o := &origin{hook: func(w http.ResponseWriter, r *http.Request, n int64) bool {
		http.NotFound(w, r)
		return true
	}}
	srv := start(t, o)
	s := NewSeed(newTestFetcher(t, newFakeStore(t)), nil)
	defer s.Close()
	s.failedTTL = 300 * time.Millisecond
	u := srv.URL + "/gone"
	id := taskFor(u)

	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, _, err := s.Start(Request{Task: id, URL: u}).Started(ctx)
			var oe *OriginError
			if !errors.As(err, &oe) || oe.StatusCode != 404 {
				t.Errorf("Started: %v", err)
			}
		})
	}
	wg.Wait()
	j := s.Start(Request{Task: id, URL: u})
	if _, err := j.Result(); err == nil {
		t.Fatal("no error")
	}
	if got := o.requests.Load(); got != 1 {
		t.Fatalf("%d origin requests for a burst, want 1", got)
	}
	time.Sleep(350 * time.Millisecond)
	j2 := s.Start(Request{Task: id, URL: u})
	if j2 == j {
		t.Fatal("failed job reused after its TTL")
	}
	<-j2.Done()
	if got := o.requests.Load(); got != 2 {
		t.Fatalf("%d origin requests, want 2", got)
	}
}

func TestSeedCloseCancels(t *testing.T) {
	o := &origin{data: testData(size35, 21), ranges: true}
	o.hook = func(w http.ResponseWriter, r *http.Request, n int64) bool {
		if n == 1 {
			return false
		}
		o.stall(r)
		return true
	}
	srv := start(t, o)
	s := NewSeed(newTestFetcher(t, newFakeStore(t)), nil)
	u := srv.URL + "/slow"
	j := s.Start(Request{Task: taskFor(u), URL: u})
	if _, _, err := j.Started(context.Background()); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	s.Close()
	if time.Since(began) > time.Second {
		t.Fatalf("Close took %s", time.Since(began))
	}
	if _, err := j.Result(); !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v, want ErrClosed", err)
	}
	if _, err := s.Start(Request{Task: taskFor(u), URL: u}).Result(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close: %v", err)
	}
}

func TestSeedJobTimeout(t *testing.T) {
	o := &origin{}
	o.hook = func(w http.ResponseWriter, r *http.Request, n int64) bool {
		o.stall(r)
		return true
	}
	srv := start(t, o)
	s := NewSeed(newTestFetcher(t, newFakeStore(t)), nil, WithJobTimeout(100*time.Millisecond))
	defer s.Close()
	u := srv.URL + "/never"
	_, _, err := s.Start(Request{Task: taskFor(u), URL: u}).Started(context.Background())
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("err = %v", err)
	}
}

// swarmFunc adapts a function to Swarm.
type swarmFunc func(ctx context.Context, req Request, obs Observer) (*content.Manifest, error)

func (f swarmFunc) Fetch(ctx context.Context, req Request, obs Observer) (*content.Manifest, error) {
	return f(ctx, req, obs)
}

// A seed with a swarm reads the origin only when the swarm cannot supply the
// task, and then resumes from the pieces the swarm stored.
func TestSeedSwarmFirst(t *testing.T) {
	data := testData(size35, 21)
	o := &origin{data: data, ranges: true}
	srv := start(t, o)
	peers := httptest.NewServer(&origin{data: data, ranges: true}) // stands in for other seeds
	t.Cleanup(peers.Close)
	u := srv.URL + "/f"
	id := taskFor(u)

	// The swarm has it: the origin is not read.
	st := newFakeStore(t)
	full := swarmFunc(func(ctx context.Context, req Request, obs Observer) (*content.Manifest, error) {
		return newTestFetcher(t, st).Fetch(ctx, Request{Task: req.Task, URL: peers.URL + "/f"}, obs)
	})
	s := NewSeed(newTestFetcher(t, st), nil, WithSwarm(full))
	m, err := s.Start(Request{Task: id, URL: u}).Result()
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	checkManifest(t, m, id, data)
	if got := o.bodyBytes.Load(); got != 0 {
		t.Fatalf("origin served %d bytes though the swarm had the task", got)
	}

	// The swarm stores the first piece and gives up: the origin supplies
	// only the rest.
	st = newFakeStore(t)
	partial := swarmFunc(func(ctx context.Context, req Request, obs Observer) (*content.Manifest, error) {
		if err := st.Begin(req.Task, req.URL, size35, ps); err != nil {
			return nil, err
		}
		if _, err := st.WritePiece(req.Task, 0, cid.Undef, bytes.NewReader(data[:ps])); err != nil {
			return nil, err
		}
		return nil, errors.New("peers went away")
	})
	s = NewSeed(newTestFetcher(t, st), nil, WithSwarm(partial))
	defer s.Close()
	m, err = s.Start(Request{Task: id, URL: u}).Result()
	if err != nil {
		t.Fatal(err)
	}
	checkManifest(t, m, id, data)
	if got := o.bodyBytes.Load(); got >= size35 {
		t.Fatalf("origin served %d bytes, want less than the file (%d) after the swarm's piece", got, size35)
	}
}
