package tracker

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/crypto"
	"github.com/dfp2p/dfp2p/crypto/member"
	"github.com/dfp2p/dfp2p/node"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreTopFunction("github.com/libp2p/go-libp2p/p2p/transport/quicreuse.(*reuse).gc"),
		goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"))
}

func newTestTracker(t *testing.T) (*Tracker, *httptest.Server, []byte) {
	t.Helper()
	data := bytes.Repeat([]byte("0123456789abcdef"), 5<<20/16+3) // a little over 5 MiB
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/f" {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "f", time.Unix(0, 0), bytes.NewReader(data))
	}))
	tr, err := New(Config{DataDir: t.TempDir(), Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}, API: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		tr.Close()
		origin.Close()
	})
	return tr, origin, data
}

// newPeer is a host that joined tr's closed cluster with its join token,
// and a tracker client on it.
func newPeer(t *testing.T, tr *Tracker) (host.Host, *Client) {
	t.Helper()
	h, c := newOutsider(t, tr)
	tok, err := crypto.ParseJoinToken(tr.JoinToken())
	if err != nil {
		t.Fatal(err)
	}
	m, err := member.New(h, tok.CA)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	k, err := member.StartKeeper(ctx, m, &member.Trackers{M: m, Trackers: c.Trackers(), Secret: tok.Secret}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	return h, c
}

// newOutsider is a host with a valid identity but no membership, and a
// tracker client on it.
func newOutsider(t *testing.T, tr *Tracker) (host.Host, *Client) {
	t.Helper()
	h, err := node.New(node.WithListenAddrs("/ip4/127.0.0.1/udp/0/quic-v1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ais, err := ParseAddrs(tr.Addrs())
	if err != nil {
		t.Fatal(err)
	}
	return h, NewClient(h, ais, WithCallTimeout(20*time.Second))
}

func TestRegisterScheduleReportManifest(t *testing.T) {
	tr, origin, data := newTestTracker(t)
	_, c := newPeer(t, tr)
	ctx := context.Background()
	url := origin.URL + "/f"
	resp, err := c.Call(ctx, &Request{Type: TypeRegister, URL: url, Region: "eu-west", Zone: "eu-west-1a"})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := content.TaskIDFor(url, "", "", content.DefaultQueryFilter)
	if resp.Task != id || resp.Length != int64(len(data)) || resp.PieceSize != content.PieceSize(int64(len(data))) {
		t.Fatalf("register answer %+v", resp)
	}
	n := content.NumPieces(resp.Length, resp.PieceSize)
	got := map[int]bool{}
	deadline := time.Now().Add(20 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		s, err := c.Call(ctx, &Request{Type: TypeSchedule, Task: id, Max: 8})
		if err != nil {
			t.Fatal(err)
		}
		var done []int
		for _, a := range s.Assignments {
			if a.Parent != tr.Host().ID().String() || !a.Seed || len(a.Addrs) == 0 {
				t.Fatalf("assignment %+v: want the seed", a)
			}
			off, ln := content.PieceRange(resp.Length, resp.PieceSize, a.Piece)
			if want := content.PieceCID(data[off : off+ln]).String(); a.CID != want {
				t.Fatalf("piece %d CID %s, want %s", a.Piece, a.CID, want)
			}
			got[a.Piece] = true
			done = append(done, a.Piece)
		}
		if _, err := c.Call(ctx, &Request{Type: TypeReport, Task: id, Done: done}); err != nil {
			t.Fatal(err)
		}
		if len(s.Assignments) == 0 {
			time.Sleep(time.Duration(s.RetryAfterMs) * time.Millisecond)
		}
	}
	if len(got) != n {
		t.Fatalf("scheduled %d of %d pieces", len(got), n)
	}
	var mb []byte
	for time.Now().Before(deadline) {
		m, err := c.Call(ctx, &Request{Type: TypeManifest, Task: id})
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Manifest) > 0 {
			mb = m.Manifest
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	m, err := content.DecodeManifest(mb)
	if err != nil {
		t.Fatal(err)
	}
	if m.Length != int64(len(data)) || len(m.Pieces) != n {
		t.Fatalf("manifest %+v", m)
	}

	// The HTTP API shows the task and its peer.
	api := "http://" + tr.APIAddr()
	for path, want := range map[string]string{
		"/healthz":                          "ok",
		"/api/v1/tasks":                     string(id),
		"/api/v1/tasks/" + id.Short() + "x": "unknown task",
		"/api/v1/tasks/" + string(id):       `"Zone": "eu-west-1a"`,
		"/api/v1/peers":                     `"Seed": true`,
		"/metrics":                          "dfp2p_tracker_requests_total",
	} {
		body := get(t, api+path)
		if !strings.Contains(body, want) {
			t.Errorf("GET %s: %q does not contain %q", path, body, want)
		}
	}
	if body := get(t, api+"/metrics"); !strings.Contains(body, "dfp2p_dht_provided_keys") {
		t.Error("metrics lack the DHT's")
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestRegisterErrors(t *testing.T) {
	tr, origin, _ := newTestTracker(t)
	_, c := newPeer(t, tr)
	ctx := context.Background()
	_, err := c.Call(ctx, &Request{Type: TypeRegister, URL: origin.URL + "/missing"})
	var te *Error
	if !errors.As(err, &te) || te.OriginStatus != 404 || !strings.Contains(te.Msg, "404") {
		t.Fatalf("404 origin: %v", err)
	}
	_, err = c.Call(ctx, &Request{Type: TypeRegister, URL: origin.URL + "/f", Task: content.TaskID(strings.Repeat("a", 64))})
	if !errors.As(err, &te) || !strings.Contains(te.Msg, "does not match") {
		t.Fatalf("mismatched task id: %v", err)
	}
	for _, req := range []*Request{
		{Type: TypeRegister, URL: "ftp://x/y"},
		{Type: TypeSchedule, Task: content.TaskID(strings.Repeat("b", 64))},
		{Type: "nonsense"},
	} {
		if _, err := c.Call(ctx, req); !errors.As(err, &te) {
			t.Errorf("%+v: err = %v, want a tracker error", req, err)
		}
	}
}

// Garbage on the wire is dropped without harming the tracker.
func TestHostileStream(t *testing.T) {
	tr, _, _ := newTestTracker(t)
	h, c := newPeer(t, tr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, junk := range [][]byte{
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, // absurd length
		{0x05, 'n', 'o', 't', 'j', 's'},
		{0x03, '{', '"'},
	} {
		s, err := h.NewStream(ctx, peer.ID(tr.Host().ID()), ProtocolID)
		if err != nil {
			t.Fatal(err)
		}
		s.Write(junk)
		s.CloseWrite()
		io.Copy(io.Discard, s)
		s.Close()
	}
	if _, err := c.Call(ctx, &Request{Type: "nonsense"}); err == nil || errors.Is(err, ErrUnreachable) {
		t.Fatalf("tracker not answering after junk: %v", err)
	}
}

func TestBitfield(t *testing.T) {
	have := []bool{true, false, true, true, false, false, false, false, true}
	b := NewBitfield(have)
	got, err := b.Bools(len(have))
	if err != nil {
		t.Fatal(err)
	}
	for i := range have {
		if got[i] != have[i] {
			t.Fatalf("bit %d", i)
		}
	}
	if _, err := b.Bools(20); err == nil {
		t.Error("wrong length accepted")
	}
	if _, err := (Bitfield{0x00, 0x80}).Bools(9); err == nil {
		t.Error("bits beyond n accepted")
	}
}

func TestRankRendezvous(t *testing.T) {
	var ids []peer.ID
	for i := 0; i < 4; i++ {
		h, err := node.New(node.WithListenAddrs("/ip4/127.0.0.1/udp/0/quic-v1"))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, h.ID())
		h.Close()
	}
	owners := map[peer.ID]int{}
	moved := 0
	for i := 0; i < 400; i++ {
		task, _ := content.TaskIDFor("http://o/f"+strings.Repeat("x", i), "", "", nil)
		r := Rank(task, ids)
		if len(r) != len(ids) {
			t.Fatal("rank lost trackers")
		}
		// Same answer whatever the input order.
		rev := []peer.ID{ids[3], ids[2], ids[1], ids[0]}
		if Rank(task, rev)[0] != r[0] {
			t.Fatal("rank depends on input order")
		}
		owners[r[0]]++
		// Removing one tracker moves only the tasks it owned.
		if r2 := Rank(task, ids[:3]); r[0] != ids[3] && r2[0] != r[0] {
			moved++
		}
	}
	if moved != 0 {
		t.Fatalf("%d tasks changed owner though their owner stayed", moved)
	}
	for _, id := range ids {
		if owners[id] < 60 {
			t.Fatalf("uneven spread: %v", owners)
		}
	}
}
