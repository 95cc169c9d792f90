package tracker

import (
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dfp2p/dfp2p/cdn"
	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/exchange"
	"github.com/dfp2p/dfp2p/swarm"
)

// electSettle is how long a seed that finds nobody holding a task waits for
// other regions' seeds that want it at the same moment (see
// swarm.FetchOrElect). Only trackers that know of other trackers in the DHT
// elect; a lone tracker reads the origin at once.
const electSettle = time.Second

// trackerRole is the DHT role trackers announce.
const trackerRole = "tracker"

// How long the answer to "are there other trackers?" is kept.
const (
	rolesKeepYes = 5 * time.Minute
	rolesKeepNo  = 5 * time.Second
)

// peerSource is the seed's first stop (cdn.Swarm): a task that another
// region's seed, or any peer, holds is copied from them through the DHT,
// once per region over the inter-region link, instead of from the origin.
type peerSource struct {
	t  *Tracker
	xc *exchange.Client

	mu      sync.Mutex
	others  bool      // other trackers announced themselves
	checked time.Time // when others was last looked up
}

// otherTrackers reports whether the DHT knows trackers besides this one (so
// other regions may want the same task at the same moment), looking it up
// at most every rolesKeepNo while the answer is no.
func (p *peerSource) otherTrackers(ctx context.Context) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	keep := rolesKeepNo
	if p.others {
		keep = rolesKeepYes
	}
	if time.Since(p.checked) < keep {
		return p.others
	}
	lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	found, _ := p.t.dht.FindRole(lctx, trackerRole, 1)
	cancel()
	p.others, p.checked = len(found) > 0, time.Now()
	return p.others
}

func (p *peerSource) Fetch(ctx context.Context, req cdn.Request, obs cdn.Observer) (*content.Manifest, error) {
	t := p.t
	opts := []swarm.Option{swarm.WithLogger(t.log),
		swarm.WithByteCounter(func(_ peer.ID, n int64) { t.m.bytes.WithLabelValues("peer").Add(float64(n)) })}
	if !t.members.Open() {
		opts = append(opts, swarm.WithManifestCheck(swarm.SignedBy(t.members.CA())))
	}
	f := swarm.New(t.h, p.xc, t.st, t.dht, opts...)
	settle := time.Duration(0)
	if p.otherTrackers(ctx) {
		settle = electSettle
	}
	return swarm.FetchOrElect(ctx, f, t.dht, settle, swarm.Request{Task: req.Task, URL: req.URL, Digest: req.Digest}, obs)
}
