package scheduler

import (
	"fmt"
	"time"
)

// check verifies every internal invariant of s. It is O(state) and only for
// tests.
func (s *Scheduler) check() error {
	maxCap := max(s.cfg.MaxParentUploads, s.cfg.MaxSeedUploads)
	for name, t := range s.tasks {
		if t.name != name {
			return fmt.Errorf("task %q named %q", name, t.name)
		}
		if len(t.holders) != t.pieces || len(t.order) != t.pieces || len(t.rank) != t.pieces {
			return fmt.Errorf("task %q: sizes", name)
		}
		// order/rank are inverse permutations, sorted by holder count.
		maxCount := 0
		for i, pc := range t.order {
			if t.rank[pc] != int32(i) {
				return fmt.Errorf("task %q: rank[%d]=%d, want %d", name, pc, t.rank[pc], i)
			}
			c := len(t.holders[pc])
			if i > 0 && len(t.holders[t.order[i-1]]) > c {
				return fmt.Errorf("task %q: order not sorted at %d", name, i)
			}
			maxCount = max(maxCount, c)
		}
		if len(t.start) < maxCount+2 {
			return fmt.Errorf("task %q: start too short (%d) for max count %d", name, len(t.start), maxCount)
		}
		for c := range t.start {
			below := 0
			for _, hs := range t.holders {
				if len(hs) < c {
					below++
				}
			}
			if int(t.start[c]) != below {
				return fmt.Errorf("task %q: start[%d]=%d, want %d", name, c, t.start[c], below)
			}
		}
		// holders point back at peers.
		for pc, hs := range t.holders {
			for i, h := range hs {
				if h.gone || t.peers[h.id] != h {
					return fmt.Errorf("task %q piece %d: holder %q not a live member", name, pc, h.id)
				}
				if h.st[pc] != int32(i) {
					return fmt.Errorf("task %q piece %d: holder %q st=%d, want %d", name, pc, h.id, h.st[pc], i)
				}
			}
		}
		loads := map[*peer]int{}
		seedCopies := make([]int32, t.pieces)
		inflight, complete := 0, 0
		for id, p := range t.peers {
			if p.id != id || p.gone {
				return fmt.Errorf("task %q: peer %q bad identity", name, id)
			}
			held, infl := 0, 0
			for pc, st := range p.st {
				switch {
				case st >= 0:
					held++
					if int(st) >= len(t.holders[pc]) || t.holders[pc][st] != p {
						return fmt.Errorf("task %q peer %q piece %d: not at holder index %d", name, id, pc, st)
					}
				case st < stMissing:
					infl++
					i := inflightIndex(st)
					if i >= len(p.inflight) || p.inflight[i].piece != int32(pc) {
						return fmt.Errorf("task %q peer %q piece %d: bad inflight index %d", name, id, pc, i)
					}
				}
			}
			if held != p.held {
				return fmt.Errorf("task %q peer %q: held %d, counted %d", name, id, p.held, held)
			}
			if infl != len(p.inflight) {
				return fmt.Errorf("task %q peer %q: %d inflight, %d marked", name, id, len(p.inflight), infl)
			}
			if held == t.pieces {
				complete++
			}
			for _, a := range p.inflight {
				if a.parent == p {
					return fmt.Errorf("task %q peer %q: self assignment", name, id)
				}
				loads[a.parent]++
				if a.fromSeed {
					seedCopies[a.piece]++
				}
			}
			inflight += len(p.inflight)
			if p.seed != (p.seedIdx >= 0) {
				return fmt.Errorf("task %q peer %q: seed=%v seedIdx=%d", name, id, p.seed, p.seedIdx)
			}
			if p.seedIdx >= 0 && (p.seedIdx >= len(t.seeds) || t.seeds[p.seedIdx] != p) {
				return fmt.Errorf("task %q peer %q: not at seeds[%d]", name, id, p.seedIdx)
			}
		}
		for _, p := range t.peers {
			if p.load != loads[p] {
				return fmt.Errorf("task %q peer %q: load %d, assignments %d", name, p.id, p.load, loads[p])
			}
			if p.load > maxCap {
				return fmt.Errorf("task %q peer %q: load %d over %d", name, p.id, p.load, maxCap)
			}
		}
		for pc, n := range seedCopies {
			if t.seedCopies[pc] != n {
				return fmt.Errorf("task %q piece %d: seedCopies %d, counted %d", name, pc, t.seedCopies[pc], n)
			}
			if n > int32(s.cfg.SeedCopies) {
				return fmt.Errorf("task %q piece %d: %d copies in flight from seeds, limit %d", name, pc, n, s.cfg.SeedCopies)
			}
		}
		for p, n := range loads {
			if p.load < n {
				return fmt.Errorf("task %q: parent %q load %d below its %d assignments", name, p.id, p.load, n)
			}
		}
		if inflight != t.inflight {
			return fmt.Errorf("task %q: inflight %d, counted %d", name, t.inflight, inflight)
		}
		if complete != t.complete {
			return fmt.Errorf("task %q: complete %d, counted %d", name, t.complete, complete)
		}
		for i, sd := range t.seeds {
			if sd.seedIdx != i || t.peers[sd.id] != sd {
				return fmt.Errorf("task %q: seeds[%d] inconsistent", name, i)
			}
		}
	}
	return nil
}

// holds reports whether peer holds piece (test helper).
func (s *Scheduler) holds(taskName, peerID string, piece int) bool {
	t := s.tasks[taskName]
	if t == nil {
		return false
	}
	p := t.peers[peerID]
	return p != nil && p.st[piece] >= 0
}

// load returns peer's in-flight uploads (test helper).
func (s *Scheduler) load(taskName, peerID string) int {
	if t := s.tasks[taskName]; t != nil {
		if p := t.peers[peerID]; p != nil {
			return p.load
		}
	}
	return -1
}

// release frees every in-flight download of peer without completing it
// (test and benchmark helper).
func (s *Scheduler) release(taskName, peerID string) {
	t := s.tasks[taskName]
	p := t.peers[peerID]
	for len(p.inflight) > 0 {
		t.freeAssignment(p, len(p.inflight)-1, false)
	}
}

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
