package exchange

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/internal/nodetest"
	"github.com/dfp2p/dfp2p/internal/wire"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		removeBenchData()
		os.Exit(code)
	}))
}

var testTask = content.TaskID(fmt.Sprintf("%064x", 42))

type pieceKey struct {
	task content.TaskID
	idx  int
}

// fakeSource serves pieces from temp files.
type fakeSource struct {
	dir    string
	mu     sync.Mutex
	pieces map[pieceKey]cid.Cid
	// block, if set, is waited on inside OpenPiece.
	block chan struct{}
	opens atomic.Int32
}

func newFakeSource(t testing.TB) *fakeSource {
	return &fakeSource{dir: t.TempDir(), pieces: map[pieceKey]cid.Cid{}}
}

func (s *fakeSource) add(t testing.TB, task content.TaskID, idx int, data []byte) PieceRef {
	t.Helper()
	path := filepath.Join(s.dir, fmt.Sprintf("%s-%d", task, idx))
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	c := content.PieceCID(data)
	s.mu.Lock()
	s.pieces[pieceKey{task, idx}] = c
	s.mu.Unlock()
	return PieceRef{Task: task, Index: idx, CID: c}
}

func (s *fakeSource) OpenPiece(task content.TaskID, idx int) (io.ReadCloser, int64, cid.Cid, error) {
	s.opens.Add(1)
	if s.block != nil {
		<-s.block
	}
	s.mu.Lock()
	c, ok := s.pieces[pieceKey{task, idx}]
	s.mu.Unlock()
	if !ok {
		return nil, 0, cid.Undef, os.ErrNotExist
	}
	f, err := os.Open(filepath.Join(s.dir, fmt.Sprintf("%s-%d", task, idx)))
	if err != nil {
		return nil, 0, cid.Undef, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, cid.Undef, err
	}
	return f, st.Size(), c, nil
}

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for k := 0; k < 8; k++ {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	return b
}

// pair returns a server host and a client host that knows its addresses.
func pair(t testing.TB) (srv, cli host.Host) {
	srv, cli = nodetest.Host(t), nodetest.Host(t)
	cli.Peerstore().AddAddrs(srv.ID(), srv.Addrs(), peerstore.PermanentAddrTTL)
	return srv, cli
}

// verifyingDeliver checks each piece against its CID, like store.WritePiece,
// and records the bytes.
type collector struct {
	mu  sync.Mutex
	got map[int][]byte
}

var errBadPiece = errors.New("bad piece")

func (c *collector) deliver(ref PieceRef, body io.Reader) error {
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, body); err != nil {
		return err
	}
	if !content.PieceCID(buf.Bytes()).Equals(ref.CID) {
		return fmt.Errorf("%w: %s", errBadPiece, ref)
	}
	c.mu.Lock()
	if c.got == nil {
		c.got = map[int][]byte{}
	}
	c.got[ref.Index] = buf.Bytes()
	c.mu.Unlock()
	return nil
}

func TestFetchPipelined(t *testing.T) {
	srvH, cliH := pair(t)
	src := newFakeSource(t)
	var uploaded atomic.Int64
	srv := NewServer(srvH, src, WithUploadObserver(func(p peer.ID, n int64) {
		if p != cliH.ID() {
			t.Errorf("observer got peer %s", p)
		}
		uploaded.Add(n)
	}))
	defer srv.Close()

	sizes := []int{1 << 20, 3<<20 + 17, 1, 64 << 10, 2 << 20}
	var refs []PieceRef
	var want [][]byte
	total := 0
	for i, n := range sizes {
		data := randBytes(uint64(i), n)
		refs = append(refs, src.add(t, testTask, i, data))
		want = append(want, data)
		total += n
	}
	var col collector
	res := NewClient(cliH).Fetch(context.Background(), srvH.ID(), refs, col.deliver)
	if len(res) != len(refs) {
		t.Fatalf("%d results for %d refs", len(res), len(refs))
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("piece %d: %v", i, r.Err)
		}
		if r.Ref != refs[i] || r.Bytes != int64(sizes[i]) {
			t.Fatalf("result %d: %+v", i, r)
		}
		if !bytes.Equal(col.got[i], want[i]) {
			t.Fatalf("piece %d bytes differ", i)
		}
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if got := uploaded.Load(); got != int64(total) {
		t.Fatalf("observer counted %d bytes, want %d", got, total)
	}
}

