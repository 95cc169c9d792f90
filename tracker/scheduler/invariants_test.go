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
		if err := t.checkSegments(); err != nil {
			return fmt.Errorf("task %q: %w", name, err)
		}
		loads := map[*peer]int{}
		seedCopies := make([]int32, t.pieces)
		cross := map[*region][]int32{}
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
				if a.cross {
					r := p.seg.region
					if r == nil {
						return fmt.Errorf("task %q peer %q: cross-region assignment to a child of unknown region", name, id)
					}
					if cross[r] == nil {
						cross[r] = make([]int32, t.pieces)
					}
					cross[r][a.piece]++
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
		for _, r := range t.regions {
			for pc := range t.pieces {
				n := int32(0)
				if cross[r] != nil {
					n = cross[r][pc]
				}
				if r.cross[pc] != n {
					return fmt.Errorf("task %q region %q piece %d: cross %d, counted %d", name, r.name, pc, r.cross[pc], n)
				}
				if n > int32(s.cfg.CrossRegionCopies) {
					return fmt.Errorf("task %q region %q piece %d: %d cross-region copies in flight, limit %d", name, r.name, pc, n, s.cfg.CrossRegionCopies)
				}
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

// checkSegments verifies the locality partition: segments and regions, the
// placement of every peer and the segment boundaries inside every piece's
// holders.
func (t *task) checkSegments() error {
	if len(t.segs) == 0 || t.segs[0].region != nil || t.segs[0].zone != "" {
		return fmt.Errorf("segment 0 is not the unknown one")
	}
	if len(t.segs) > maxSegments {
		return fmt.Errorf("%d segments, limit %d", len(t.segs), maxSegments)
	}
	if len(t.segStart) != len(t.segs) || t.segStart[0] != nil {
		return fmt.Errorf("segStart has %d columns for %d segments", len(t.segStart), len(t.segs))
	}
	if len(t.segByLoc) != len(t.segs)-1 {
		return fmt.Errorf("segByLoc has %d entries for %d segments", len(t.segByLoc), len(t.segs))
	}
	regions := map[*region]bool{}
	for i, sg := range t.segs {
		if sg.pos != i {
			return fmt.Errorf("segment %d has pos %d", i, sg.pos)
		}
		if i == 0 {
			continue
		}
		r := sg.region
		if r == nil || t.regions[r.name] != r || i < r.lo || i >= r.hi {
			return fmt.Errorf("segment %d (%v): bad region", i, sg.zone)
		}
		if t.segByLoc[Locality{r.name, sg.zone}] != sg {
			return fmt.Errorf("segment %d (%q/%q) not indexed", i, r.name, sg.zone)
		}
		if sg.peers <= 0 {
			return fmt.Errorf("segment %d (%q/%q) has %d peers", i, r.name, sg.zone, sg.peers)
		}
		if len(t.segStart[i]) != t.pieces {
			return fmt.Errorf("segStart[%d] has %d entries", i, len(t.segStart[i]))
		}
		if regions[r] && t.segs[i-1].region != r {
			return fmt.Errorf("region %q not contiguous", r.name)
		}
		regions[r] = true
	}
	if len(regions) != len(t.regions) {
		return fmt.Errorf("%d regions indexed, %d placed", len(t.regions), len(regions))
	}
	for _, r := range t.regions {
		if len(r.cross) != t.pieces {
			return fmt.Errorf("region %q: cross has %d entries", r.name, len(r.cross))
		}
	}
	placed := make(map[*segment]int)
	for id, p := range t.peers {
		sg := p.seg
		if sg == nil || sg.pos >= len(t.segs) || t.segs[sg.pos] != sg {
			return fmt.Errorf("peer %q: not in a live segment", id)
		}
		placed[sg]++
		// A peer with labels may sit in segment 0 if the task had
		// maxSegments segments when they were set.
		switch {
		case p.loc.Region == "" && sg.pos != 0:
			return fmt.Errorf("peer %q: no region but in segment %d", id, sg.pos)
		case p.loc.Region != "" && sg.pos != 0 && (sg.region.name != p.loc.Region || sg.zone != p.loc.Zone):
			return fmt.Errorf("peer %q: labels %+v but in segment %q/%q", id, p.loc, sg.region.name, sg.zone)
		}
	}
	for _, sg := range t.segs {
		if placed[sg] != sg.peers {
			return fmt.Errorf("segment %d: %d peers, %d placed", sg.pos, sg.peers, placed[sg])
		}
	}
	for pc, hs := range t.holders {
		for pos := range t.segs {
			lo, hi := t.segLo(int32(pc), pos), t.segHi(int32(pc), pos)
			if lo > hi || int(hi) > len(hs) {
				return fmt.Errorf("piece %d segment %d: bounds [%d,%d) of %d", pc, pos, lo, hi, len(hs))
			}
			for _, h := range hs[lo:hi] {
				if h.seg.pos != pos {
					return fmt.Errorf("piece %d: holder %q of segment %d in segment %d's range", pc, h.id, h.seg.pos, pos)
				}
			}
		}
	}
	return nil
}
