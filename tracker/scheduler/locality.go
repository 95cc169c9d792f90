package scheduler

import "slices"

// Locality is where a peer runs. Empty fields are unknown. A zone is only
// meaningful inside its region: a zone without a region is ignored.
type Locality struct {
	Region, Zone string
}

// maxSegments bounds the distinct (region, zone) pairs placed per task, the
// unknown one included. A peer whose labels would need more is treated as
// if it had none (its labels still show in PeerView). It keeps the O(segments)
// cost of holder updates small whatever labels peers send.
const maxSegments = 64

// region is one known region of a task.
type region struct {
	name   string
	lo, hi int // its segments are task.segs[lo:hi]
	// cross[piece] counts in-flight assignments of piece to a child of this
	// region from a parent of another (known) region.
	cross []int32
}

// segment is one (region, zone) pair of a task. The holders of every piece
// are partitioned by segment, in the order of task.segs: segment 0 holds the
// peers of unknown region, then each region's segments follow contiguously.
// A segment exists while some peer is placed in it (segment 0 always).
type segment struct {
	region *region // nil for segment 0
	zone   string
	pos    int // index in task.segs
	peers  int // peers placed in it
}

// span is a range [lo, hi) of a piece's holders slice.
type span struct{ lo, hi int32 }

// SetLocality sets the labels of a peer already joined to task; it does
// nothing otherwise. Call it after Join (each time: it is cheap when nothing
// changed). Moving a peer to another region or zone is O(pieces held *
// segments).
func (s *Scheduler) SetLocality(taskName, peerID string, l Locality) {
	t, ok := s.tasks[taskName]
	if !ok {
		return
	}
	p, ok := t.peers[peerID]
	if !ok || p.loc == l && (p.seg.pos != 0 || l.Region == "") {
		return // unchanged; a peer left unplaced for lack of segments retries
	}
	p.loc = l
	t.place(p, t.segmentFor(l))
}

func (t *task) initSegments() {
	t.segs = []*segment{{}}
	t.segStart = [][]int32{nil}
	t.segByLoc = make(map[Locality]*segment)
	t.regions = make(map[string]*region)
}

// segmentFor returns the segment of l, creating it if needed and allowed.
func (t *task) segmentFor(l Locality) *segment {
	if l.Region == "" {
		return t.segs[0]
	}
	if sg := t.segByLoc[l]; sg != nil {
		return sg
	}
	if len(t.segs) >= maxSegments {
		return t.segs[0]
	}
	r := t.regions[l.Region]
	pos := len(t.segs)
	if r == nil {
		r = &region{name: l.Region, cross: make([]int32, t.pieces)}
		t.regions[l.Region] = r
	} else {
		pos = r.hi
	}
	sg := &segment{region: r, zone: l.Zone}
	// The new segment is empty: it starts where the one now at pos starts
	// (or at the end).
	col := make([]int32, t.pieces)
	for pc := range col {
		if pos == len(t.segs) {
			col[pc] = int32(len(t.holders[pc]))
		} else {
			col[pc] = t.segStart[pos][pc]
		}
	}
	t.segStart = slices.Insert(t.segStart, pos, col)
	t.segs = slices.Insert(t.segs, pos, sg)
	t.segByLoc[l] = sg
	t.renumber()
	return sg
}

// dropSegment removes sg, which no peer is placed in (so it is empty for
// every piece), and its region if that was its last segment.
func (t *task) dropSegment(sg *segment) {
	r, pos := sg.region, sg.pos
	if r.lo == pos && r.hi == pos+1 {
		delete(t.regions, r.name)
	}
	delete(t.segByLoc, Locality{Region: r.name, Zone: sg.zone})
	t.segStart = slices.Delete(t.segStart, pos, pos+1)
	t.segs = slices.Delete(t.segs, pos, pos+1)
	t.renumber()
}

func (t *task) renumber() {
	var prev *region
	for i, sg := range t.segs {
		sg.pos = i
		if r := sg.region; r != nil {
			if r != prev {
				r.lo = i
			}
			r.hi = i + 1
		}
		prev = sg.region
	}
}

// place moves p, with its holdings, to segment sg.
func (t *task) place(p *peer, sg *segment) {
	old := p.seg
	if sg == old {
		return
	}
	if p.held > 0 {
		for i, st := range p.st {
			if st >= 0 {
				t.detach(p, int32(i), old.pos)
				t.attach(p, int32(i), sg.pos)
			}
		}
	}
	if sg.region != old.region {
		// The cross-region count follows the child's region: assignments
		// counted for the old one are no longer counted anywhere.
		for i := range p.inflight {
			if a := &p.inflight[i]; a.cross {
				old.region.cross[a.piece]--
				a.cross = false
			}
		}
	}
	p.seg = sg
	sg.peers++
	t.unplace(old)
}

// unplace records that a peer left segment sg.
func (t *task) unplace(sg *segment) {
	sg.peers--
	if sg.peers == 0 && sg.pos != 0 {
		t.dropSegment(sg)
	}
}

// segLo and segHi bound segment pos in the holders of piece.
func (t *task) segLo(piece int32, pos int) int32 {
	if pos == 0 {
		return 0
	}
	return t.segStart[pos][piece]
}

func (t *task) segHi(piece int32, pos int) int32 {
	if pos+1 == len(t.segs) {
		return int32(len(t.holders[piece]))
	}
	return t.segStart[pos+1][piece]
}

// attach inserts p into the holders of piece, in segment pos: it goes at the
// end, then the first holder of each later segment moves to that segment's
// end, opening a slot at the end of segment pos. O(segments after pos).
func (t *task) attach(p *peer, piece int32, pos int) {
	hs := append(t.holders[piece], p)
	cur := int32(len(hs) - 1)
	for q := len(t.segs) - 1; q > pos; q-- {
		b := t.segStart[q][piece]
		if b != cur {
			m := hs[b]
			hs[cur] = m
			m.st[piece] = cur
		}
		t.segStart[q][piece] = b + 1
		cur = b
	}
	hs[cur] = p
	p.st[piece] = cur
	t.holders[piece] = hs
}

// detach removes p from the holders of piece, where it sits in segment pos:
// the last holder of each segment from pos on moves into the hole, which so
// travels to the end of the slice. O(segments after pos).
func (t *task) detach(p *peer, piece int32, pos int) {
	hs := t.holders[piece]
	hole := p.st[piece]
	for q := pos; ; q++ {
		last := t.segHi(piece, q) - 1
		if hole != last {
			m := hs[last]
			hs[hole] = m
			m.st[piece] = hole
		}
		hole = last
		if q+1 == len(t.segs) {
			break
		}
		t.segStart[q+1][piece]--
	}
	hs[hole] = nil
	t.holders[piece] = hs[:hole]
}

// isCross reports whether par serving c crosses regions: both regions are
// known and differ.
func isCross(c, par *peer) bool {
	cr := c.seg.region
	if cr == nil {
		return false
	}
	pr := par.seg.region
	return pr != nil && pr != cr
}