func TestFetchManyRefsUsesSeveralStreams(t *testing.T) {
	srvH, cliH := pair(t)
	src := newFakeSource(t)
	srv := NewServer(srvH, src)
	defer srv.Close()
	var refs []PieceRef
	for i := 0; i < MaxRefsPerStream+7; i++ {
		refs = append(refs, src.add(t, testTask, i, randBytes(uint64(i), 1000+i)))
	}
	var col collector
	for i, r := range NewClient(cliH).Fetch(context.Background(), srvH.ID(), refs, col.deliver) {
		if r.Err != nil || r.Bytes != int64(1000+i) {
			t.Fatalf("piece %d: %+v", i, r)
		}
	}
}

func TestNotFoundContinuesStream(t *testing.T) {
	srvH, cliH := pair(t)
	src := newFakeSource(t)
	srv := NewServer(srvH, src)
	defer srv.Close()
	r0 := src.add(t, testTask, 0, randBytes(1, 100<<10))
	r2 := src.add(t, testTask, 2, randBytes(2, 100<<10))
	missing := PieceRef{Task: testTask, Index: 1, CID: content.PieceCID([]byte("nope"))}
	// Held under (task, 3) but requested with another CID: also not found.
	r3 := src.add(t, testTask, 3, randBytes(3, 10))
	r3.CID = content.PieceCID([]byte("other bytes"))
	invalid := PieceRef{Task: "bad", Index: 0, CID: r0.CID}

	var col collector
	res := NewClient(cliH).Fetch(context.Background(), srvH.ID(), []PieceRef{r0, missing, r3, invalid, r2}, col.deliver)
	if res[0].Err != nil || res[4].Err != nil {
		t.Fatalf("held pieces failed: %v / %v", res[0].Err, res[4].Err)
	}
	if !errors.Is(res[1].Err, ErrNotFound) {
		t.Fatalf("missing piece: %v", res[1].Err)
	}
	if !errors.Is(res[2].Err, ErrNotFound) {
		t.Fatalf("CID mismatch: %v", res[2].Err)
	}
	if res[3].Err == nil {
		t.Fatal("invalid ref accepted")
	}
	if len(col.got) != 2 {
		t.Fatalf("delivered %d pieces", len(col.got))
	}
}

func TestDeliverErrorAbortsStream(t *testing.T) {
	srvH, cliH := pair(t)
	src := newFakeSource(t)
	srv := NewServer(srvH, src)
	defer srv.Close()
	var refs []PieceRef
	for i := 0; i < 4; i++ {
		refs = append(refs, src.add(t, testTask, i, randBytes(uint64(i), 2<<20)))
	}
	// The client asks for piece 1 with piece 1's CID, but deliver says the
	// bytes are bad (as a store would on a hash mismatch).
	calls := 0
	deliver := func(ref PieceRef, body io.Reader) error {
		calls++
		if ref.Index == 1 {
			io.CopyN(io.Discard, body, 1000)
			return errBadPiece
		}
		_, err := io.Copy(io.Discard, body)
		return err
	}
	res := NewClient(cliH).Fetch(context.Background(), srvH.ID(), refs, deliver)
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	if !errors.Is(res[1].Err, errBadPiece) {
		t.Fatalf("piece 1: %v", res[1].Err)
	}
	for _, r := range res[2:] {
		if !errors.Is(r.Err, ErrAborted) {
			t.Fatalf("piece %d: %v", r.Ref.Index, r.Err)
		}
	}
	if calls != 2 {
		t.Fatalf("deliver called %d times", calls)
	}
}

func TestDeliverNotReadingWholePiece(t *testing.T) {
	srvH, cliH := pair(t)
	src := newFakeSource(t)
	srv := NewServer(srvH, src)
	defer srv.Close()
	r0 := src.add(t, testTask, 0, randBytes(1, 1<<20))
	r1 := src.add(t, testTask, 1, randBytes(2, 1<<20))
	first := true
	var col collector
	res := NewClient(cliH).Fetch(context.Background(), srvH.ID(), []PieceRef{r0, r1}, func(ref PieceRef, body io.Reader) error {
		if first {
			first = false
			return nil // reads nothing
		}
		return col.deliver(ref, body)
	})
	if res[0].Err == nil || errors.Is(res[0].Err, ErrAborted) {
		t.Fatalf("piece 0: %v", res[0].Err)
	}
	if res[1].Err != nil {
		t.Fatalf("stream should continue: %v", res[1].Err)
	}
}

func TestContextCancelResetsStream(t *testing.T) {
	srvH, cliH := pair(t)
	src := newFakeSource(t)
	srv := NewServer(srvH, src)
	defer srv.Close()
	r0 := src.add(t, testTask, 0, randBytes(1, 8<<20))
	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now()
	res := NewClient(cliH).Fetch(ctx, srvH.ID(), []PieceRef{r0, r0}, func(ref PieceRef, body io.Reader) error {
		io.CopyN(io.Discard, body, 1000)
		cancel()
		_, err := io.Copy(io.Discard, body)
		return err
	})
	if time.Since(start) > 5*time.Second {
		t.Fatal("cancel took too long")
	}
	if !errors.Is(res[0].Err, context.Canceled) {
		t.Fatalf("piece 0: %v", res[0].Err)
	}
	if !errors.Is(res[1].Err, ErrAborted) {
		t.Fatalf("piece 1: %v", res[1].Err)
	}
}

