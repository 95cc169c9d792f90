package exchange

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/internal/nodetest"
	"github.com/dfp2p/dfp2p/internal/wire"
	"github.com/dfp2p/dfp2p/store"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
)

const statusPS = content.MinValidPieceSize

// statusFile is a small task: 6 pieces of 256 KiB, the last one short.
type statusFile struct {
	id     content.TaskID
	data   []byte
	pieces []cid.Cid
	m      *content.Manifest
}

func newStatusFile(seed uint64) *statusFile {
	f := &statusFile{id: content.TaskID(strings.Repeat("7", 63) + string("0123456789"[seed%10])), data: randBytes(seed, int(5*statusPS+100))}
	n := content.NumPieces(int64(len(f.data)), statusPS)
	for i := range n {
		f.pieces = append(f.pieces, content.PieceCID(f.piece(i)))
	}
	sum := sha256.Sum256(f.data)
	f.m = &content.Manifest{Version: content.ManifestVersion, TaskID: f.id, Length: int64(len(f.data)),
		PieceSize: statusPS, Pieces: f.pieces, SHA256: hex.EncodeToString(sum[:])}
	return f
}

func (f *statusFile) piece(i int) []byte {
	off, n := content.PieceRange(int64(len(f.data)), statusPS, i)
	return f.data[off : off+n]
}

func (f *statusFile) write(t testing.TB, st *store.Store, idx ...int) {
	t.Helper()
	if err := st.Begin(f.id, "https://example.com/f", int64(len(f.data)), statusPS); err != nil {
		t.Fatal(err)
	}
	for _, i := range idx {
		if _, err := st.WritePiece(f.id, i, f.pieces[i], bytes.NewReader(f.piece(i))); err != nil {
			t.Fatal(err)
		}
	}
}

