package scheduler

import (
	"cmp"
	"slices"
	"time"
)

// TaskView summarises one task for the HTTP API.
type TaskView struct {
	Task     string
	Pieces   int
	Peers    int // registered peers, seeds included
	Seeds    int
	Complete int // peers holding every piece
	Inflight int // assignments handed out and not yet reported
}

// PeerView describes one peer in one task for the HTTP API.
type PeerView struct {
	Peer        string
	Task        string
	Seed        bool
	Held        int       // pieces held
	Uploads     int       // assignments completed with this peer as parent
	Inflight    int       // in-flight assignments with this peer as parent (its load)
	Capacity    int       // in-flight assignments it may carry as a parent
	Downloading int       // in-flight assignments with this peer as child
	LastSeen    time.Time // last event from the peer
	Failures    int       // failures reported against it as a parent
	Region      string    // locality labels (SetLocality); empty = unknown
	Zone        string
}

func (t *task) view() TaskView {
	return TaskView{
		Task:     t.name,
		Pieces:   t.pieces,
		Peers:    len(t.peers),
		Seeds:    len(t.seeds),
		Complete: t.complete,
		Inflight: t.inflight,
	}
}

func (s *Scheduler) peerView(t *task, p *peer) PeerView {
	return PeerView{
		Peer:        p.id,
		Task:        t.name,
		Seed:        p.seed,
		Held:        p.held,
		Uploads:     p.uploads,
		Inflight:    p.load,
		Capacity:    s.capacity(p),
		Downloading: len(p.inflight),
		LastSeen:    p.lastSeen,
		Failures:    p.failures,
		Region:      p.loc.Region,
		Zone:        p.loc.Zone,
	}
}

// Tasks lists every task, sorted by name.
func (s *Scheduler) Tasks() []TaskView {
	out := make([]TaskView, 0, len(s.tasks))
	for _, t := range s.tasks {
		out = append(out, t.view())
	}
	slices.SortFunc(out, func(a, b TaskView) int { return cmp.Compare(a.Task, b.Task) })
	return out
}

// Task describes one task and its peers (sorted by peer id).
func (s *Scheduler) Task(name string) (TaskView, []PeerView, bool) {
	t, ok := s.tasks[name]
	if !ok {
		return TaskView{}, nil, false
	}
	peers := make([]PeerView, 0, len(t.peers))
	for _, p := range t.peers {
		peers = append(peers, s.peerView(t, p))
	}
	slices.SortFunc(peers, func(a, b PeerView) int { return cmp.Compare(a.Peer, b.Peer) })
	return t.view(), peers, true
}

// Peers lists every (peer, task) registration, sorted by peer then task.
func (s *Scheduler) Peers() []PeerView {
	var out []PeerView
	for _, t := range s.tasks {
		for _, p := range t.peers {
			out = append(out, s.peerView(t, p))
		}
	}
	slices.SortFunc(out, func(a, b PeerView) int {
		return cmp.Or(cmp.Compare(a.Peer, b.Peer), cmp.Compare(a.Task, b.Task))
	})
	return out
}

// BlockedParents is how many parents are blocked for everyone at now
// because two children reported bad pieces from them (see FailBadPiece).
func (s *Scheduler) BlockedParents(now time.Time) int {
	n := 0
	for _, until := range s.bad {
		if now.Before(until) {
			n++
		}
	}
	return n
}
