package exchange

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/internal/nodetest"
	"github.com/dfp2p/dfp2p/internal/wire"
)

// memStream is a network.Stream over memory: reads come from r, writes go
// to w, deadlines are ignored. Methods the piece protocol does not use panic
// (the embedded interface is nil), which would show up as a fuzz failure.
type memStream struct {
	network.Stream
	r io.Reader
	w bytes.Buffer
}

func (s *memStream) Read(p []byte) (int, error)       { return s.r.Read(p) }
func (s *memStream) Write(p []byte) (int, error)      { return s.w.Write(p) }
func (s *memStream) SetDeadline(time.Time) error      { return nil }
func (s *memStream) SetReadDeadline(time.Time) error  { return nil }
func (s *memStream) SetWriteDeadline(time.Time) error { return nil }
func (s *memStream) Conn() network.Conn               { return memConn{} }

type memConn struct{ network.Conn }

func (memConn) RemotePeer() peer.ID { return "fuzz-peer" }

func frame(t testing.TB, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := wire.WriteMsg(&b, v); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// FuzzPieceRequest feeds a request stream to the real server (Server.serve):
// nothing panics; a request is served exactly when it is a well-formed frame
// of 1..MaxRefsPerStream valid refs; a served request gets one answer per
// ref, in order, "ok" with the exact stored bytes for the pieces the source
// holds under that CID and "not_found" for all others, and nothing else.
func FuzzPieceRequest(f *testing.F) {
	src := newFakeSource(f)
	held := map[pieceKey]cid.Cid{}
	data := map[pieceKey][]byte{}
	for i, d := range [][]byte{[]byte("piece zero"), bytes.Repeat([]byte{7}, 3000)} {
		r := src.add(f, testTask, i, d)
		held[pieceKey{r.Task, r.Index}] = r.CID
		data[pieceKey{r.Task, r.Index}] = d
	}
	srv := NewServer(nodetest.Host(f), src, WithQueueTimeout(time.Second))
	f.Cleanup(func() { srv.Close() })

	ref0 := wireRef{Task: testTask, Index: 0, CID: held[pieceKey{testTask, 0}]}
	ref1 := wireRef{Task: testTask, Index: 1, CID: held[pieceKey{testTask, 1}]}
	other := content.PieceCID([]byte("not held"))
	seeds := []any{
		request{Pieces: []wireRef{ref0}},
		request{Pieces: []wireRef{ref0, ref1, {Task: testTask, Index: 2, CID: other}, ref0}},
		request{Pieces: []wireRef{{Task: testTask, Index: 0, CID: other}}},                        // held index, other CID
		request{Pieces: []wireRef{{Task: testTask, Index: content.MaxPieces - 1, CID: ref0.CID}}}, // last valid index
		request{Pieces: make([]wireRef, MaxRefsPerStream+1)},
		request{},
	}
	for _, s := range seeds {
		b, _ := json.Marshal(s)
		f.Add(false, b)
		f.Add(true, frame(f, s))
	}
	for _, s := range []string{
		`{"pieces":[{"task":"` + string(testTask) + `","index":-1,"cid":{"/":"` + ref0.CID.String() + `"}}]}`,
		`{"pieces":[{"task":"` + string(testTask) + `","index":1048576,"cid":{"/":"` + ref0.CID.String() + `"}}]}`,
		`{"pieces":[{"task":"` + strings.ToUpper(string(testTask)) + `","index":0,"cid":{"/":"` + ref0.CID.String() + `"}}]}`,
		`{"pieces":[{"task":"` + string(testTask) + `","index":0,"cid":{"/":"bafkqaaa"}}]}`, // identity hash
		`{"pieces":[{"task":"` + string(testTask) + `","index":0,"cid":"` + ref0.CID.String() + `"}]}`,
		`{"pieces":[{"task":"` + string(testTask) + `","index":0}]}`,
		`{"pieces":null}`, `{"pieces":{}}`, `[]`, `null`, `{"pieces":[null]}`, `{"pieces":[{"index":1e400}]}`,
	} {
		f.Add(false, []byte(s))
	}
	f.Add(true, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add(true, []byte{0x80, 0x80, 0x04}) // 64 KiB + 0 bytes: over the limit by nothing
	f.Add(true, []byte{})

	f.Fuzz(func(t *testing.T, raw bool, in []byte) {
		stream := in
		if !raw {
			var b bytes.Buffer
			wire.WriteFrame(&b, in)
			stream = b.Bytes()
		}
		want, valid := referenceDecode(stream)
		st := &memStream{r: bytes.NewReader(stream)}
		err := srv.serve(st)
		if !valid {
			if err == nil {
				t.Fatalf("served an invalid request (%d bytes)", len(stream))
			}
			if st.w.Len() != 0 {
				t.Fatalf("wrote %d bytes for an invalid request", st.w.Len())
			}
			return
		}
		if err != nil {
			t.Fatalf("valid request of %d refs refused: %v", len(want), err)
		}
		br := bufio.NewReader(&st.w)
		for i, r := range want {
			var h header
			if err := wire.ReadMsg(br, maxHeaderSize, &h); err != nil {
				t.Fatalf("answer %d: %v", i, err)
			}
			k := pieceKey{r.Task, r.Index}
			if c, ok := held[k]; ok && c.Equals(r.CID) {
				if h.Status != statusOK || h.Length != int64(len(data[k])) {
					t.Fatalf("answer %d: %+v, want ok with %d bytes", i, h, len(data[k]))
				}
				body := make([]byte, h.Length)
				if _, err := io.ReadFull(br, body); err != nil || !bytes.Equal(body, data[k]) {
					t.Fatalf("answer %d: body %v", i, err)
				}
				continue
			}
			if h.Status != statusNotFound || h.Length != 0 {
				t.Fatalf("answer %d: %+v, want not_found", i, h)
			}
		}
		if n := br.Buffered() + st.w.Len(); n != 0 {
			t.Fatalf("%d bytes after the last answer", n)
		}
	})
}

// referenceDecode is the request check spelled out from the package
// documentation: one frame of at most maxRequestSize bytes holding JSON with
// 1..MaxRefsPerStream refs, each with a valid task ID, an index in
// [0, MaxPieces) and a sha2-256 raw CIDv1.
func referenceDecode(stream []byte) ([]PieceRef, bool) {
	var req request
	if err := wire.ReadMsg(bufio.NewReader(bytes.NewReader(stream)), maxRequestSize, &req); err != nil {
		return nil, false
	}
	if len(req.Pieces) == 0 || len(req.Pieces) > MaxRefsPerStream {
		return nil, false
	}
	out := make([]PieceRef, len(req.Pieces))
	for i, r := range req.Pieces {
		if !r.Task.Valid() || r.Index < 0 || r.Index >= content.MaxPieces {
			return nil, false
		}
		d := r.CID.Prefix()
		if !r.CID.Defined() || d.Version != 1 || d.Codec != cid.Raw || d.MhType != 0x12 || d.MhLength != 32 {
			return nil, false
		}
		out[i] = PieceRef(r)
	}
	return out, true
}

// FuzzPieceHeader feeds a server's answer stream to the client's reader
// (Client.fetchOne, driven as fetchBatch drives it) for three requested
// pieces: nothing panics; every stream error is ErrProtocol or the deliver
// function's; a piece counts as received only with a length in
// (0, MaxValidPieceSize] and bytes that match its CID; per-piece failures are
// ErrNotFound, ErrBusy or a short deliver.
func FuzzPieceHeader(f *testing.F) {
	pieces := [][]byte{[]byte("alpha"), []byte("bravo bravo"), bytes.Repeat([]byte("c"), 100)}
	refs := make([]PieceRef, len(pieces))
	for i, d := range pieces {
		refs[i] = PieceRef{Task: testTask, Index: i, CID: content.PieceCID(d)}
	}
	ans := func(parts ...any) []byte {
		var b bytes.Buffer
		for _, p := range parts {
			switch p := p.(type) {
			case []byte:
				b.Write(p)
			default:
				wire.WriteMsg(&b, p)
			}
		}
		return b.Bytes()
	}
	ok := func(d []byte) header { return header{Status: statusOK, Length: int64(len(d))} }
	for _, s := range [][]byte{
		ans(ok(pieces[0]), pieces[0], ok(pieces[1]), pieces[1], ok(pieces[2]), pieces[2]),
		ans(header{Status: statusNotFound}, ok(pieces[1]), pieces[1], header{Status: statusBusy}),
		ans(header{Status: statusBusy}, header{Status: statusBusy}, header{Status: statusBusy}),
		ans(ok(pieces[0]), []byte("alphX")),       // bad bytes
		ans(ok(pieces[0]), []byte("alp")),         // short
		ans(header{Status: statusOK, Length: 0}),  // empty piece
		ans(header{Status: statusOK, Length: -1}), // negative
		ans(header{Status: statusOK, Length: content.MaxValidPieceSize + 1}),
		ans(header{Status: statusOK, Length: content.MaxValidPieceSize}, []byte("x")),
		ans(header{Status: "OK", Length: 5}, pieces[0]),
		ans(header{}),
		ans([]byte{0x05}, []byte("nojsn")),
		ans([]byte{0x80, 0x08}), // 1 KiB + 0: over the header limit
		ans(ok(pieces[0]), pieces[0], ok(pieces[1]), pieces[1], ok(pieces[2]), pieces[2], []byte("trailing")),
		[]byte(`{"status":"ok","length":5}`),
		{},
	} {
		f.Add(uint8(0), s)
		f.Add(uint8(1), s)
	}
	f.Add(uint8(0), ans([]byte(`{"status":"ok","length":5.5}`)))
	f.Add(uint8(0), ans([]byte(`{"status":"ok","length":"5"}`)))
	f.Add(uint8(0), ans([]byte(`{"status":"ok","length":1e30}`)))

	c := NewClient(nil)
	f.Fuzz(func(t *testing.T, mode uint8, in []byte) {
		st := &memStream{r: bytes.NewReader(in)}
		br := bufio.NewReaderSize(st, 32<<10)
		got := map[int][]byte{}
		deliver := func(ref PieceRef, body io.Reader) error {
			if mode%2 == 1 {
				// A deliver that stops early: the client must skip the rest.
				var one [1]byte
				_, err := body.Read(one[:])
				if err != nil && !errors.Is(err, io.EOF) {
					return err
				}
				return nil
			}
			var buf bytes.Buffer
			if _, err := io.Copy(&buf, body); err != nil {
				return err
			}
			if !content.PieceCID(buf.Bytes()).Equals(ref.CID) {
				return fmt.Errorf("%w: %s", errBadPiece, ref)
			}
			got[ref.Index] = buf.Bytes()
			return nil
		}
		results := make([]Result, len(refs))
		var streamErr error
		reached := 0
		for i := range refs {
			results[i].Ref = refs[i]
			reached++
			if err := c.fetchOne(context.Background(), st, br, "fuzz-peer", &results[i], deliver); err != nil {
				streamErr = err
				break
			}
		}
		if streamErr != nil && !errors.Is(streamErr, ErrProtocol) && !errors.Is(streamErr, errBadPiece) {
			t.Fatalf("stream error is neither ErrProtocol nor deliver's: %v", streamErr)
		}
		for i, r := range results {
			if r.Bytes < 0 || r.Bytes > content.MaxValidPieceSize {
				t.Fatalf("piece %d: %d bytes", i, r.Bytes)
			}
			if i >= reached {
				if r.Err != nil || r.Bytes != 0 {
					t.Fatalf("piece %d after the stream ended: %+v", i, r)
				}
				continue
			}
			if streamErr != nil && i == reached-1 {
				continue // the piece the stream failed on
			}
			if r.Err == nil {
				if r.Bytes <= 0 {
					t.Fatalf("piece %d: received with %d bytes", i, r.Bytes)
				}
				if mode%2 == 0 && (!bytes.Equal(got[i], pieces[i]) || r.Bytes != int64(len(pieces[i]))) {
					t.Fatalf("piece %d: accepted %q (%d bytes counted)", i, got[i], r.Bytes)
				}
				continue
			}
			if !errors.Is(r.Err, ErrNotFound) && !errors.Is(r.Err, ErrBusy) &&
				!(mode%2 == 1 && strings.Contains(r.Err.Error(), "deliver returned before reading all")) {
				t.Fatalf("piece %d: unexpected per-piece error %v", i, r.Err)
			}
		}
	})
}
