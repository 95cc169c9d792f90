package dht

import (
	"sync/atomic"

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