func openTestStore(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.WithSync(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestStatusRoundTrip(t *testing.T) {
	srvH, cliH := pair(t)
	st := openTestStore(t)
	srv := NewServer(srvH, st, WithStatus(StoreStatus(st)))
	defer srv.Close()
	c := NewClient(cliH, WithIdleTimeout(5*time.Second))
	f := newStatusFile(1)
	ctx := context.Background()

	// Unknown task, then a task with no piece held: not found.
	if _, err := c.Status(ctx, srvH.ID(), f.id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown task: %v", err)
	}
	f.write(t, st)
	if _, err := c.Status(ctx, srvH.ID(), f.id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("task with no piece: %v", err)
	}

	// Part of the task.
	f.write(t, st, 0, 2, 5)
	s, err := c.Status(ctx, srvH.ID(), f.id)
	if err != nil {
		t.Fatal(err)
	}
	if s.Task != f.id || s.Length != int64(len(f.data)) || s.PieceSize != statusPS || s.Manifest != nil {
		t.Fatalf("partial status: %+v", s)
	}
	cids, err := s.PieceCIDs()
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cids {
		held := i == 0 || i == 2 || i == 5
		if held != c.Defined() || held && !c.Equals(f.pieces[i]) {
			t.Fatalf("piece %d: %v", i, c)
		}
	}

	// All of it, complete: the manifest comes along.
	f.write(t, st, 1, 3, 4)
	if err := st.Complete(f.id, f.m); err != nil {
		t.Fatal(err)
	}
	s, err = c.Status(ctx, srvH.ID(), f.id)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := f.m.Encode()
	if !bytes.Equal(s.Manifest, want) {
		t.Fatalf("manifest %q", s.Manifest)
	}
	m, err := s.ParseManifest()
	if err != nil || m.SHA256 != f.m.SHA256 {
		t.Fatalf("ParseManifest: %v %v", m, err)
	}
	if len(s.CIDs) != len(f.pieces) {
		t.Fatalf("%d CIDs", len(s.CIDs))
	}

	// A server without WithStatus does not speak the protocol.
	plainH, cli2 := pair(t)
	plain := NewServer(plainH, st)
	defer plain.Close()
	if _, err := NewClient(cli2).Status(ctx, plainH.ID(), f.id); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("server without status: %v", err)
	}
	// Close removes the handler.
	srv.Close()
	if _, err := c.Status(ctx, srvH.ID(), f.id); err == nil {
		t.Fatal("status answered after Close")
	}
}

func TestStatusSourceErrors(t *testing.T) {
	srvH, cliH := pair(t)
	f := newStatusFile(2)
	other := newStatusFile(3)
	var mu sync.Mutex
	var answer func() (*Status, error)
	srv := NewServer(srvH, newFakeSource(t), WithStatus(func(content.TaskID) (*Status, error) {
		mu.Lock()
		defer mu.Unlock()
		return answer()
	}))
	defer srv.Close()
	c := NewClient(cliH)
	for _, tc := range []struct {
		name string
		fn   func() (*Status, error)
	}{
		{"error", func() (*Status, error) { return nil, errors.New("disk on fire") }},
		{"nil", func() (*Status, error) { return nil, nil }},
		{"other task", func() (*Status, error) { return validStatus(other), nil }},
		{"invalid", func() (*Status, error) { s := validStatus(f); s.CIDs = s.CIDs[1:]; return s, nil }},
	} {
		mu.Lock()
		answer = tc.fn
		mu.Unlock()
		if _, err := c.Status(context.Background(), srvH.ID(), f.id); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

// validStatus is f complete, with its manifest.
func validStatus(f *statusFile) *Status {
	enc, _ := f.m.Encode()
	have := make([]bool, len(f.pieces))
	for i := range have {
		have[i] = true
	}
	return &Status{Task: f.id, Length: int64(len(f.data)), PieceSize: statusPS, Have: content.NewBitfield(have),
		CIDs: append([]cid.Cid(nil), f.pieces...), Manifest: enc}
}

// wireStatus is the JSON answer for s.
func wireStatus(t testing.TB, s *Status) map[string]any {
	t.Helper()
	r, err := encodeStatus(s)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(r)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if r.Manifest != nil {
		m["manifest"] = r.Manifest // keep its bytes as they are
	}
	return m
}

func TestStatusHostileServer(t *testing.T) {
	f := newStatusFile(4)
	partial := validStatus(f)
	partial.Manifest = nil
	partial.Have = content.NewBitfield([]bool{true, false, true, false, false, false})
	partial.CIDs = []cid.Cid{f.pieces[0], f.pieces[2]}
	frame := func(v any) func(s network.Stream) {
		return func(s network.Stream) { wire.WriteMsg(s, v) }
	}
	mutate := func(base *Status, fn func(m map[string]any)) func(s network.Stream) {
		m := wireStatus(t, base)
		fn(m)
		return frame(m)
	}
	otherManifest := func() json.RawMessage {
		g := newStatusFile(5)
		g.m.TaskID = f.id
		b, _ := g.m.Encode()
		return b
	}()
	wrongSum := func() json.RawMessage {
		m := *f.m
		m.SHA256 = strings.Repeat("0", 64)
		m.Pieces = append([]cid.Cid(nil), m.Pieces...)
		m.Pieces[3] = content.PieceCID([]byte("x"))
		b, _ := m.Encode()
		return b
	}()
	canonical, _ := f.m.Encode()
	cases := []struct {
		name     string
		fn       func(s network.Stream)
		protocol bool
	}{
		{"oversized frame", func(s network.Stream) {
			var hdr [10]byte
			n := putUvarint(hdr[:], maxStatusSize+1)
			s.Write(hdr[:n])
			s.Write(make([]byte, 1000))
		}, true},
		{"varint overflow", func(s network.Stream) { s.Write(bytes.Repeat([]byte{0xff}, 12)) }, true},
		{"garbage", func(s network.Stream) { wire.WriteFrame(s, []byte("{{{ not json")) }, true},
		{"truncated frame", func(s network.Stream) { s.Write([]byte{200, '{'}); s.CloseWrite() }, true},
		{"close without answer", func(s network.Stream) { s.CloseWrite() }, true},
		{"unknown status", frame(map[string]any{"status": "maybe"}), true},
		{"wrong task", mutate(partial, func(m map[string]any) { m["task"] = strings.Repeat("a", 64) }), true},
		{"bad geometry", mutate(partial, func(m map[string]any) { m["piece_size"] = 3 << 20 }), true},
		{"negative length", mutate(partial, func(m map[string]any) { m["length"] = -1 }), true},
		{"too many pieces", mutate(partial, func(m map[string]any) { m["length"] = int64(content.MaxPieces+1) * statusPS }), true},
		{"short bitfield", mutate(partial, func(m map[string]any) { m["have"] = "" }), true},
		{"long bitfield", mutate(partial, func(m map[string]any) { m["have"] = "BQAA" }), true},
		{"bits beyond end", mutate(partial, func(m map[string]any) { m["have"] = "xQ==" }), true},
		{"null bitfield", mutate(partial, func(m map[string]any) { m["have"] = nil }), true},
		{"digests not a multiple", mutate(partial, func(m map[string]any) { m["digests"] = "AAAA" }), true},
		{"fewer digests", mutate(partial, func(m map[string]any) { m["digests"] = base64Of(make([]byte, 32)) }), true},
		{"more digests", mutate(partial, func(m map[string]any) { m["digests"] = base64Of(make([]byte, 96)) }), true},
		{"nothing held", mutate(partial, func(m map[string]any) { m["have"] = "AA=="; delete(m, "digests") }), true},
		{"manifest while partial", mutate(partial, func(m map[string]any) { m["manifest"] = json.RawMessage(canonical) }), true},
		{"manifest of other content", mutate(validStatus(f), func(m map[string]any) { m["manifest"] = otherManifest }), true},
		{"manifest disagrees on a CID", mutate(validStatus(f), func(m map[string]any) { m["manifest"] = wrongSum }), true},
		{"manifest not canonical", mutate(validStatus(f), func(m map[string]any) {
			var mm map[string]any
			json.Unmarshal(canonical, &mm)
			m["manifest"] = mm // re-encoded with sorted keys
		}), true},
		{"manifest garbage", mutate(validStatus(f), func(m map[string]any) { m["manifest"] = map[string]any{"v": 1} }), true},
		{"manifest array", mutate(validStatus(f), func(m map[string]any) { m["manifest"] = json.RawMessage("[]") }), true},
		{"manifest null", mutate(validStatus(f), func(m map[string]any) { m["manifest"] = nil }), true},
		{"stall before answer", func(s network.Stream) {}, false},
		{"stall mid answer", func(s network.Stream) { s.Write([]byte{100, '{'}) }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srvH, cliH := pair(t)
			serveHostile(t, srvH, tc.fn)
			idle := 300 * time.Millisecond
			c := NewClient(cliH, WithIdleTimeout(idle))
			start := time.Now()
			s, err := c.Status(context.Background(), srvH.ID(), f.id)
			el := time.Since(start)
			if err == nil {
				t.Fatalf("accepted: %+v", s)
			}
			if el > idle+2*time.Second {
				t.Fatalf("took %v", el)
			}
			if tc.protocol && !errors.Is(err, ErrProtocol) {
				t.Fatalf("want ErrProtocol, got %v", err)
			}
			t.Logf("%v", err)
		})
	}
	// The valid forms of the same answers are accepted.
	for _, s := range []*Status{partial, validStatus(f)} {
		srvH, cliH := pair(t)
		serveHostile(t, srvH, frame(wireStatus(t, s)))
		if _, err := NewClient(cliH).Status(context.Background(), srvH.ID(), f.id); err != nil {
			t.Fatalf("valid answer rejected: %v", err)
		}
	}
}

func TestStatusContextCancel(t *testing.T) {
	srvH, cliH := pair(t)
	serveHostile(t, srvH, func(s network.Stream) {})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := NewClient(cliH).Status(ctx, srvH.ID(), newStatusFile(1).id)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 3*time.Second {
		t.Fatalf("%v after %v", err, time.Since(start))
	}
}

func base64Of(b []byte) string {
	s, _ := json.Marshal(b)
	return strings.Trim(string(s), `"`)
}

func putUvarint(b []byte, v uint64) int {
	i := 0
	for v >= 0x80 {
		b[i] = byte(v) | 0x80
		v >>= 7
		i++
	}
	b[i] = byte(v)
	return i + 1
}

// serveHostile answers status requests on h with fn, then holds the stream
// until the test ends.
func serveHostile(t *testing.T, h host.Host, fn func(s network.Stream)) {
	hostile(t, h, StatusProtocolID, maxStatusRequestSize, fn)
}

// FuzzStatusDecode: no answer may crash the decoder; whatever it accepts is
// a valid status for the task asked, whose CIDs and manifest agree, and
// re-encodes to an answer that decodes to the same status.
func FuzzStatusDecode(f *testing.F) {
	sf := newStatusFile(6)
	full, _ := json.Marshal(mustEncode(validStatus(sf)))
	partial := validStatus(sf)
	partial.Manifest = nil
	partial.Have = content.NewBitfield([]bool{false, true, false, false, false, true})
	partial.CIDs = []cid.Cid{sf.pieces[1], sf.pieces[5]}
	part, _ := json.Marshal(mustEncode(partial))
	f.Add(full)
	f.Add(part)
	f.Add([]byte(`{"status":"not_found"}`))
	f.Add([]byte(`{"status":"ok","task":"` + string(sf.id) + `","length":0,"piece_size":262144}`))
	f.Add([]byte(`{"status":"ok","task":"` + string(sf.id) + `","length":1,"piece_size":262144,"have":"AQ==","digests":"` +
		base64Of(make([]byte, 32)) + `"}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := decodeStatus(in, sf.id)
		if err != nil {
			if !errors.Is(err, ErrProtocol) && !errors.Is(err, ErrNotFound) {
				t.Fatalf("error is neither ErrProtocol nor ErrNotFound: %v", err)
			}
			return
		}
		if s.Task != sf.id {
			t.Fatalf("accepted status for %q", s.Task)
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("accepted invalid status: %v", err)
		}
		cids, err := s.PieceCIDs()
		if err != nil || len(cids) != s.NumPieces() {
			t.Fatalf("PieceCIDs: %d %v", len(cids), err)
		}
		m, err := s.ParseManifest()
		if err != nil {
			t.Fatal(err)
		}
		if m != nil {
			for i, c := range m.Pieces {
				if !c.Equals(cids[i]) {
					t.Fatalf("manifest disagrees on piece %d", i)
				}
			}
		}
		b, err := json.Marshal(mustEncode(s))
		if err != nil {
			t.Fatal(err)
		}
		s2, err := decodeStatus(b, sf.id)
		if err != nil {
			t.Fatalf("re-encoded status rejected: %v", err)
		}
		if s2.Length != s.Length || s2.PieceSize != s.PieceSize || !bytes.Equal(s2.Have, s.Have) ||
			!bytes.Equal(s2.Manifest, s.Manifest) || len(s2.CIDs) != len(s.CIDs) {
			t.Fatal("re-encoded status differs")
		}
	})
}

func mustEncode(s *Status) statusResponse {
	r, err := encodeStatus(s)
	if err != nil {
		panic(err)
	}
	return r
}

func TestStatusAnswersBounded(t *testing.T) {
	srvH := nodetest.Host(t)
	f := newStatusFile(7)
	release := make(chan struct{})
	var entered sync.WaitGroup
	entered.Add(maxStatusAnswers)
	srv := NewServer(srvH, newFakeSource(t), WithQueueTimeout(200*time.Millisecond), WithStatus(func(content.TaskID) (*Status, error) {
		entered.Done()
		<-release
		return validStatus(f), nil
	}))
	defer srv.Close()
	errs := make(chan error, maxStatusAnswers)
	var wg sync.WaitGroup
	for range maxStatusAnswers {
		cliH := nodetest.Host(t)
		cliH.Peerstore().AddAddrs(srvH.ID(), srvH.Addrs(), time.Hour)
		wg.Go(func() {
			_, err := NewClient(cliH).Status(context.Background(), srvH.ID(), f.id)
			errs <- err
		})
	}
	entered.Wait()
	cliH := nodetest.Host(t)
	cliH.Peerstore().AddAddrs(srvH.ID(), srvH.Addrs(), time.Hour)
	start := time.Now()
	if _, err := NewClient(cliH).Status(context.Background(), srvH.ID(), f.id); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("status beyond the bound: %v", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("refused after %v", el)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
