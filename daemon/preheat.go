package daemon

import (
	"bufio"
	"context"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/crypto"
	"github.com/dfp2p/dfp2p/internal/wire"
	"github.com/dfp2p/dfp2p/tracker/preheat"
)

// servePreheat answers /dfp2p/preheat/1.0.0 on h (the membership-gated
// host): a tracker asks this daemon to fetch tasks in the background.
func (d *Daemon) servePreheat(h host.Host) {
	if d.tc == nil {
		return // no tracker: nobody may ask
	}
	h.SetStreamHandler(preheat.ProtocolID, d.handlePreheat)
}

// preheatAllowed: in a closed cluster only members certified as trackers
// may ask (a peer-role member must not make others fill their disks); in an
// open cluster only the trackers this daemon uses.
func (d *Daemon) preheatAllowed(p peer.ID) bool {
	if d.members != nil && !d.members.Open() {
		role, ok := d.members.Role(p)
		return ok && role == crypto.RoleTracker
	}
	return slices.Contains(d.tc.Trackers(), p)
}

func (d *Daemon) handlePreheat(s network.Stream) {
	defer s.Close()
	p := s.Conn().RemotePeer()
	if !d.preheatAllowed(p) {
		d.log.Info("refused a preheat request from a peer that is not a tracker", "peer", p)
		_ = s.Reset()
		return
	}
	_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
	var req preheat.PeerRequest
	if err := wire.ReadMsg(bufio.NewReader(s), preheat.MaxPeerMessage, &req); err != nil {
		d.log.Debug("bad preheat request", "peer", p, "err", err)
		_ = s.Reset()
		return
	}
	resp := d.preheat(&req)
	_ = s.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := wire.WriteMsg(s, resp); err != nil {
		_ = s.Reset()
	}
}

// preheat starts (or joins) a background download of every item, waits up
// to req.WaitMs for them to end, and reports each task's state. The
// downloads belong to the daemon and go on after the answer.
func (d *Daemon) preheat(req *preheat.PeerRequest) *preheat.PeerResponse {
	if len(req.Items) > preheat.MaxPeerItems {
		return &preheat.PeerResponse{Error: "too many items"}
	}
	wait := time.Duration(min(max(req.WaitMs, 0), preheat.MaxPeerWaitMs)) * time.Millisecond
	dls := make([]*download, len(req.Items))
	out := make([]preheat.PeerTask, len(req.Items))
	for i, it := range req.Items {
		dl, err := d.start(Request{URL: it.URL, Digest: it.Digest, Tag: it.Tag})
		if err != nil {
			id, _ := content.TaskIDFor(it.URL, it.Tag, it.Digest, d.cfg.QueryFilter)
			out[i] = preheat.PeerTask{Task: id, Error: err.Error()}
			continue
		}
		dls[i] = dl
	}
	ctx, cancel := context.WithTimeout(d.ctx, wait)
	defer cancel()
wait:
	for _, dl := range dls {
		if dl == nil {
			continue
		}
		select {
		case <-dl.done:
		case <-ctx.Done():
			break wait
		}
	}
	for i, dl := range dls {
		if dl == nil {
			continue
		}
		pt := preheat.PeerTask{Task: dl.task}
		select {
		case <-dl.done:
			dl.mu.Lock()
			if dl.err != nil {
				pt.Error = dl.err.Error()
			}
			dl.mu.Unlock()
		default:
		}
		if t, err := d.st.Task(dl.task); err == nil {
			pt.Complete, pt.Held, pt.Pieces = t.Complete, t.Held, t.Pieces
		}
		if pt.Complete {
			pt.Error = ""
		}
		out[i] = pt
	}
	return &preheat.PeerResponse{Tasks: out}
}
