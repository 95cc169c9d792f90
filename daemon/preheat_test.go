package daemon

import (
	"bufio"
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dfp2p/dfp2p/internal/wire"
	"github.com/dfp2p/dfp2p/tracker/preheat"
)

func askPreheat(ctx context.Context, from host.Host, to *Daemon, req preheat.PeerRequest) (*preheat.PeerResponse, error) {
	if err := from.Connect(ctx, peer.AddrInfo{ID: to.Host().ID(), Addrs: to.Host().Addrs()}); err != nil {
		return nil, err
	}
	s, err := from.NewStream(ctx, to.Host().ID(), preheat.ProtocolID)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(30 * time.Second))
	if err := wire.WriteMsg(s, req); err != nil {
		return nil, err
	}
	var resp preheat.PeerResponse
	return &resp, wire.ReadMsg(bufio.NewReader(s), preheat.MaxPeerMessage, &resp)
}

// In a closed cluster a daemon takes preheat requests only from a member
// with the tracker role: a peer-role member is refused; the tracker's
// request starts a background download through the swarm and is answered
// when it completes.
func TestPreheatOnlyFromTrackers(t *testing.T) {
	data := testData(3<<20 + 7)
	origin := testOrigin(t, data)
	tr := newTracker(t)
	a := newMember(t, tr)
	b := newMember(t, tr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := preheat.PeerRequest{Items: []preheat.PeerItem{{URL: origin.URL + "/f"}}, WaitMs: 20_000}
	if _, err := askPreheat(ctx, a.Host(), b, req); err == nil {
		t.Fatal("a peer-role member's preheat request was answered")
	}
	if n, _ := b.Store().Tasks(); len(n) != 0 {
		t.Fatalf("b started %d tasks for a peer", len(n))
	}
	resp, err := askPreheat(ctx, tr.Host(), b, req)
	if err != nil {
		t.Fatal(err)
	}
	want := mustTask(t, origin.URL+"/f")
	if len(resp.Tasks) != 1 || resp.Tasks[0].Task != want || !resp.Tasks[0].Complete || resp.Tasks[0].Error != "" {
		t.Fatalf("answer %+v", resp)
	}
	// A bad item is reported, not fatal.
	resp, err = askPreheat(ctx, tr.Host(), b, preheat.PeerRequest{Items: []preheat.PeerItem{{URL: "ftp://x/y"}}})
	if err != nil || len(resp.Tasks) != 1 || resp.Tasks[0].Error == "" {
		t.Fatalf("bad item: %+v %v", resp, err)
	}
}
