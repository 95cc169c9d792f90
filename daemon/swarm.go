package daemon

import (
	"context"
	"errors"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dfp2p/dfp2p/cdn"
	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/store"
	"github.com/dfp2p/dfp2p/swarm"
)

// swarmSettle is how long a trackerless daemon that finds nobody holding a
// task waits for others that want it at the same moment before one of them
// reads the origin (see swarm.FetchOrElect).
const swarmSettle = time.Second

// fetchSwarm downloads dl from the peers the DHT knows, without a tracker
// (trackerless mode, or every tracker is down). It fails with an error
// wrapping swarm.ErrNoProviders or swarm.ErrStalled when the caller should
// read the origin instead.
func (d *Daemon) fetchSwarm(ctx context.Context, dl *download) (*content.Manifest, error) {
	opts := []swarm.Option{swarm.WithLogger(d.log), swarm.WithMaxConcurrent(d.cfg.MaxConcurrentPieces),
		swarm.WithByteCounter(func(_ peer.ID, n int64) {
			dl.peers.Add(n)
			d.m.bytes.WithLabelValues(sourcePeer).Add(float64(n))
		}),
		swarm.WithFailureObserver(func(_ peer.ID, err error, dropped bool) {
			if errors.Is(err, store.ErrBadPiece) {
				dl.bad.Add(1)
			}
			d.m.pieceFailed(classify(err), dropped)
		})}
	if !d.members.Open() {
		opts = append(opts, swarm.WithManifestCheck(swarm.SignedBy(d.members.CA())))
	}
	f := swarm.New(d.h, d.xc, d.st, d.dht, opts...)
	digest := ""
	if dl.req.Digest != "" {
		digest = string(dl.task)
	}
	req := swarm.Request{Task: dl.task, URL: dl.req.URL, Digest: digest}
	m, err := swarm.FetchOrElect(ctx, f, d.dht, swarmSettle, req, storeObserver{d, dl, sourcePeer})
	if errors.Is(err, swarm.ErrStalled) && ctx.Err() == nil {
		// Every downloader may have stalled on the same pieces (the
		// tracker and seed died under all of them): one reads the rest.
		m, err = swarm.ElectOnStall(ctx, f, req, storeObserver{d, dl, sourcePeer}, err)
	}
	if errors.Is(err, cdn.ErrDigestMismatch) {
		return nil, &Error{Msg: err.Error()}
	}
	return m, err
}

// swarmFallsBack reports whether a failed swarm download should go on from
// the origin: nobody had the task, or the providers stalled. Other failures
// (a digest mismatch, a cancelled request) are final.
func swarmFallsBack(ctx context.Context, err error) bool {
	return ctx.Err() == nil && (errors.Is(err, swarm.ErrNoProviders) || errors.Is(err, swarm.ErrStalled))
}
