package tracker

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/dfp2p/dfp2p/cdn"
	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/crypto"
	"github.com/dfp2p/dfp2p/oci"
	"github.com/dfp2p/dfp2p/tracker/preheat"
)

// startPreheat builds the image resolver and the preheat job manager.
func (t *Tracker) startPreheat() error {
	var opts []oci.Option
	for name, base := range t.cfg.PreheatRegistries {
		opts = append(opts, oci.WithRegistry(name, base))
	}
	if t.cfg.PreheatAuthFile != "" {
		creds, err := oci.LoadCredentials(t.cfg.PreheatAuthFile)
		if err != nil {
			return fmt.Errorf("preheat registry credentials: %w", err)
		}
		opts = append(opts, oci.WithCredentials(creds))
	}
	if t.cfg.OriginClient != nil {
		opts = append(opts, oci.WithHTTPClient(t.cfg.OriginClient))
	}
	res, err := oci.NewResolver(opts...)
	if err != nil {
		return fmt.Errorf("preheat: %w", err)
	}
	t.resolver = res
	t.preheat = preheat.New(preheat.Config{Backend: preheatBackend{t}, Resolver: res,
		QueryFilter: t.cfg.QueryFilter, Logger: t.log})
	return nil
}

// Preheat is the tracker's preheat job manager.
func (t *Tracker) Preheat() *preheat.Manager { return t.preheat }

func (t *Tracker) closePreheat() {
	if t.preheat != nil {
		t.preheat.Close()
	}
	if t.resolver != nil {
		t.resolver.Close()
	}
}

// preheatBackend gives preheat jobs the seed and the peers.
type preheatBackend struct{ t *Tracker }

// Seed starts the seed's fetch of tg exactly as a daemon's registration
// does (one job per task, shared with every registration), records the task
// so daemons are scheduled from the seed at once, and waits for the end.
func (b preheatBackend) Seed(ctx context.Context, tg preheat.Target) error {
	t := b.t
	digest := ""
	if tg.Digest != "" {
		digest = string(tg.Task)
	}
	job := t.seed.Start(cdn.Request{Task: tg.Task, URL: tg.URL, Header: tg.Header, Digest: digest})
	length, pieceSize, err := job.Started(ctx)
	if err != nil {
		return err
	}
	t.mu.Lock()
	ts := t.ensureTaskLocked(tg.Task, length, pieceSize)
	if ts.job == nil || ts.job != job {
		ts.url, ts.job = tg.URL, job
	}
	t.mu.Unlock()
	select {
	case <-job.Done():
	case <-ctx.Done():
		return ctx.Err()
	}
	_, err = job.Result()
	return err
}

// SeedProgress counts the bytes of the pieces the seed's store holds.
func (b preheatBackend) SeedProgress(task content.TaskID) (done, total int64) {
	st, err := b.t.st.Task(task)
	if err != nil {
		return 0, 0
	}
	for i, h := range b.t.st.Have(task) {
		if h {
			_, n := content.PieceRange(st.Length, st.PieceSize, i)
			done += n
		}
	}
	return done, st.Length
}

// Candidates are the daemons the tracker can reach: connected members (not
// trackers) that speak the preheat protocol, and peers registered with the
// scheduler, whose locality labels it knows.
func (b preheatBackend) Candidates() []preheat.Candidate {
	t := b.t
	byID := map[string]*preheat.Candidate{}
	var order []string
	add := func(id string) *preheat.Candidate {
		c, ok := byID[id]
		if !ok {
			c = &preheat.Candidate{ID: id}
			byID[id] = c
			order = append(order, id)
		}
		return c
	}
	for _, p := range t.h.Network().Peers() {
		if protos, _ := t.h.Peerstore().SupportsProtocols(p, preheat.ProtocolID); len(protos) == 0 {
			continue
		}
		if !t.members.Open() {
			if role, ok := t.members.Role(p); !ok || role == crypto.RoleTracker {
				continue
			}
		}
		add(p.String())
	}
	t.mu.Lock()
	views := t.sched.Peers()
	t.mu.Unlock()
	for _, v := range views {
		if v.Peer == t.self || v.Seed {
			continue
		}
		c := add(v.Peer)
		if v.Region != "" {
			c.Region, c.Zone = v.Region, v.Zone
		}
	}
	out := make([]preheat.Candidate, 0, len(order))
	for _, id := range order {
		out = append(out, *byID[id])
	}
	return out
}

// AskPeer opens /dfp2p/preheat/1.0.0 to the peer and exchanges one request
// and answer, bounded by the peer's wait plus a margin.
func (b preheatBackend) AskPeer(ctx context.Context, p string, req preheat.PeerRequest) (*preheat.PeerResponse, error) {
	t := b.t
	pid, err := peer.Decode(p)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	addrs := t.addrs[p]
	t.mu.Unlock()
	for _, a := range addrs {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			continue
		}
		if info, err := peer.AddrInfoFromP2pAddr(m); err == nil && info.ID == pid {
			t.h.Peerstore().AddAddrs(pid, info.Addrs, peerstore.TempAddrTTL)
		} else if err != nil {
			t.h.Peerstore().AddAddr(pid, m, peerstore.TempAddrTTL)
		}
	}
	limit := time.Duration(req.WaitMs)*time.Millisecond + 20*time.Second
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var resp preheat.PeerResponse
	if err := roundTrip(ctx, t.h, pid, preheat.ProtocolID, req, preheat.MaxPeerMessage, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}
