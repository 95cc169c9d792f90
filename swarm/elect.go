package swarm

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"

	"github.com/dfp2p/dfp2p/cdn"
	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/internal/rendezvous"
)

// Announcer is the part of the DHT an election needs: announcing that this
// node provides a task (it is about to hold it).
type Announcer interface {
	Provide(ctx context.Context, task content.TaskID) error
}

// electPatience is how long a node that lost an election waits for the
// winner's first pieces before it gives up and reads the origin itself.
const electPatience = 20 * time.Second

// electStall is the stall and starve timeout while copying from an elected
// reader: a second origin read is what the election exists to avoid.
const electStall = time.Minute

// announceTimeout bounds the election's announcement.
const announceTimeout = 10 * time.Second

// FetchOrElect is Fetch for a node that may be among the first anywhere to
// want a task, so that a cold task crosses the origin's link once even when
// several nodes (other regions' seeds, trackerless daemons) ask for it at the
// same moment — the "concurrent cold pulls all go upstream" trouble of other
// DHT-based mirrors.
//
// When providers hold (part of) the task, it is Fetch. When none does and
// settle > 0, the node announces itself as a provider through a, waits
// settle for the others that want the task now to do the same, and tries
// Fetch again (a reader that started earlier may hold pieces by now). If
// still nobody holds anything, it looks the providers up and ranks them all
// with itself by rendezvous hashing of the task ID. If it ranks first it returns ErrNoProviders: the caller
// reads the origin (and its pieces appear to the others as it stores them).
// Otherwise it fetches from the providers, waiting up to electPatience for
// the first one's first pieces; if they never come, or the download stalls,
// the error wraps ErrNoProviders or ErrStalled and the caller reads the origin
// itself, keeping what it stored. With settle <= 0 there is no election.
//
// Every node of one group ends up in the same order because rendezvous
// ranking depends only on the task and the peer IDs; a node that missed some
// announcements can only rank itself lower than it would otherwise, or see
// itself first when it saw nobody, in which case two nodes read the origin:
// the election narrows the race, it does not make it impossible.
func FetchOrElect(ctx context.Context, f *Fetcher, a Announcer, settle time.Duration, req Request, obs cdn.Observer) (*content.Manifest, error) {
	m, err := f.Fetch(ctx, req, obs)
	if !errors.Is(err, ErrNoProviders) || settle <= 0 || a == nil {
		return m, err
	}
	actx, cancel := context.WithTimeout(ctx, announceTimeout)
	aerr := a.Provide(actx, req.Task)
	cancel()
	if aerr != nil {
		// Nobody heard us (no DHT peers): we are alone; read the origin.
		return nil, fmt.Errorf("%w (announcing failed: %v)", err, aerr)
	}
	t := time.NewTimer(settle)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
		return nil, ctx.Err()
	}
	// Someone may hold pieces by now (a reader that started earlier): then
	// there is nothing to elect.
	m, err = f.Fetch(ctx, req, obs)
	if !errors.Is(err, ErrNoProviders) {
		return m, err
	}
	lctx, cancel := context.WithTimeout(ctx, f.cfg.lookup)
	provs, ferr := f.finder.FindProviders(lctx, req.Task, f.cfg.maxProviders)
	cancel()
	self := f.h.ID()
	ids := []peer.ID{self}
	for _, p := range provs {
		if p.ID != self {
			ids = append(ids, p.ID)
		}
	}
	first := rendezvous.Rank(string(req.Task), ids)[0]
	if first == self {
		f.cfg.log.Info("swarm: elected to read the origin", "task", req.Task.Short(), "contenders", len(ids), "lookup_err", ferr)
		return nil, fmt.Errorf("%w: elected to read the origin among %d", ErrNoProviders, len(ids))
	}
	f.cfg.log.Info("swarm: another node reads the origin; fetching from it", "task", req.Task.Short(), "reader", first, "contenders", len(ids))
	return f.fetchFromReader(ctx, req, obs)
}

// ElectOnStall is for a node whose Fetch failed with ErrStalled (stalled is
// that error): the providers it found hold none of the pieces it lacks, as
// when the cluster's only tracker and seed died under every downloader at
// once. Rather than each stalled node reading the missing part from the
// origin, the nodes elect one reader: it ranks itself with the providers
// that still answer and are not complete (the others stalled on the same
// pieces) by rendezvous hashing of the task ID; a provider that is complete
// by now (an elected reader finished) ends the election: the node fetches
// again. If it ranks first it returns
// an error wrapping stalled and the caller reads the rest from the origin,
// keeping what it stored; otherwise it fetches from the providers again,
// patiently (electStall), while the elected node's pieces arrive. The same
// caveats as FetchOrElect apply: it narrows the race, and a partial holder
// that is not downloading may be elected, which costs electStall before
// the caller reads the origin itself.
func ElectOnStall(ctx context.Context, f *Fetcher, req Request, obs cdn.Observer, stalled error) (*content.Manifest, error) {
	lctx, cancel := context.WithTimeout(ctx, f.cfg.lookup)
	provs, _ := f.finder.FindProviders(lctx, req.Task, f.cfg.maxProviders)
	self := f.h.ID()
	ids := []peer.ID{self}
	complete := false
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range provs {
		if p.ID == self {
			continue
		}
		if len(p.Addrs) > 0 {
			f.h.Peerstore().AddAddrs(p.ID, p.Addrs, peerstore.TempAddrTTL)
		}
		wg.Go(func() {
			st, err := poll(lctx, f, req.Task, p.ID)
			if err != nil || st == nil {
				return // gone (a dead seed's record)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(st.Manifest) > 0 {
				complete = true // someone finished meanwhile (an elected reader)
				return
			}
			ids = append(ids, p.ID)
		})
	}
	wg.Wait()
	cancel()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	first := rendezvous.Rank(string(req.Task), ids)[0]
	switch {
	case complete:
		f.cfg.log.Info("swarm: stalled, but a provider holds the whole task now; fetching from it", "task", req.Task.Short())
	case first == self:
		f.cfg.log.Info("swarm: stalled; elected to read the rest from the origin", "task", req.Task.Short(), "contenders", len(ids))
		return nil, fmt.Errorf("%w; elected to read the rest from the origin among %d", stalled, len(ids))
	default:
		f.cfg.log.Info("swarm: stalled; another node reads the rest from the origin, fetching from it", "task", req.Task.Short(), "reader", first, "contenders", len(ids))
	}
	return f.fetchFromReader(ctx, req, obs)
}

// fetchFromReader fetches while the elected reader fills the task in. It
// fills in as fast as its origin link allows, which may be slower than a
// piece per stall timeout (another region's reader on a thin link): wait for
// it longer before reading the origin a second time.
func (f *Fetcher) fetchFromReader(ctx context.Context, req Request, obs cdn.Observer) (*content.Manifest, error) {
	patient := *f
	patient.cfg.patient = true
	patient.cfg.lookup = electPatience
	patient.cfg.stall = max(patient.cfg.stall, electStall)
	patient.cfg.starve = max(patient.cfg.starve, electStall)
	return patient.Fetch(ctx, req, obs)
}
