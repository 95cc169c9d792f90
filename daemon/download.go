package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/dfp2p/dfp2p/cdn"
	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/exchange"
	"github.com/dfp2p/dfp2p/node"
	"github.com/dfp2p/dfp2p/store"
	"github.com/dfp2p/dfp2p/swarm"
	"github.com/dfp2p/dfp2p/tracker"
)

// Request names a file to fetch.
type Request struct {
	URL    string      `json:"url"`
	Header http.Header `json:"header,omitempty"`
	Digest string      `json:"digest,omitempty"` // sha256:HEX
	Tag    string      `json:"tag,omitempty"`
}

// Error is a failed download. OriginStatus is the origin's HTTP status when
// the origin caused the failure.
type Error struct {
	Msg          string
	OriginStatus int
	// BadRequest marks errors in the request itself (bad URL, bad digest).
	BadRequest bool
}

func (e *Error) Error() string { return e.Msg }

// Stats counts where a download's bytes came from.
type Stats struct {
	OriginBytes int64 `json:"origin_bytes"` // read from the origin by this daemon
	SeedBytes   int64 `json:"seed_bytes"`   // from the cluster's CDN seed
	PeerBytes   int64 `json:"peer_bytes"`   // from other daemons
	BadPieces   int64 `json:"bad_pieces"`
}

// download is one task being fetched (or already held). Any number of
// readers may wait on it; it is owned by the daemon, not by a request.
type download struct {
	task content.TaskID
	req  Request

	mu        sync.Mutex
	length    int64
	pieceSize int64
	have      []bool
	held      int
	started   bool
	changed   chan struct{} // closed and replaced whenever state changes
	manifest  *content.Manifest
	err       error
	done      chan struct{}

	origin, seed, peers, bad atomic.Int64
}

func newDownload(task content.TaskID, req Request) *download {
	return &download{task: task, req: req, changed: make(chan struct{}), done: make(chan struct{})}
}

func (dl *download) notifyLocked() {
	close(dl.changed)
	dl.changed = make(chan struct{})
}

func (dl *download) setGeometry(length, pieceSize int64, have []bool) {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	n := content.NumPieces(length, pieceSize)
	dl.length, dl.pieceSize, dl.started = length, pieceSize, true
	dl.have = make([]bool, n)
	dl.held = 0
	for i := range dl.have {
		if i < len(have) && have[i] {
			dl.have[i] = true
			dl.held++
		}
	}
	dl.notifyLocked()
}

// pieceDone marks piece i held; it reports whether it was not held before.
func (dl *download) pieceDone(i int) bool {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	if i >= 0 && i < len(dl.have) && !dl.have[i] {
		dl.have[i] = true
		dl.held++
		dl.notifyLocked()
		return true
	}
	return false
}

func (dl *download) finish(m *content.Manifest, err error) {
	dl.mu.Lock()
	dl.manifest, dl.err = m, err
	dl.notifyLocked()
	dl.mu.Unlock()
	close(dl.done)
}

