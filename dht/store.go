package dht

import (
	"context"
	"log/slog"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/store"
)

// Relay announces what a store holds through a DHT that starts after the
// store opened. Pass Relay.Event to store.WithEvents; Attach the DHT once it
// runs. Before Attach, events are dropped (Attach announces everything held
// at that point anyway).
type Relay struct{ d atomic.Pointer[DHT] }

// Event advertises a task when its first piece is stored, its manifest root
// when it completes, and withdraws both when it is removed.
func (r *Relay) Event(e store.Event) {
	d := r.d.Load()
	if d == nil {
		return
	}
	switch e.Kind {
	case store.EventPiece:
		if e.Held == 1 {
			d.Advertise(e.Task)
		}
	case store.EventComplete:
		d.Advertise(e.Task)
		d.AdvertiseRoot(e.Task, e.Root)
	case store.EventRemoved:
		d.Withdraw(e.Task)
	}
}

// Start runs a DHT on h for a node with store st, joined through the
// bootstrap peers, logging to log, and attaches it: everything st holds is
// announced now and from then on. The DHT's metrics are registered with reg.
func (r *Relay) Start(ctx context.Context, h host.Host, st *store.Store, reg prometheus.Registerer,
	bootstrap []string, log *slog.Logger, opts ...Option) (*DHT, error) {
	d, err := New(ctx, h, append([]Option{WithBootstrap(bootstrap...), WithLogger(log)}, opts...)...)
	if err != nil {
		return nil, err
	}
	if err := r.Attach(d, st); err != nil {
		d.Close()
		return nil, err
	}
	if err := registerAll(reg, d.Collectors()); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

func registerAll(reg prometheus.Registerer, cs []prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Attach starts relaying to d and advertises every task st holds (part of).
func (r *Relay) Attach(d *DHT, st *store.Store) error {
	r.d.Store(d)
	tasks, err := st.Tasks()
	if err != nil {
		return err
	}
	for _, t := range tasks {
		if t.Held == 0 {
			continue
		}
		d.Advertise(t.ID)
		if !t.Complete {
			continue
		}
		if b, err := st.Manifest(t.ID); err == nil {
			if m, err := content.DecodeManifest(b); err == nil {
				if root, err := m.CID(); err == nil {
					d.AdvertiseRoot(t.ID, root)
				}
			}
		}
	}
	return nil
}
