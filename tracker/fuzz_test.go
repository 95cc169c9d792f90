package tracker

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/internal/wire"
	"github.com/dfp2p/dfp2p/tracker/scheduler"
)

// fuzzOriginURL is the one URL the fuzz tracker's origin serves; every other
// URL is a 404, so registrations never touch the network.
const fuzzOriginURL = "http://origin.invalid/f"

// memOrigin is an http.RoundTripper serving fuzzOriginURL from memory, with
// ranges, as an origin server would.
type memOrigin struct{ data []byte }

func (o memOrigin) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	if r.URL.String() == fuzzOriginURL {
		http.ServeContent(rec, r, "f", time.Unix(0, 0), bytes.NewReader(o.data))
	} else {
		http.NotFound(rec, r)
	}
	resp := rec.Result()
	resp.Request = r
	return resp, nil
}

func framed(t testing.TB, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := wire.WriteMsg(&b, v); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// decodeRequest decodes a request stream as handleStream does.
func decodeRequest(stream []byte) (*Request, error) {
	var req Request
	if err := wire.ReadMsg(bufio.NewReader(bytes.NewReader(stream)), maxRequestSize, &req); err != nil {
		return nil, err
	}
	return &req, nil
}

// FuzzTrackerRequest decodes a request stream as handleStream does, runs the
// validation helpers on it, and hands it to a real tracker's handle (built
// once per fuzz process, its origin in memory): nothing panics, every answer
// encodes within the client's limit, and answers stay within the task's
// geometry.
func FuzzTrackerRequest(f *testing.F) {
	data := bytes.Repeat([]byte("dfp2p fuzz origin "), 200)
	tr, err := New(Config{
		DataDir:      f.TempDir(),
		Listen:       []string{"/ip4/127.0.0.1/udp/0/quic-v1"},
		NoDHT:        true,
		GCInterval:   -1,
		Logger:       slog.New(slog.DiscardHandler),
		OriginClient: &http.Client{Transport: memOrigin{data}},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { tr.Close() })
	var peers []peer.ID
	for range 3 {
		sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			f.Fatal(err)
		}
		id, _ := peer.IDFromPrivateKey(sk)
		peers = append(peers, id)
	}
	task, _ := content.TaskIDFor(fuzzOriginURL, "", "", content.DefaultQueryFilter)
	parent := peers[1].String()
	for _, r := range []Request{
		{Type: TypeRegister, URL: fuzzOriginURL, Have: NewBitfield([]bool{true}), Addrs: []string{"/ip4/10.0.0.1/udp/4001/quic-v1"}, Region: "r", Zone: "z"},
		{Type: TypeRegister, URL: fuzzOriginURL, Task: task},
		{Type: TypeRegister, URL: fuzzOriginURL, Task: content.TaskID(strings.Repeat("a", 64))},
		{Type: TypeRegister, URL: "http://origin.invalid/missing"},
		{Type: TypeRegister, URL: "ftp://x/y"},
		{Type: TypeRegister, URL: fuzzOriginURL, Digest: "sha256:" + strings.Repeat("0", 64)},
		{Type: TypeAnnounce, Task: task, Have: Bitfield{1}},
		{Type: TypeAnnounce, Task: task, Have: Bitfield{0xff}},
		{Type: TypeAnnounce, Task: task, Have: Bitfield{1, 0}, Region: strings.Repeat("é", 40)},
		{Type: TypeSchedule, Task: task, Max: 8},
		{Type: TypeSchedule, Task: task, Max: -1},
		{Type: TypeSchedule, Task: task, Max: 1 << 40},
		{Type: TypeReport, Task: task, Done: []int{0, -1, 1 << 30}, Failed: []Failure{
			{Piece: 0, Parent: parent, Reason: ReasonBadPiece}, {Piece: -5, Parent: "x"}, {Piece: 0, Reason: ReasonUnreachable},
			{Piece: 0, Parent: "not a peer", Reason: "whatever"}}},
		{Type: TypeManifest, Task: task},
		{Type: TypeManifest, Task: "../../etc"},
		{Type: TypeLeave, Task: task},
		{Type: "nonsense"},
		{},
	} {
		for i := range 2 {
			f.Add(uint8(i), false, framed(f, r)[1:]) // body only; the test frames it
		}
		f.Add(uint8(2), true, framed(f, r))
	}
	f.Add(uint8(0), false, []byte(`{"type":"announce","task":"`+string(task)+`","have":"!!"}`))
	f.Add(uint8(0), false, []byte(`{"type":"report","done":[1e99]}`))
	f.Add(uint8(0), false, []byte(`{"type":"register","header":{"X":["a","b"]},"url":"http://origin.invalid/f?x=1#y"}`))
	f.Add(uint8(0), true, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add(uint8(0), true, []byte{0x80, 0x80, 0x40}) // 1 MiB announced, nothing sent

	f.Fuzz(func(t *testing.T, who uint8, raw bool, in []byte) {
		stream := in
		if !raw {
			var b bytes.Buffer
			wire.WriteFrame(&b, in)
			stream = b.Bytes()
		}
		req, err := decodeRequest(stream)
		if err != nil {
			return
		}
		checkRequestHelpers(t, req)

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p := peers[int(who)%len(peers)]
		resp := tr.handle(ctx, p, req)
		if resp == nil {
			t.Fatal("nil response")
		}
		var out bytes.Buffer
		if err := wire.WriteMsg(&out, resp); err != nil {
			t.Fatalf("response does not encode: %v", err)
		}
		var back Response
		if err := wire.ReadMsg(bufio.NewReader(&out), maxResponseSize, &back); err != nil {
			t.Fatalf("the client could not read the answer: %v", err)
		}
		switch req.Type {
		case TypeRegister, TypeAnnounce, TypeSchedule, TypeReport, TypeManifest, TypeLeave:
		default:
			if resp.Error == "" {
				t.Fatalf("request type %q answered without an error", req.Type)
			}
			return
		}
		if resp.Error != "" {
			return
		}
		if req.Type != TypeRegister && resp.Task != req.Task {
			t.Fatalf("%s for %q answered for %q", req.Type, req.Task, resp.Task)
		}
		if req.Type == TypeRegister {
			want, err := content.TaskIDFor(req.URL, req.Tag, req.Digest, content.DefaultQueryFilter)
			if err != nil || resp.Task != want || resp.Length != int64(len(data)) {
				t.Fatalf("register accepted for %q (want %q, %v) with length %d", resp.Task, want, err, resp.Length)
			}
		}
		n := content.NumPieces(resp.Length, resp.PieceSize)
		if req.Type == TypeSchedule {
			max := req.Max
			if max <= 0 || max > maxAssignments {
				max = maxAssignments
			}
			if len(resp.Assignments) > max {
				t.Fatalf("%d assignments for max %d", len(resp.Assignments), req.Max)
			}
		} else if len(resp.Assignments) > 0 {
			t.Fatalf("%s answered with assignments", req.Type)
		}
		for _, a := range resp.Assignments {
			if a.Piece < 0 || a.Piece >= n {
				t.Fatalf("assignment of piece %d of %d", a.Piece, n)
			}
			if _, err := cid.Decode(a.CID); err != nil {
				t.Fatalf("assignment CID %q: %v", a.CID, err)
			}
			if a.Parent == p.String() {
				t.Fatal("peer assigned to itself")
			}
			if len(a.Addrs) > 16 {
				t.Fatalf("%d addrs in an assignment", len(a.Addrs))
			}
		}
	})
}

// checkRequestHelpers runs the tracker's pure checks of a decoded request
// and their invariants.
func checkRequestHelpers(t *testing.T, req *Request) {
	t.Helper()
	loc := req.locality()
	for _, l := range [][2]string{{req.Region, loc.Region}, {req.Zone, loc.Zone}} {
		if len(l[1]) > maxLabel || !strings.HasPrefix(l[0], l[1]) || (len(l[0]) <= maxLabel && l[0] != l[1]) {
			t.Fatalf("label %q truncated to %q", l[0], l[1])
		}
	}
	reasons := map[string]scheduler.FailReason{
		ReasonUnreachable: scheduler.FailUnreachable, ReasonBadPiece: scheduler.FailBadPiece, ReasonNotFound: scheduler.FailNotFound,
	}
	for _, f := range req.Failed {
		want, ok := reasons[f.Reason]
		if !ok {
			want = scheduler.FailOther
		}
		if got := failReason(f.Reason); got != want {
			t.Fatalf("failReason(%q) = %v, want %v", f.Reason, got, want)
		}
	}
	if len(req.Have) > maxRequestSize {
		t.Fatalf("have-bitfield of %d bytes got through a %d-byte frame", len(req.Have), maxRequestSize)
	}
	// The piece counts a bitfield of this size may describe, and some it
	// may not.
	bits := len(req.Have) * 8
	for _, n := range []int{0, 1, bits - 8, bits - 7, bits - 1, bits, bits + 1, content.MaxPieces} {
		if n < 0 {
			continue
		}
		have, err := req.Have.Bools(n)
		if err != nil {
			continue
		}
		if len(req.Have) == 0 {
			if have != nil {
				t.Fatalf("empty bitfield decoded to %d bools", len(have))
			}
			continue
		}
		if len(have) != n {
			t.Fatalf("Bools(%d) returned %d bools", n, len(have))
		}
		if back := NewBitfield(have); !bytes.Equal(back, req.Have) {
			t.Fatalf("bitfield %x decoded for %d pieces re-encodes to %x", []byte(req.Have), n, []byte(back))
		}
	}
}

// FuzzTrackerResponse decodes an answer stream as Client.callOne does, then
// runs what a daemon does with an answer's fields (peer IDs, CIDs,
// multiaddrs, manifest, geometry): nothing panics, and a geometry that
// passes the store's checks has a piece count in [0, MaxPieces].
func FuzzTrackerResponse(f *testing.F) {
	task, _ := content.TaskIDFor(fuzzOriginURL, "", "", nil)
	data := []byte("piece bytes")
	m := &content.Manifest{Version: content.ManifestVersion, TaskID: task, Length: int64(len(data)),
		PieceSize: content.MinPieceSize, Pieces: []cid.Cid{content.PieceCID(data)}}
	m.SHA256 = strings.Repeat("ab", 32)
	mb, err := m.Encode()
	if err != nil {
		f.Fatal(err)
	}
	sk, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	pid, _ := peer.IDFromPrivateKey(sk)
	for _, r := range []Response{
		{Task: task, Length: int64(len(data)), PieceSize: content.MinPieceSize, Complete: true},
		{Task: task, Assignments: []Assignment{{Piece: 0, CID: content.PieceCID(data).String(), Parent: pid.String(),
			Addrs: []string{"/ip4/10.0.0.1/udp/4001/quic-v1", "not-an-addr"}, Seed: true}}},
		{Task: task, Assignments: []Assignment{{Piece: -1, CID: "bafy-nope", Parent: "12D3KooWnope"}}},
		{Task: task, Complete: true, Manifest: mb, Length: m.Length, PieceSize: m.PieceSize},
		{Task: task, Manifest: []byte("{}")},
		{Error: "unknown task: register first", UnknownTask: true},
		{Error: "origin said 404", OriginStatus: 404},
		{Task: task, RetryAfterMs: -5},
		{Task: task, Length: 1 << 62, PieceSize: content.MaxValidPieceSize},
		{Task: task, Length: -1, PieceSize: 3},
		// Once crashed a daemon: the piece count overflowed to a negative
		// number that passed the store's limit check.
		{Task: task, Length: math.MaxInt64, PieceSize: content.MinValidPieceSize},
	} {
		f.Add(framed(f, r))
	}
	f.Add([]byte{0x03, '{', '}', 'x'})
	f.Add([]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})

	f.Fuzz(func(t *testing.T, stream []byte) {
		var resp Response
		if err := wire.ReadMsg(bufio.NewReader(bytes.NewReader(stream)), maxResponseSize, &resp); err != nil {
			return
		}
		// What Client.Call makes of an error answer.
		if resp.Error != "" {
			e := &Error{Msg: resp.Error, OriginStatus: resp.OriginStatus, UnknownTask: resp.UnknownTask}
			_ = e.Error()
		}
		// What the daemon does with assignments (daemon.dispatch).
		for _, a := range resp.Assignments {
			if p, err := peer.Decode(a.Parent); err == nil {
				_ = p.String()
			}
			if c, err := cid.Decode(a.CID); err == nil {
				_, _ = content.SHA256Of(c)
			}
			for _, s := range a.Addrs {
				if m, err := ma.NewMultiaddr(s); err == nil {
					_ = m.String()
				}
			}
		}
		if len(resp.Manifest) > 0 {
			if m, err := content.DecodeManifest(resp.Manifest); err == nil {
				if n := content.NumPieces(m.Length, m.PieceSize); n != len(m.Pieces) {
					t.Fatalf("manifest accepted with %d CIDs for %d pieces", len(m.Pieces), n)
				}
			}
		}
		// The geometry checks a store applies before it sizes a task's
		// bitfield from the answer (store.EnsureTask).
		if resp.Length >= 0 && resp.PieceSize >= content.MinValidPieceSize && resp.PieceSize <= content.MaxValidPieceSize &&
			resp.PieceSize&(resp.PieceSize-1) == 0 {
			if n := content.NumPieces(resp.Length, resp.PieceSize); n < 0 {
				t.Fatalf("length %d, piece size %d pass the store's checks with %d pieces", resp.Length, resp.PieceSize, n)
			}
		}
		if _, err := json.Marshal(resp); err != nil {
			t.Fatalf("decoded answer does not re-encode: %v", err)
		}
	})
}