// waitStarted blocks until the geometry is known or the download failed.
func (dl *download) waitStarted(ctx context.Context) error {
	for {
		dl.mu.Lock()
		started, ch := dl.started, dl.changed
		dl.mu.Unlock()
		if started {
			return nil
		}
		select {
		case <-dl.done:
			dl.mu.Lock()
			err := dl.err
			started := dl.started
			dl.mu.Unlock()
			if started {
				return nil
			}
			if err == nil {
				err = errors.New("download ended before it started")
			}
			return err
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// waitPiece blocks until piece i is held, or the download failed.
func (dl *download) waitPiece(ctx context.Context, i int) error {
	for {
		dl.mu.Lock()
		ok := i < len(dl.have) && dl.have[i]
		err, ch := dl.err, dl.changed
		dl.mu.Unlock()
		if ok {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (dl *download) stats() Stats {
	return Stats{OriginBytes: dl.origin.Load(), SeedBytes: dl.seed.Load(), PeerBytes: dl.peers.Load(), BadPieces: dl.bad.Load()}
}

// run drives the download to the end. It is started by the daemon and owned
// by it.
func (d *Daemon) run(ctx context.Context, dl *download) {
	m, err := d.fetchTask(ctx, dl)
	if err == nil {
		d.log.Info("download complete", "task", dl.task.Short(), "bytes", m.Length,
			"origin", dl.origin.Load(), "seed", dl.seed.Load(), "peers", dl.peers.Load())
	} else {
		d.log.Warn("download failed", "task", dl.task.Short(), "err", err)
	}
	dl.finish(m, err)
	d.mu.Lock()
	delete(d.active, dl.task)
	d.rememberStatsLocked(dl.task, dl.stats())
	d.mu.Unlock()
}

// maxRecent bounds how many finished downloads' statistics are kept.
const maxRecent = 1024

func (d *Daemon) rememberStatsLocked(task content.TaskID, st Stats) {
	if len(d.recent) >= maxRecent {
		for k := range d.recent { // drop an arbitrary old entry
			delete(d.recent, k)
			break
		}
	}
	d.recent[task] = st
}

func (d *Daemon) fetchTask(ctx context.Context, dl *download) (*content.Manifest, error) {
	release := d.st.Acquire(dl.task)
	defer func() { release() }()
	if t, err := d.st.Task(dl.task); err == nil && t.Complete {
		m, err := content.DecodeManifest(t.Manifest)
		if err == nil {
			dl.setGeometry(t.Length, t.PieceSize, d.st.Have(dl.task))
			_ = d.st.Touch(dl.task)
			return m, nil
		}
	}
	if d.tc != nil {
		m, err := d.fetchP2P(ctx, dl, &release)
		if err == nil || !errors.Is(err, errTrackerLost) {
			return m, err
		}
		d.log.Warn("no tracker reachable", "task", dl.task.Short(), "err", err)
	}
	if d.dht != nil {
		m, err := d.fetchSwarm(ctx, dl)
		if err == nil || !swarmFallsBack(ctx, err) {
			return m, err
		}
		d.log.Info("no peer in the DHT can supply the task; reading the origin", "task", dl.task.Short(), "reason", err)
	}
	return d.fetchOrigin(ctx, dl)
}

var errTrackerLost = errors.New("tracker unreachable")

// fetchOrigin reads the task from the origin into the store, resuming pieces
// already held.
func (d *Daemon) fetchOrigin(ctx context.Context, dl *download) (*content.Manifest, error) {
	digest := ""
	if dl.req.Digest != "" {
		digest = string(dl.task)
	}
	f := cdn.NewFetcher(d.st, append(d.originOpts,
		cdn.WithByteCounter(func(n int64) { dl.origin.Add(n); d.m.bytes.WithLabelValues(sourceOrigin).Add(float64(n)) }))...)
	m, err := f.Fetch(ctx, cdn.Request{Task: dl.task, URL: dl.req.URL, Header: dl.req.Header, Digest: digest}, storeObserver{d, dl, sourceOrigin})
	if err != nil {
		var oe *cdn.OriginError
		if errors.As(err, &oe) {
			return nil, &Error{Msg: err.Error(), OriginStatus: oe.StatusCode}
		}
		return nil, err
	}
	return m, nil
}

// storeObserver follows a download into the store (origin or swarm) for
// readers waiting on its pieces, counting new pieces by source.
type storeObserver struct {
	d      *Daemon
	dl     *download
	source string
}

func (o storeObserver) Started(task content.TaskID, length, pieceSize int64) {
	o.dl.setGeometry(length, pieceSize, o.d.st.Have(task))
}

func (o storeObserver) Piece(_ content.TaskID, idx int, _ cid.Cid) {
	if o.dl.pieceDone(idx) {
		o.d.m.piecesDone.WithLabelValues(o.source).Inc()
	}
}

// fetchP2P downloads through the tracker's schedule. It returns an error
// wrapping errTrackerLost when the tracker stops answering, after which the
// caller may continue from the origin with the pieces already held.
func (d *Daemon) fetchP2P(ctx context.Context, dl *download, release *func()) (*content.Manifest, error) {
	resp, err := d.tc.Call(ctx, d.registerReq(dl, d.st.Have(dl.task)))
	if err != nil {
		return nil, trackerErr(err)
	}
	if resp.Task != dl.task {
		return nil, fmt.Errorf("tracker answered for task %s, asked %s", resp.Task.Short(), dl.task.Short())
	}
	if _, err := d.st.EnsureTask(dl.task, dl.req.URL, resp.Length, resp.PieceSize); err != nil {
		// The store holds this task with other geometry (the origin's file
		// changed under the same URL): start it over.
		d.log.Warn("cached copy has other geometry; starting over", "task", dl.task.Short(), "err", err)
		(*release)()
		derr := d.st.DeleteTask(dl.task)
		*release = d.st.Acquire(dl.task)
		if derr != nil {
			return nil, errors.Join(err, derr)
		}
		if _, err := d.st.EnsureTask(dl.task, dl.req.URL, resp.Length, resp.PieceSize); err != nil {
			return nil, err
		}
	}
	dl.setGeometry(resp.Length, resp.PieceSize, d.st.Have(dl.task))
	if err := d.pullPieces(ctx, dl); err != nil {
		return nil, err
	}
	return d.finishP2P(ctx, dl)
}

// registerReq is the register request for dl, with what this daemon holds.
func (d *Daemon) registerReq(dl *download, have []bool) *tracker.Request {
	return &tracker.Request{Type: tracker.TypeRegister, Task: dl.task, URL: dl.req.URL, Tag: dl.req.Tag,
		Digest: dl.req.Digest, Header: dl.req.Header, Addrs: node.Addrs(d.h), Have: tracker.NewBitfield(have),
		Region: d.cfg.Region, Zone: d.cfg.Zone}
}

// trackerErr turns a tracker client error into a download error: an answer
// from the tracker is final (the origin said 404), a transport failure is
// errTrackerLost.
func trackerErr(err error) error {
	var te *tracker.Error
	if errors.As(err, &te) {
		return &Error{Msg: te.Msg, OriginStatus: te.OriginStatus}
	}
	return fmt.Errorf("%w: %v", errTrackerLost, err)
}

type pieceResult struct {
	ref    exchange.PieceRef
	parent peer.ID
	seed   bool
	bytes  int64
	err    error
}

// reportFlush is the longest a finished piece waits before it is reported.
const reportFlush = 200 * time.Millisecond

// trackerGrace is how long schedule calls may fail in a row before the
// daemon gives up on the tracker for this download.
const trackerGrace = 10 * time.Second

func (d *Daemon) pullPieces(ctx context.Context, dl *download) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := len(dl.have)
	have := d.st.Have(dl.task)
	held := 0
	for _, h := range have {
		if h {
			held++
		}
	}
	inflight := map[int]bool{}
	blocked := map[peer.ID]time.Time{}
	banned := map[peer.ID]bool{} // sent a bad piece in this download
	results := make(chan pieceResult, d.cfg.MaxConcurrentPieces)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	var done []int
	var failed []tracker.Failure
	lastFlush := time.Now()
	flush := func(force bool) {
		if len(done)+len(failed) == 0 || (!force && len(done)+len(failed) < 16 && time.Since(lastFlush) < reportFlush) {
			return
		}
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := d.tc.Call(rctx, &tracker.Request{Type: tracker.TypeReport, Task: dl.task, Done: done, Failed: failed})
		rcancel()
		if err != nil {
			d.log.Debug("report failed", "err", err)
		}
		done, failed, lastFlush = nil, nil, time.Now()
	}

	var lastOK = time.Now()
	nextSchedule := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for held < n {
		free := d.cfg.MaxConcurrentPieces - len(inflight)
		if free > 0 && !time.Now().Before(nextSchedule) {
			sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
			resp, err := d.tc.Call(sctx, &tracker.Request{Type: tracker.TypeSchedule, Task: dl.task, Max: free})
			scancel()
			switch {
			case err != nil:
				var te *tracker.Error
				if errors.As(err, &te) {
					if !te.UnknownTask {
						return trackerErr(err) // the seed failed: final
					}
					// The tracker restarted or forgot the task, or its owner
					// died and the next tracker took over: register again.
					// A tracker answered: it is not lost.
					lastOK = time.Now()
					d.log.Info("tracker does not know the task; registering again", "task", dl.task.Short())
					if _, rerr := d.tc.Call(ctx, d.registerReq(dl, have)); rerr != nil {
						if errors.As(rerr, &te) && !te.UnknownTask {
							return trackerErr(rerr)
						}
						d.log.Info("registering again failed", "task", dl.task.Short(), "err", rerr)
					} else {
						lastOK = time.Now()
					}
				}
				d.log.Debug("schedule failed", "task", dl.task.Short(), "err", err)
				if time.Since(lastOK) > trackerGrace && len(inflight) == 0 {
					return fmt.Errorf("%w: %v", errTrackerLost, err)
				}
				nextSchedule = time.Now().Add(250 * time.Millisecond)
			default:
				lastOK = time.Now()
				started, declined := d.dispatch(ctx, dl, resp.Assignments, have, inflight, blocked, results, &wg)
				if len(declined) > 0 {
					// Hand them back at once, or the tracker keeps them
					// assigned to us (and the pieces unscheduled) until
					// its assignment timeout.
					failed = append(failed, declined...)
					flush(true)
				}
				if started == 0 {
					wait := time.Duration(resp.RetryAfterMs) * time.Millisecond
					if wait <= 0 || wait > 2*time.Second {
						wait = 100 * time.Millisecond
					}
					nextSchedule = time.Now().Add(wait)
				}
			}
		}
		// Sleep until the next schedule is due; with every slot busy, only a
		// finished piece (or the report flush) wakes the loop.
		wait := reportFlush
		if len(inflight) < d.cfg.MaxConcurrentPieces {
			wait = max(time.Until(nextSchedule), 5*time.Millisecond)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case r := <-results:
			delete(inflight, r.ref.Index)
			if r.err == nil {
				if !have[r.ref.Index] {
					have[r.ref.Index] = true
					held++
				}
				done = append(done, r.ref.Index)
				d.countBytes(dl, r)
				dl.pieceDone(r.ref.Index)
				// A finished piece frees a slot: ask again soon.
				nextSchedule = time.Now()
			} else {
				if diskFull(r.err) {
					// Our own disk, not the parent: no other parent can
					// help, so fail the download with one clear line.
					return &Error{Msg: fmt.Sprintf("no space left on device: the daemon cannot store piece %d in %s", r.ref.Index, d.cfg.DataDir)}
				}
				reason := classify(r.err)
				newBad := reason == tracker.ReasonBadPiece && !banned[r.parent]
				d.m.pieceFailed(reason, newBad)
				if reason == tracker.ReasonBadPiece {
					dl.bad.Add(1)
					banned[r.parent] = true
					blocked[r.parent] = time.Now().Add(5 * time.Minute)
					d.log.Warn("parent sent a bad piece; avoiding it", "task", dl.task.Short(), "piece", r.ref.Index, "parent", r.parent)
				} else {
					blocked[r.parent] = time.Now().Add(5 * time.Second)
					d.log.Debug("piece fetch failed", "piece", r.ref.Index, "parent", r.parent, "err", r.err)
				}
				failed = append(failed, tracker.Failure{Piece: r.ref.Index, Parent: r.parent.String(), Reason: reason})
			}
			flush(held == n)
		case <-timer.C:
			flush(false)
		}
	}
	flush(true)
	return nil
}

func (d *Daemon) countBytes(dl *download, r pieceResult) {
	if r.seed {
		dl.seed.Add(r.bytes)
		d.m.bytes.WithLabelValues(sourceSeed).Add(float64(r.bytes))
		d.m.piecesDone.WithLabelValues(sourceSeed).Inc()
	} else {
		dl.peers.Add(r.bytes)
		d.m.bytes.WithLabelValues(sourcePeer).Add(float64(r.bytes))
		d.m.piecesDone.WithLabelValues(sourcePeer).Inc()
	}
}

func classify(err error) string {
	switch {
	case errors.Is(err, store.ErrBadPiece):
		return tracker.ReasonBadPiece
	case errors.Is(err, exchange.ErrNotFound):
		return tracker.ReasonNotFound
	case errors.Is(err, exchange.ErrBusy):
		return tracker.ReasonOther
	case errors.Is(err, errDial), errors.Is(err, swarm.ErrUnreachable):
		return tracker.ReasonUnreachable
	default:
		return tracker.ReasonOther
	}
}

var errDial = errors.New("cannot reach parent")

// diskFull reports whether err is the daemon's own disk running out of space
// (or quota) while storing a piece.
func diskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// refsPerStream is how many pieces one exchange stream carries pipelined.
const refsPerStream = 4

// dispatch starts fetches for the assignments it accepts and returns how many
// pieces it started, and the assignments it declined because their parent
// failed this daemon recently (to be reported as failed, which frees them
// on the tracker and makes it avoid that parent for us).
func (d *Daemon) dispatch(ctx context.Context, dl *download, as []tracker.Assignment, have []bool,
	inflight map[int]bool, blocked map[peer.ID]time.Time, results chan<- pieceResult, wg *sync.WaitGroup) (int, []tracker.Failure) {
	var declined []tracker.Failure
	type group struct {
		seed bool
		refs []exchange.PieceRef
	}
	groups := map[peer.ID]*group{}
	var order []peer.ID
	now := time.Now()
	started := 0
	for _, a := range as {
		if a.Piece < 0 || a.Piece >= len(have) || have[a.Piece] || inflight[a.Piece] {
			continue
		}
		pid, err := peer.Decode(a.Parent)
		if err != nil || pid == d.h.ID() {
			continue
		}
		if until, ok := blocked[pid]; ok && now.Before(until) {
			declined = append(declined, tracker.Failure{Piece: a.Piece, Parent: a.Parent, Reason: tracker.ReasonOther})
			continue
		}
		c, err := cid.Decode(a.CID)
		if err != nil {
			continue
		}
		for _, s := range a.Addrs {
			if m, err := ma.NewMultiaddr(s); err == nil {
				d.h.Peerstore().AddAddr(pid, m, peerstore.TempAddrTTL)
			}
		}
		g, ok := groups[pid]
		if !ok {
			g = &group{seed: a.Seed}
			groups[pid] = g
			order = append(order, pid)
		}
		g.refs = append(g.refs, exchange.PieceRef{Task: dl.task, Index: a.Piece, CID: c})
		inflight[a.Piece] = true
		started++
	}
	for _, pid := range order {
		g := groups[pid]
		for len(g.refs) > 0 {
			k := min(refsPerStream, len(g.refs))
			refs := g.refs[:k:k]
			g.refs = g.refs[k:]
			wg.Add(1)
			go func(pid peer.ID, seed bool, refs []exchange.PieceRef) {
				defer wg.Done()
				d.fetchFrom(ctx, pid, seed, refs, results)
			}(pid, g.seed, refs)
		}
	}
	return started, declined
}

func (d *Daemon) fetchFrom(ctx context.Context, pid peer.ID, seed bool, refs []exchange.PieceRef, results chan<- pieceResult) {
	// One tag per fetch: protection is per tag, and several fetches may run
	// to the same parent at once.
	tag := fmt.Sprintf("dfp2p-xfer-%s-%d", refs[0].Task.Short(), refs[0].Index)
	node.Protect(d.h, pid, tag)
	defer node.Unprotect(d.h, pid, tag)
	send := func(r pieceResult) {
		select {
		case results <- r:
		case <-ctx.Done():
		}
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := d.h.Connect(dctx, peer.AddrInfo{ID: pid})
	cancel()
	if err != nil {
		for _, ref := range refs {
			send(pieceResult{ref: ref, parent: pid, seed: seed, err: fmt.Errorf("%w: %v", errDial, err)})
		}
		return
	}
	res := d.xc.Fetch(ctx, pid, refs, func(ref exchange.PieceRef, body io.Reader) error {
		_, err := d.st.WritePiece(ref.Task, ref.Index, ref.CID, body)
		return err
	})
	for _, r := range res {
		send(pieceResult{ref: r.Ref, parent: pid, seed: seed, bytes: r.Bytes, err: r.Err})
	}
}

// finishP2P fetches the manifest and checks every held piece against it.
func (d *Daemon) finishP2P(ctx context.Context, dl *download) (*content.Manifest, error) {
	deadline := time.Now().Add(5 * time.Minute)
	d.log.Debug("all pieces held; fetching the manifest", "task", dl.task.Short())
	for {
		mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		resp, err := d.tc.Call(mctx, &tracker.Request{Type: tracker.TypeManifest, Task: dl.task})
		cancel()
		if err != nil {
			return nil, trackerErr(err)
		}
		if len(resp.Manifest) > 0 {
			m, err := d.checkManifest(resp)
			if err != nil {
				return nil, err
			}
			if m.TaskID != dl.task || m.Length != dl.length || m.PieceSize != dl.pieceSize {
				return nil, fmt.Errorf("manifest does not describe this download")
			}
			if dl.req.Digest != "" && m.SHA256 != string(dl.task) {
				return nil, &Error{Msg: fmt.Sprintf("digest mismatch: file has sha256:%s, expected %s", m.SHA256, dl.req.Digest)}
			}
			if err := d.st.Complete(dl.task, m); err != nil {
				return nil, err
			}
			return m, nil
		}
		if time.Now().After(deadline) {
			return nil, errors.New("timed out waiting for the seed to finish the manifest")
		}
		wait := time.Duration(resp.RetryAfterMs) * time.Millisecond
		if wait <= 0 {
			wait = 100 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}