// malicious answers every piece request with fn.
func malicious(t *testing.T, fn func(s network.Stream)) (srv, cli host.Host) {
	srvH, cliH := pair(t)
	hostile(t, srvH, ProtocolID, maxRequestSize, fn)
	return srvH, cliH
}

// hostile serves proto on h: it reads the request frame (at most limit
// bytes), answers with fn, then holds the stream (a stalling server) until
// the test ends, when every handler has returned.
func hostile(t *testing.T, h host.Host, proto protocol.ID, limit int, fn func(s network.Stream)) {
	done := make(chan struct{})
	var (
		mu     sync.Mutex
		closed bool
		wg     sync.WaitGroup
	)
	t.Cleanup(func() {
		mu.Lock()
		closed = true
		mu.Unlock()
		close(done)
		wg.Wait()
	})
	h.SetStreamHandler(proto, func(s network.Stream) {
		mu.Lock()
		if closed {
			mu.Unlock()
			s.Reset()
			return
		}
		wg.Add(1)
		mu.Unlock()
		defer wg.Done()
		defer s.Reset()
		if _, err := wire.ReadFrame(bufio.NewReader(s), limit); err != nil {
			return
		}
		fn(s)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
	})
}

func TestMaliciousServer(t *testing.T) {
	ref0 := PieceRef{Task: testTask, Index: 0, CID: content.PieceCID([]byte("a"))}
	ref1 := PieceRef{Task: testTask, Index: 1, CID: content.PieceCID([]byte("b"))}
	hdr := func(s network.Stream, h any) { wire.WriteMsg(s, h) }
	cases := []struct {
		name      string
		fn        func(s network.Stream)
		protocol  bool // want ErrProtocol (else any error, within the idle timeout)
		wantBadPc bool
	}{
		{"too long", func(s network.Stream) { hdr(s, header{Status: statusOK, Length: content.MaxValidPieceSize + 1}) }, true, false},
		{"negative length", func(s network.Stream) { hdr(s, header{Status: statusOK, Length: -5}) }, true, false},
		{"garbage json", func(s network.Stream) { wire.WriteFrame(s, []byte("{{{garbage")) }, true, false},
		{"huge frame", func(s network.Stream) { wire.WriteFrame(s, bytes.Repeat([]byte("x"), 100<<10)) }, true, false},
		{"varint overflow", func(s network.Stream) { s.Write(bytes.Repeat([]byte{0xff}, 12)) }, true, false},
		{"unknown status", func(s network.Stream) { hdr(s, header{Status: "weird"}) }, true, false},
		{"short body then close", func(s network.Stream) {
			hdr(s, header{Status: statusOK, Length: 1000})
			s.Write(make([]byte, 10))
			s.CloseWrite()
		}, true, false},
		{"close without answer", func(s network.Stream) { s.CloseWrite() }, true, false},
		{"stall before header", func(s network.Stream) {}, false, false},
		{"stall mid header", func(s network.Stream) { s.Write([]byte{50, '{', '"'}) }, false, false},
		{"stall mid body", func(s network.Stream) {
			hdr(s, header{Status: statusOK, Length: 1 << 20})
			s.Write(make([]byte, 1000))
		}, false, false},
		{"wrong bytes", func(s network.Stream) {
			hdr(s, header{Status: statusOK, Length: 1})
			s.Write([]byte("x"))
		}, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srvH, cliH := malicious(t, tc.fn)
			idle := 300 * time.Millisecond
			c := NewClient(cliH, WithIdleTimeout(idle))
			var col collector
			start := time.Now()
			res := c.Fetch(context.Background(), srvH.ID(), []PieceRef{ref0, ref1}, col.deliver)
			el := time.Since(start)
			if el > idle+2*time.Second {
				t.Fatalf("took %v with idle timeout %v", el, idle)
			}
			if res[0].Err == nil {
				t.Fatal("no error")
			}
			if tc.protocol && !errors.Is(res[0].Err, ErrProtocol) {
				t.Fatalf("want ErrProtocol, got %v", res[0].Err)
			}
			if tc.wantBadPc && !errors.Is(res[0].Err, errBadPiece) {
				t.Fatalf("want bad piece, got %v", res[0].Err)
			}
			if !errors.Is(res[1].Err, ErrAborted) {
				t.Fatalf("second ref: %v", res[1].Err)
			}
			t.Logf("%v after %v", res[0].Err, el.Round(time.Millisecond))
		})
	}
}

