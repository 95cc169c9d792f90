package dht

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dfp2p/dfp2p/content"
)

// taskKeyPrefix is hashed in front of a task ID to make its DHT key.
const taskKeyPrefix = "dfp2p-task:"

// TaskKey is the DHT key a task is announced under: the CIDv1 (raw,
// sha2-256) of "dfp2p-task:"+task. The prefix keeps task keys apart from
// piece CIDs and manifest roots, which are sha256 sums of content (a task
// named by a digest has the file's sha256 as its ID).
func TaskKey(task content.TaskID) (cid.Cid, error) {
	if !task.Valid() {
		return cid.Undef, fmt.Errorf("dht: invalid task id %q", task)
	}
	sum := sha256.Sum256([]byte(taskKeyPrefix + string(task)))
	return content.CIDFromSHA256(sum[:])
}

// keyState is one provided key in the reprovider's set.
type keyState struct {
	key    cid.Cid
	label  string    // for logs: "task <short>" or "root <cid>"
	next   time.Time // when to announce it again
	failed bool      // the last announcement failed
}

// Provide announces that this node holds (part of) task and keeps announcing
// it every reprovide interval until Unprovide or Close. The first
// announcement runs now, bounded by ctx and the query timeout; if it fails
// (typically because the node has not joined yet) the error is returned and
// the key stays registered: it is retried soon, and at once when the node
// joins.
func (d *DHT) Provide(ctx context.Context, task content.TaskID) error {
	key, err := TaskKey(task)
	if err != nil {
		return err
	}
	return d.provide(ctx, key, "task "+task.Short())
}

// ProvideRoot announces that this node holds the task whose manifest has
// this root CID (CIDv1 raw sha2-256), with the same re-announcing as Provide,
// until UnprovideRoot or Close.
func (d *DHT) ProvideRoot(ctx context.Context, root cid.Cid) error {
	if _, err := content.SHA256Of(root); err != nil {
		return fmt.Errorf("dht: manifest root: %w", err)
	}
	return d.provide(ctx, root, "root "+root.String())
}

// Unprovide stops re-announcing task. Records already on other peers expire
// after their TTL; there is no way to withdraw them sooner.
func (d *DHT) Unprovide(task content.TaskID) {
	if key, err := TaskKey(task); err == nil {
		d.forget(key)
	}
}

// UnprovideRoot stops re-announcing a manifest root.
func (d *DHT) UnprovideRoot(root cid.Cid) {
	if root.Defined() {
		d.forget(root)
	}
}

// Advertise registers task like Provide but does not wait: the reprovider
// announces it within moments (at once when idle) and then every reprovide
// interval. A task already registered is left alone, so callers may call it
// on every stored piece. It is how a node tells the DHT it holds part of a
// task.
func (d *DHT) Advertise(task content.TaskID) {
	key, err := TaskKey(task)
	if err != nil {
		return
	}
	d.advertise(key, "task "+task.Short())
}

// AdvertiseRoot registers the manifest root of a task this node holds in
// full, like Advertise. Withdraw(task) withdraws it with the task.
func (d *DHT) AdvertiseRoot(task content.TaskID, root cid.Cid) {
	if _, err := content.SHA256Of(root); err != nil {
		return
	}
	d.mu.Lock()
	d.roots[task] = root
	d.mu.Unlock()
	d.advertise(root, "root "+root.String())
}

// Withdraw stops announcing task and the root advertised with it (the task
// was garbage-collected). Records already on other peers expire after their
// TTL.
func (d *DHT) Withdraw(task content.TaskID) {
	d.Unprovide(task)
	d.mu.Lock()
	root, ok := d.roots[task]
	delete(d.roots, task)
	d.mu.Unlock()
	if ok {
		d.UnprovideRoot(root)
	}
}

