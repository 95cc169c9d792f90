package tracker

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dfp2p/dfp2p/cdn"
	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/exchange"
	"github.com/dfp2p/dfp2p/swarm"
)

// electSettle is how long a seed that finds nobody holding a task waits for
// other regions' seeds that want it at the same moment (see
// swarm.FetchOrElect). Only trackers with DHT bootstrap peers (other
// regions) elect; a lone tracker reads the origin at once.
const electSettle = time.Second

// peerSource is the seed's first stop (cdn.Swarm): a task that another
// region's seed, or any peer, holds is copied from them through the DHT,
// once per region over the inter-region link, instead of from the origin.
type peerSource struct {
	t  *Tracker
	xc *exchange.Client
}

func (p *peerSource) Fetch(ctx context.Context, req cdn.Request, obs cdn.Observer) (*content.Manifest, error) {
	t := p.t
	f := swarm.New(t.h, p.xc, t.st, t.dht, swarm.WithLogger(t.log),
		swarm.WithByteCounter(func(_ peer.ID, n int64) { t.m.peerBytes.Add(float64(n)) }))
	settle := time.Duration(0)
	if len(t.cfg.Bootstrap) > 0 {
		settle = electSettle
	}
	return swarm.FetchOrElect(ctx, f, t.dht, settle, swarm.Request{Task: req.Task, URL: req.URL, Digest: req.Digest}, obs)
}