func TestUploadConcurrencyBounded(t *testing.T) {
	// One client host per fetch: fetches on one connection would share its
	// QUIC flow-control window, which the stalled deliveries below exhaust.
	srvH := nodetest.Host(t)
	src := newFakeSource(t)
	const slots, fetches = 2, 5
	srv := NewServer(srvH, src, WithMaxUploads(slots), WithQueueTimeout(300*time.Millisecond))
	defer srv.Close()
	var refs []PieceRef
	for i := 0; i < fetches; i++ {
		refs = append(refs, src.add(t, testTask, i, randBytes(uint64(i), 4<<20)))
	}
	release := make(chan struct{})
	var inDeliver, maxInDeliver atomic.Int32
	results := make(chan Result, fetches)
	var wg sync.WaitGroup
	for i := 0; i < fetches; i++ {
		cliH := nodetest.Host(t)
		cliH.Peerstore().AddAddrs(srvH.ID(), srvH.Addrs(), peerstore.PermanentAddrTTL)
		c := NewClient(cliH)
		wg.Go(func() {
			res := c.Fetch(context.Background(), srvH.ID(), refs[i:i+1], func(ref PieceRef, body io.Reader) error {
				n := inDeliver.Add(1)
				for {
					m := maxInDeliver.Load()
					if n <= m || maxInDeliver.CompareAndSwap(m, n) {
						break
					}
				}
				defer inDeliver.Add(-1)
				// Read a little, then stop reading: the server blocks on
				// flow control while holding its upload slot.
				io.CopyN(io.Discard, body, 1000)
				<-release
				_, err := io.Copy(io.Discard, body)
				return err
			})
			results <- res[0]
		})
	}
	busy := 0
	for busy < fetches-slots {
		select {
		case r := <-results:
			if !errors.Is(r.Err, ErrBusy) {
				t.Fatalf("unexpected result before release: %+v", r)
			}
			busy++
		case <-time.After(10 * time.Second):
			t.Fatal("timed out waiting for busy answers")
		}
	}
	if got := inDeliver.Load(); got != slots {
		t.Fatalf("%d uploads in progress, want %d", got, slots)
	}
	close(release)
	wg.Wait()
	close(results)
	for r := range results {
		if r.Err != nil {
			t.Fatalf("held upload failed: %v", r.Err)
		}
	}
	if m := maxInDeliver.Load(); m != slots {
		t.Fatalf("max concurrent uploads %d, want %d", m, slots)
	}
}

func TestCloseWaitsForHandlers(t *testing.T) {
	srvH, cliH := pair(t)
	src := newFakeSource(t)
	ref := src.add(t, testTask, 0, randBytes(1, 1<<20))
	src.block = make(chan struct{})
	srv := NewServer(srvH, src)
	fetched := make(chan []Result, 1)
	go func() {
		fetched <- NewClient(cliH).Fetch(context.Background(), srvH.ID(), []PieceRef{ref}, func(PieceRef, io.Reader) error { return nil })
	}()
	for src.opens.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	closed := make(chan struct{})
	go func() { srv.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while a handler was still in OpenPiece")
	case <-time.After(200 * time.Millisecond):
	}
	close(src.block)
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	if r := <-fetched; r[0].Err == nil {
		t.Fatal("fetch succeeded from a closed server")
	}
	// A closed server does not answer.
	res := NewClient(cliH, WithIdleTimeout(time.Second)).Fetch(context.Background(), srvH.ID(), []PieceRef{ref}, func(PieceRef, io.Reader) error { return nil })
	if res[0].Err == nil {
		t.Fatal("fetch after Close succeeded")
	}
}

func TestCloseUnblocksStalledUpload(t *testing.T) {
	srvH, cliH := pair(t)
	src := newFakeSource(t)
	ref := src.add(t, testTask, 0, randBytes(1, 8<<20))
	srv := NewServer(srvH, src)
	started := make(chan struct{})
	done := make(chan Result, 1)
	go func() {
		res := NewClient(cliH).Fetch(context.Background(), srvH.ID(), []PieceRef{ref}, func(_ PieceRef, body io.Reader) error {
			io.CopyN(io.Discard, body, 1000)
			close(started)
			time.Sleep(500 * time.Millisecond) // server blocks on flow control meanwhile
			_, err := io.Copy(io.Discard, body)
			return err
		})
		done <- res[0]
	}()
	<-started
	start := time.Now()
	srv.Close()
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("Close took %v", el)
	}
	if r := <-done; r.Err == nil {
		t.Fatal("upload survived Close")
	}
}