func (d *DHT) advertise(key cid.Cid, label string) {
	if d.ctx.Err() != nil {
		return
	}
	d.mu.Lock()
	_, ok := d.keys[key.KeyString()]
	if !ok {
		// failed=true with next=now: the kicked reprovider takes it at once.
		d.keys[key.KeyString()] = &keyState{key: key, label: label, next: time.Now(), failed: true}
	}
	d.mu.Unlock()
	if !ok {
		d.kickReprovider()
	}
}

// RoleKey is the DHT key under which the nodes of a role (for example
// "tracker") announce themselves: the CIDv1 (raw, sha2-256) of
// "dfp2p-role:"+role.
func RoleKey(role string) cid.Cid {
	sum := sha256.Sum256([]byte("dfp2p-role:" + role))
	c, _ := content.CIDFromSHA256(sum[:])
	return c
}

// AdvertiseRole announces, like Advertise, that this node plays role.
// Trackers do, so that each learns whether other regions' trackers exist.
func (d *DHT) AdvertiseRole(role string) { d.advertise(RoleKey(role), "role "+role) }

// FindRole returns up to max other nodes that announced role, like
// FindProviders.
func (d *DHT) FindRole(ctx context.Context, role string, max int) ([]peer.AddrInfo, error) {
	return d.find(ctx, RoleKey(role), max)
}

// Provided reports how many keys (tasks and roots) are being re-announced.
func (d *DHT) Provided() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.keys)
}

func (d *DHT) forget(key cid.Cid) {
	d.mu.Lock()
	delete(d.keys, key.KeyString())
	d.mu.Unlock()
}

func (d *DHT) provide(ctx context.Context, key cid.Cid, label string) error {
	if d.ctx.Err() != nil {
		return ErrClosed
	}
	ks := &keyState{key: key, label: label, next: time.Now().Add(d.cfg.reprovide)}
	d.mu.Lock()
	d.keys[key.KeyString()] = ks
	d.mu.Unlock()

	err := d.announce(ctx, key)
	d.mu.Lock()
	if cur := d.keys[key.KeyString()]; cur == ks { // not unprovided or replaced meanwhile
		if err != nil {
			ks.failed, ks.next = true, time.Now().Add(min(retryInterval, d.cfg.reprovide))
		}
	}
	d.mu.Unlock()
	if err != nil {
		if d.ctx.Err() != nil {
			return ErrClosed
		}
		return fmt.Errorf("dht: provide %s: %w", label, err)
	}
	return nil
}

// announce sends one provider record for key to the peers closest to it.
func (d *DHT) announce(ctx context.Context, key cid.Cid) error {
	qctx, cancel := d.queryContext(ctx)
	defer cancel()
	return d.kad.Provide(qctx, key, true)
}

func (d *DHT) kickReprovider() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// reprovideLoop re-announces every key when it is due: a reprovide interval
// after its last successful announcement, retryInterval after a failed one,
// and at once after a kick (the node joined) if the last one failed.
func (d *DHT) reprovideLoop() {
	defer d.wg.Done()
	tick := min(retryInterval, d.cfg.reprovide)
	timer := time.NewTimer(tick)
	defer timer.Stop()
	for {
		retryFailed := false
		select {
		case <-d.ctx.Done():
			return
		case <-timer.C:
		case <-d.kick:
			retryFailed = true
		}
		d.reprovideDue(retryFailed)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(tick)
	}
}

// reprovideDue announces the keys that are due, at most
// maxAnnounceConcurrency at a time, and waits for them.
func (d *DHT) reprovideDue(retryFailed bool) {
	now := time.Now()
	var due []*keyState
	d.mu.Lock()
	for _, ks := range d.keys {
		if !now.Before(ks.next) || (retryFailed && ks.failed) {
			due = append(due, ks)
		}
	}
	d.mu.Unlock()
	if len(due) == 0 {
		return
	}
	var wg sync.WaitGroup
	for _, ks := range due {
		select {
		case d.sem <- struct{}{}:
		case <-d.ctx.Done():
			wg.Wait()
			return
		}
		wg.Go(func() {
			defer func() { <-d.sem }()
			err := d.announce(d.ctx, ks.key)
			if d.ctx.Err() != nil {
				return
			}
			d.mu.Lock()
			if err != nil {
				ks.failed, ks.next = true, time.Now().Add(min(retryInterval, d.cfg.reprovide))
			} else {
				ks.failed, ks.next = false, time.Now().Add(d.cfg.reprovide)
			}
			d.mu.Unlock()
			if err != nil {
				d.log.Warn("dht reprovide failed", "key", ks.label, "err", err)
			}
		})
	}
	wg.Wait()
	d.log.Debug("dht reprovided", "keys", len(due))
}

// FindProviders returns up to max peers that announced task (DefaultMaxProviders
// when max <= 0), excluding this node. It returns as soon as max are found,
// the lookup completes, or the query timeout passes; an empty result with a
// nil error means no provider was found in time. Providers whose record
// carried no address get one from the peerstore or a peer lookup; those left
// without an address are still returned (the host may know a route later).
func (d *DHT) FindProviders(ctx context.Context, task content.TaskID, max int) ([]peer.AddrInfo, error) {
	key, err := TaskKey(task)
	if err != nil {
		return nil, err
	}
	return d.find(ctx, key, max)
}

// FindRootProviders returns up to max peers that announced a manifest root,
// like FindProviders.
func (d *DHT) FindRootProviders(ctx context.Context, root cid.Cid, max int) ([]peer.AddrInfo, error) {
	if _, err := content.SHA256Of(root); err != nil {
		return nil, fmt.Errorf("dht: manifest root: %w", err)
	}
	return d.find(ctx, root, max)
}

func (d *DHT) find(ctx context.Context, key cid.Cid, max int) ([]peer.AddrInfo, error) {
	if d.ctx.Err() != nil {
		return nil, ErrClosed
	}
	if max <= 0 {
		max = DefaultMaxProviders
	}
	qctx, cancel := d.queryContext(ctx)
	defer cancel()
	self := d.h.ID()
	var out []peer.AddrInfo
	// One more than max: this node's own record (it may provide the key
	// too) is returned by the library and dropped here. The channel is
	// always drained so the library's lookup goroutine can finish; it is
	// cancelled once max providers are in hand.
	//
	// A lookup runs until the closest peers have all answered, and a dead
	// peer among them costs a dial timeout. Once a provider is in hand the
	// lookup gets findGrace more to collect others, then stops: a few
	// providers now beat all of them seconds later.
	ch := d.kad.FindProvidersAsync(qctx, key, max+1)
	graceTimer := time.NewTimer(time.Hour)
	graceTimer.Stop()
	defer graceTimer.Stop()
	var grace <-chan time.Time
	graceStarted := false
	for ch != nil {
		select {
		case ai, ok := <-ch:
			if !ok {
				ch = nil
				continue
			}
			if ai.ID == self || len(out) == max {
				continue
			}
			out = append(out, ai)
			if len(out) == max {
				cancel()
			}
			if !graceStarted {
				graceStarted = true
				graceTimer.Reset(findGrace)
				grace = graceTimer.C
			}
		case <-grace:
			grace = nil
			cancel() // the channel closes soon; keep draining it
		}
	}
	for i := range out {
		if len(out[i].Addrs) > 0 {
			continue
		}
		if addrs := d.h.Peerstore().Addrs(out[i].ID); len(addrs) > 0 {
			out[i].Addrs = addrs
			continue
		}
		pctx, pcancel := d.queryContext(ctx)
		if ai, err := d.kad.FindPeer(pctx, out[i].ID); err == nil {
			out[i].Addrs = ai.Addrs
		}
		pcancel()
	}
	switch {
	case len(out) > 0:
		return out, nil
	case d.ctx.Err() != nil:
		return nil, ErrClosed
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case d.kad.RoutingTable().Size() == 0:
		return nil, ErrNoPeers
	}
	return nil, nil
}
