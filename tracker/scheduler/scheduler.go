package scheduler

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Config tunes a Scheduler. Zero or negative fields take their defaults (see
// DefaultConfig); Seed is used as given.
type Config struct {
	MaxParentUploads  int           // in-flight assignments a peer may carry as a parent at once (default 8)
	MaxSeedUploads    int           // same for seeds (default 32)
	CandidateSample   int           // holders examined per piece ("power of k choices") (default 16)
	FailureBlock      time.Duration // how long a child avoids a parent that failed it (default 30s)
	BadPieceBlock     time.Duration // a parent that sent a bad piece is avoided by everyone this long (default 5m)
	PeerTTL           time.Duration // a peer is forgotten after this long without an event (default 2m)
	AssignmentTimeout time.Duration // an in-flight assignment not reported this long is freed (default 60s)
	// SeedCopies bounds the copies of one piece in flight from seeds at once
	// (default 2). Other children wait for a peer that got it: peers that
	// start together would otherwise all take each new piece from the seed.
	SeedCopies int
	// CrossRegionCopies bounds the copies of one piece in flight into one
	// region from parents in other regions (default 1). A child whose
	// region has no usable holder of the piece gets it from another region
	// only below this bound; otherwise it waits for the regional copy.
	CrossRegionCopies int
	Seed              int64 // random seed, for deterministic tests
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		MaxParentUploads:  8,
		MaxSeedUploads:    32,
		CandidateSample:   16,
		FailureBlock:      30 * time.Second,
		BadPieceBlock:     5 * time.Minute,
		PeerTTL:           2 * time.Minute,
		AssignmentTimeout: 60 * time.Second,
		SeedCopies:        2,
		CrossRegionCopies: 1,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.MaxParentUploads <= 0 {
		c.MaxParentUploads = d.MaxParentUploads
	}
	if c.MaxSeedUploads <= 0 {
		c.MaxSeedUploads = d.MaxSeedUploads
	}
	if c.SeedCopies <= 0 {
		c.SeedCopies = d.SeedCopies
	}
	if c.CrossRegionCopies <= 0 {
		c.CrossRegionCopies = d.CrossRegionCopies
	}
	if c.CandidateSample <= 0 {
		c.CandidateSample = d.CandidateSample
	}
	if c.FailureBlock <= 0 {
		c.FailureBlock = d.FailureBlock
	}
	if c.BadPieceBlock <= 0 {
		c.BadPieceBlock = d.BadPieceBlock
	}
	if c.PeerTTL <= 0 {
		c.PeerTTL = d.PeerTTL
	}
	if c.AssignmentTimeout <= 0 {
		c.AssignmentTimeout = d.AssignmentTimeout
	}
	return c
}

// FailReason says why a parent failed a child on a piece.
type FailReason int

const (
	// FailOther: any other error (timeout, reset, refused). The child avoids
	// the parent for FailureBlock.
	FailOther FailReason = iota
	// FailUnreachable: the parent could not be dialed. The child avoids it;
	// two distinct children within FailureBlock make everyone avoid it.
	FailUnreachable
	// FailBadPiece: the bytes did not match the piece CID. The reporting
	// child avoids the parent for BadPieceBlock and the piece leaves the
	// parent's holdings. Once two distinct children report bad pieces from
	// the same parent within BadPieceBlock, everyone avoids it for
	// BadPieceBlock, in every task. Reports never block a seed for others or
	// drop its holdings: its pieces are hashed by the tracker's own process,
	// and one lying member must not be able to cut a task off from its seed.
	FailBadPiece
	// FailNotFound: the parent did not have the piece. The piece leaves its
	// holdings.
	FailNotFound
)

func (r FailReason) String() string {
	switch r {
	case FailOther:
		return "other"
	case FailUnreachable:
		return "unreachable"
	case FailBadPiece:
		return "bad-piece"
	case FailNotFound:
		return "not-found"
	}
	return fmt.Sprintf("FailReason(%d)", int(r))
}

// Assignment tells a child to fetch Piece from Parent.
type Assignment struct {
	Piece  int
	Parent string
}

// Errors returned by Join.
var (
	ErrUnknownTask = errors.New("scheduler: unknown task")
	ErrEmptyPeer   = errors.New("scheduler: empty peer id")
	ErrHaveLength  = errors.New("scheduler: have bitmap length does not match piece count")
)

// Per-peer piece state, one int32 per piece:
//
//	>= 0  held; the value is the peer's index in task.holders[piece]
//	 -1   missing
//	<= -2 in flight to this peer; the assignment is peer.inflight[-2-state]
const stMissing = -1

func inflightState(i int) int32  { return int32(-2 - i) }
func inflightIndex(st int32) int { return int(-2 - st) }

type assignment struct {
	piece    int32
	fromSeed bool // the parent was a seed when assigned (counted in seedCopies)
	cross    bool // counted in the child's region.cross
	parent   *peer
	deadline time.Time
}

type peer struct {
	// Hot fields first: pickParent reads them for every sampled holder, so
	// they share the first cache line.
	load     int       // in-flight assignments as a parent
	seed     bool      // capacity MaxSeedUploads, used only as a fallback
	gone     bool      // left or expired; stale pointers from assignments may remain
	lastSeen time.Time // last event from the peer
	id       string
	seg      *segment // where its holdings sit in task.holders (locality)

	parentBlock time.Time // nobody uses it as a parent before this
	st          []int32
	held        int
	inflight    []assignment // as a child
	uploads     int          // assignments completed as a parent
	failures    int          // failures reported against it as a parent
	seedIdx     int          // index in task.seeds, -1 if not a seed
	loc         Locality     // labels as set by SetLocality

	blocks  map[string]time.Time // parents this child avoids, until
	unreach map[string]time.Time // children that reported it unreachable, when
}

type task struct {
	name     string
	pieces   int
	peers    map[string]*peer
	seeds    []*peer
	holders  [][]*peer
	order    []int32 // pieces sorted by holder count, ascending
	rank     []int32 // piece -> index in order
	start    []int32 // start[c] = number of pieces with fewer than c holders
	complete int
	inflight int
	// seedCopies[piece] is the number of in-flight assignments of piece
	// whose parent is a seed.
	seedCopies []int32
	// Locality: the holders of each piece are partitioned by segment
	// ((region, zone) pair, see segment); segStart[pos][piece] is where
	// segment pos begins in holders[piece] (segStart[0] is nil: 0).
	segs     []*segment
	segStart [][]int32
	segByLoc map[Locality]*segment
	regions  map[string]*region
}

// Scheduler is the scheduling state machine. It is not safe for concurrent
// use.
type Scheduler struct {
	cfg   Config
	rng   *rand.Rand
	tasks map[string]*task
	bad   map[string]time.Time // parents that served bad bytes, blocked until
	// badReports: per parent, the children that reported a bad piece from it
	// and when; two distinct reporters block the parent for everyone.
	badReports map[string]map[string]time.Time
}

// New returns an empty Scheduler.
func New(cfg Config) *Scheduler {
	cfg = cfg.withDefaults()
	return &Scheduler{
		cfg:        cfg,
		rng:        rand.New(rand.NewPCG(uint64(cfg.Seed), 0x9e3779b97f4a7c15)),
		tasks:      make(map[string]*task),
		bad:        make(map[string]time.Time),
		badReports: make(map[string]map[string]time.Time),
	}
}

// Config returns the effective configuration (defaults filled in).
func (s *Scheduler) Config() Config { return s.cfg }

func (s *Scheduler) capacity(p *peer) int {
	if p.seed {
		return s.cfg.MaxSeedUploads
	}
	return s.cfg.MaxParentUploads
}

// AddTask registers a task of the given number of pieces. It is idempotent:
// adding a known task again, even with another piece count, changes nothing
// (RemoveTask first to redefine it). A negative count is ignored.
func (s *Scheduler) AddTask(name string, pieces int) {
	if pieces < 0 {
		return
	}
	if _, ok := s.tasks[name]; ok {
		return
	}
	t := &task{
		name:       name,
		pieces:     pieces,
		peers:      make(map[string]*peer),
		holders:    make([][]*peer, pieces),
		seedCopies: make([]int32, pieces),
		order:      make([]int32, pieces),
		rank:       make([]int32, pieces),
		start:      []int32{0, int32(pieces)},
	}
	t.initSegments()
	// A random initial order, so that ties among never-held pieces are
	// already mixed.
	for i, p := range s.rng.Perm(pieces) {
		t.order[i] = int32(p)
		t.rank[p] = int32(i)
	}
	s.tasks[name] = t
}

// RemoveTask forgets a task and all its peers and assignments.
func (s *Scheduler) RemoveTask(name string) {
	t, ok := s.tasks[name]
	if !ok {
		return
	}
	for _, p := range t.peers {
		p.gone = true
	}
	delete(s.tasks, name)
}

// Joined reports whether peer is currently registered in task. Callers use it
// to tell a peer whose state was forgotten to register again.
func (s *Scheduler) Joined(taskName, peerID string) bool {
	t, ok := s.tasks[taskName]
	if !ok {
		return false
	}
	_, ok = t.peers[peerID]
	return ok
}

// Join registers peer in task, or refreshes it (heartbeat). A non-nil,
// non-empty have is the peer's full bitmap and replaces what the scheduler
// believed; it must have one entry per piece. A nil have changes nothing.
// seed marks the peer as a seed (higher capacity, used as a last resort).
func (s *Scheduler) Join(taskName, peerID string, seed bool, have []bool, now time.Time) error {
	t, ok := s.tasks[taskName]
	if !ok {
		return ErrUnknownTask
	}
	if peerID == "" {
		return ErrEmptyPeer
	}
	if len(have) != 0 && len(have) != t.pieces {
		return fmt.Errorf("%w: got %d, task has %d", ErrHaveLength, len(have), t.pieces)
	}
	p, ok := t.peers[peerID]
	if !ok {
		p = &peer{id: peerID, st: make([]int32, t.pieces), seedIdx: -1, seg: t.segs[0]}
		p.seg.peers++
		for i := range p.st {
			p.st[i] = stMissing
		}
		t.peers[peerID] = p
		if t.pieces == 0 {
			t.complete++
		}
	}
	p.lastSeen = now
	if seed && p.seedIdx < 0 {
		p.seedIdx = len(t.seeds)
		t.seeds = append(t.seeds, p)
	} else if !seed && p.seedIdx >= 0 {
		t.removeSeed(p)
	}
	p.seed = seed
	if len(have) == 0 {
		return nil
	}
	for i, want := range have {
		st := p.st[i]
		switch {
		case st >= 0 && !want:
			t.removeHolder(p, i)
		case st < 0 && want:
			if st != stMissing {
				t.freeAssignment(p, inflightIndex(st), false)
			}
			t.addHolder(p, i)
		}
	}
	return nil
}

// Done reports that peer now holds the given pieces. Each frees the peer's
// in-flight assignment for that piece, if any, and counts an upload for the
// assigned parent. Unknown tasks or peers and out-of-range pieces are ignored.
func (s *Scheduler) Done(taskName, peerID string, pieces []int, now time.Time) {
	t, ok := s.tasks[taskName]
	if !ok {
		return
	}
	p, ok := t.peers[peerID]
	if !ok {
		return
	}
	p.lastSeen = now
	for _, i := range pieces {
		if i < 0 || i >= t.pieces {
			continue
		}
		st := p.st[i]
		if st >= 0 {
			continue
		}
		if st != stMissing {
			t.freeAssignment(p, inflightIndex(st), true)
		}
		t.addHolder(p, i)
	}
}

// Failed reports that parent failed child on piece. See FailReason for the
// effect of each reason. The child's in-flight assignment for piece is freed.
// Reports from a child that is not registered in the task are ignored.
func (s *Scheduler) Failed(taskName, child, parent string, piece int, why FailReason, now time.Time) {
	t, ok := s.tasks[taskName]
	if !ok {
		return
	}
	c, ok := t.peers[child]
	if !ok {
		return
	}
	c.lastSeen = now
	inRange := piece >= 0 && piece < t.pieces
	if inRange {
		if st := c.st[piece]; st < stMissing {
			t.freeAssignment(c, inflightIndex(st), false)
		}
	}
	if child == parent {
		return
	}
	p := t.peers[parent] // may be nil: already gone
	if p != nil {
		p.failures++
	}
	switch why {
	case FailBadPiece:
		c.block(parent, now.Add(s.cfg.BadPieceBlock))
		if p != nil && p.seed {
			return
		}
		if p != nil && inRange && p.st[piece] >= 0 {
			t.removeHolder(p, piece)
		}
		rs := s.badReports[parent]
		if rs == nil {
			rs = make(map[string]time.Time)
			s.badReports[parent] = rs
		}
		rs[child] = now
		for ch, at := range rs {
			if now.Sub(at) >= s.cfg.BadPieceBlock {
				delete(rs, ch)
			}
		}
		if len(rs) >= 2 {
			s.bad[parent] = later(s.bad[parent], now.Add(s.cfg.BadPieceBlock))
			delete(s.badReports, parent)
		}
	case FailNotFound:
		if p != nil && inRange && p.st[piece] >= 0 {
			t.removeHolder(p, piece)
		}
	case FailUnreachable:
		c.block(parent, now.Add(s.cfg.FailureBlock))
		if p == nil {
			return
		}
		if p.unreach == nil {
			p.unreach = make(map[string]time.Time)
		}
		p.unreach[child] = now
		for ch, at := range p.unreach {
			if now.Sub(at) >= s.cfg.FailureBlock {
				delete(p.unreach, ch)
			}
		}
		if len(p.unreach) >= 2 {
			p.parentBlock = later(p.parentBlock, now.Add(s.cfg.FailureBlock))
			clear(p.unreach)
		}
	default:
		c.block(parent, now.Add(s.cfg.FailureBlock))
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func (c *peer) block(parent string, until time.Time) {
	if c.blocks == nil {
		c.blocks = make(map[string]time.Time)
	}
	c.blocks[parent] = later(c.blocks[parent], until)
}

// Leave forgets peer in task: its holdings, and its own in-flight downloads.
// Assignments where it is the parent stay until their children report or
// time out.
func (s *Scheduler) Leave(taskName, peerID string) {
	t, ok := s.tasks[taskName]
	if !ok {
		return
	}
	if p, ok := t.peers[peerID]; ok {
		t.removePeer(p)
	}
}

// Tick expires peers that sent no event for PeerTTL, frees in-flight
// assignments older than AssignmentTimeout and drops expired blocks. Call it
// every few seconds; it is O(peers + assignments).
func (s *Scheduler) Tick(now time.Time) {
	for id, until := range s.bad {
		if !now.Before(until) {
			delete(s.bad, id)
		}
	}
	for id, rs := range s.badReports {
		for ch, at := range rs {
			if now.Sub(at) >= s.cfg.BadPieceBlock {
				delete(rs, ch)
			}
		}
		if len(rs) == 0 {
			delete(s.badReports, id)
		}
	}
	for _, t := range s.tasks {
		for _, p := range t.peers {
			if now.Sub(p.lastSeen) > s.cfg.PeerTTL {
				t.removePeer(p)
				continue
			}
			for i := 0; i < len(p.inflight); {
				if !now.Before(p.inflight[i].deadline) {
					t.freeAssignment(p, i, false) // swaps the last one into i
					continue
				}
				i++
			}
			for id, until := range p.blocks {
				if !now.Before(until) {
					delete(p.blocks, id)
				}
			}
			for id, at := range p.unreach {
				if now.Sub(at) >= s.cfg.FailureBlock {
					delete(p.unreach, id)
				}
			}
		}
	}
}

// Schedule returns up to max assignments for peer in task, following the
// package's decision rules. It returns nil if the task or peer is unknown.
func (s *Scheduler) Schedule(taskName, peerID string, max int, now time.Time) []Assignment {
	t, ok := s.tasks[taskName]
	if !ok {
		return nil
	}
	c, ok := t.peers[peerID]
	if !ok {
		return nil
	}
	c.lastSeen = now
	if max <= 0 || c.held+len(c.inflight) >= t.pieces || len(t.start) < 2 {
		return nil
	}
	tries := 8 * max
	if tries < 64 {
		tries = 64
	}
	var out []Assignment
	// Pieces whose holders in c's region are all busy or blocked (see
	// pickParent), rarest first: taken from another region only if c ends
	// up with nothing to do.
	var laterBuf [16]int32
	later := laterBuf[:0]
	n := int32(len(t.order))
	// Walk runs of equal holder count, skipping pieces nobody holds.
scan:
	for i := t.start[1]; i < n; {
		cnt := len(t.holders[t.order[i]])
		end := t.start[cnt+1]
		size := end - i
		off := int32(0)
		if size > 1 {
			off = s.rng.Int32N(size)
		}
		for j := int32(0); j < size; j++ {
			k := i + off + j
			if k >= end {
				k -= size
			}
			piece := t.order[k]
			if c.st[piece] != stMissing {
				continue
			}
			par, deferred := s.pickParent(t, c, piece, now)
			if par == nil {
				if deferred && len(later) < max {
					later = append(later, piece)
				}
				tries--
				if tries == 0 {
					break scan
				}
				continue
			}
			out = s.add(t, c, par, piece, out, max, now)
			if len(out) == max {
				return out
			}
		}
		i = end
	}
	// Only an idle child takes from another region a piece its region has:
	// the regional holders, busy now, will have slots soon.
	if len(c.inflight) > 0 {
		return out
	}
	for _, piece := range later {
		if par := s.pickRemote(t, c, piece, now); par != nil {
			out = s.add(t, c, par, piece, out, max, now)
			if len(out) == max {
				break
			}
		}
	}
	return out
}

// add assigns piece from par to c and appends it to out.
func (s *Scheduler) add(t *task, c, par *peer, piece int32, out []Assignment, max int, now time.Time) []Assignment {
	t.assign(c, par, piece, now.Add(s.cfg.AssignmentTimeout))
	if out == nil {
		out = make([]Assignment, 0, max)
	}
	return append(out, Assignment{Piece: int(piece), Parent: par.id})
}

// usable reports whether p may serve child c now.
func (s *Scheduler) usable(c, p *peer, now time.Time) bool {
	if p == c || p.load >= s.capacity(p) || now.Sub(p.lastSeen) > s.cfg.PeerTTL || now.Before(p.parentBlock) {
		return false
	}
	if len(s.bad) > 0 {
		if until, ok := s.bad[p.id]; ok && now.Before(until) {
			return false
		}
	}
	if len(c.blocks) > 0 {
		if until, ok := c.blocks[p.id]; ok && now.Before(until) {
			return false
		}
	}
	return true
}

// lessLoaded reports whether a's load ratio is below b's.
func (s *Scheduler) lessLoaded(a, b *peer) bool {
	return a.load*s.capacity(b) < b.load*s.capacity(a)
}

// pickParent chooses the parent that serves piece to c, or nil. The tiers
// below are tried in order, each only if the previous found no usable parent;
// inside a tier at most CandidateSample holders are examined and the least
// loaded wins (see the package doc):
//
//  1. peers (not seeds) in c's zone;
//  2. peers in c's region, or of unknown region;
//  3. seeds in c's region or of unknown region, those in c's zone first
//     (at most SeedCopies in flight per piece from seeds);
//  4. peers of other regions, then 5. seeds of other regions (pickRemote),
//     only while fewer than CrossRegionCopies transfers of the piece into
//     c's region from other regions are in flight.
//
// If tiers 1-3 have holders, none usable, later is true instead of trying
// tiers 4-5: Schedule takes such a piece from another region only if it
// finds nothing for c inside its region and c has nothing in flight, since
// the regional holders will have slots soon. A child of unknown region has
// no preference: every holder is in tier 2 or 3.
func (s *Scheduler) pickParent(t *task, c *peer, piece int32, now time.Time) (par *peer, later bool) {
	hs := t.holders[piece]
	cs := c.seg
	r := cs.region
	if r == nil {
		if best := s.sampleRange(c, hs, now); best != nil {
			return best, false
		}
		best, _ := s.pickSeed(t, c, piece, now)
		return best, false
	}
	var buf [3]span
	end0 := t.segHi(piece, 0)
	rlo, rhi := t.segLo(piece, r.lo), t.segHi(piece, r.hi-1)
	// Unknown region, then c's region without c's zone if c has one.
	local := append(buf[:0], span{0, end0}, span{rlo, rhi})
	if cs.zone != "" {
		lo, hi := t.segLo(piece, cs.pos), t.segHi(piece, cs.pos)
		if best := s.sample(c, hs, append(buf[:0], span{lo, hi}), now); best != nil {
			return best, false
		}
		local = append(buf[:0], span{0, end0}, span{rlo, lo}, span{hi, rhi})
	}
	if best := s.sample(c, hs, local, now); best != nil {
		return best, false
	}
	best, remoteSeed := s.pickSeed(t, c, piece, now)
	if best != nil {
		return best, false
	}
	if r.cross[piece] >= int32(s.cfg.CrossRegionCopies) {
		return nil, false
	}
	if end0+rhi-rlo > 0 {
		return nil, true
	}
	if best := s.sample(c, hs, append(buf[:0], span{end0, rlo}, span{rhi, int32(len(hs))}), now); best != nil {
		return best, false
	}
	return remoteSeed, false
}

// pickRemote chooses a parent of another region than c's for piece (tiers 4
// and 5 of pickParent), or nil.
func (s *Scheduler) pickRemote(t *task, c *peer, piece int32, now time.Time) *peer {
	r := c.seg.region
	if r == nil || r.cross[piece] >= int32(s.cfg.CrossRegionCopies) {
		return nil
	}
	hs := t.holders[piece]
	end0 := t.segHi(piece, 0)
	rlo, rhi := t.segLo(piece, r.lo), t.segHi(piece, r.hi-1)
	var buf [2]span
	if best := s.sample(c, hs, append(buf[:0], span{end0, rlo}, span{rhi, int32(len(hs))}), now); best != nil {
		return best
	}
	_, remote := s.pickSeed(t, c, piece, now)
	return remote
}

// sample examines holders of a piece in the ranges sp of its holders hs: all
// of them, from a random start, if there are at most CandidateSample, else
// CandidateSample random draws. It returns the least loaded usable non-seed
// one, or nil. It reuses sp.
func (s *Scheduler) sample(c *peer, hs []*peer, sp []span, now time.Time) *peer {
	// Drop empty ranges; one range left is the common case.
	n := int32(0)
	j := 0
	for _, r := range sp {
		if r.hi > r.lo {
			sp[j] = r
			j++
			n += r.hi - r.lo
		}
	}
	switch j {
	case 0:
		return nil
	case 1:
		return s.sampleRange(c, hs[sp[0].lo:sp[0].hi], now)
	}
	sp = sp[:j]
	at := func(i int32) *peer {
		for _, r := range sp {
			if w := r.hi - r.lo; i >= w {
				i -= w
				continue
			}
			return hs[r.lo+i]
		}
		panic("scheduler: sample index out of range")
	}
	var best *peer
	k := int32(s.cfg.CandidateSample)
	draws := min(n, k)
	off := int32(0)
	if n <= k {
		off = s.rng.Int32N(n) // n >= 2 here
	}
	for i := range draws {
		var p *peer
		if n <= k {
			idx := off + i
			if idx >= n {
				idx -= n
			}
			p = at(idx)
		} else {
			p = at(s.rng.Int32N(n))
		}
		if p.seed || !s.usable(c, p, now) {
			continue
		}
		if best == nil || s.lessLoaded(p, best) {
			best = p
		}
	}
	return best
}

// sampleRange is sample for one range, hs.
func (s *Scheduler) sampleRange(c *peer, hs []*peer, now time.Time) *peer {
	n := len(hs)
	k := s.cfg.CandidateSample
	var best *peer
	if n <= k {
		off := 0
		if n > 1 {
			off = s.rng.IntN(n)
		}
		for j := range n {
			idx := off + j
			if idx >= n {
				idx -= n
			}
			p := hs[idx]
			if p.seed || !s.usable(c, p, now) {
				continue
			}
			if best == nil || s.lessLoaded(p, best) {
				best = p
			}
		}
		return best
	}
	for range k {
		p := hs[s.rng.IntN(n)]
		if p.seed || !s.usable(c, p, now) {
			continue
		}
		if best == nil || s.lessLoaded(p, best) {
			best = p
		}
	}
	return best
}

// pickSeed examines up to CandidateSample of the task's seeds that hold piece
// and returns the best usable one in c's region (or of unknown region; those
// in c's zone first, then the least loaded) and the least loaded usable one
// in another region. Both are nil once SeedCopies copies of the piece are in
// flight from seeds.
func (s *Scheduler) pickSeed(t *task, c *peer, piece int32, now time.Time) (local, remote *peer) {
	ns := len(t.seeds)
	if ns == 0 || t.seedCopies[piece] >= int32(s.cfg.SeedCopies) {
		return nil, nil
	}
	if k := s.cfg.CandidateSample; ns > k {
		ns = k
	}
	zoned := c.seg.region != nil && c.seg.zone != ""
	localZone := false
	off := s.rng.IntN(len(t.seeds))
	for j := range ns {
		sd := t.seeds[(off+j)%len(t.seeds)]
		if sd.st[piece] < 0 || !s.usable(c, sd, now) {
			continue
		}
		if isCross(c, sd) {
			if remote == nil || s.lessLoaded(sd, remote) {
				remote = sd
			}
			continue
		}
		inZone := zoned && sd.seg == c.seg
		if local == nil || (inZone && !localZone) || (inZone == localZone && s.lessLoaded(sd, local)) {
			local, localZone = sd, inZone
		}
	}
	return local, remote
}

// --- task bookkeeping ---

func (t *task) assign(c, par *peer, piece int32, deadline time.Time) {
	c.st[piece] = inflightState(len(c.inflight))
	cross := isCross(c, par)
	c.inflight = append(c.inflight, assignment{piece: piece, fromSeed: par.seed, cross: cross, parent: par, deadline: deadline})
	par.load++
	t.inflight++
	if par.seed {
		t.seedCopies[piece]++
	}
	if cross {
		c.seg.region.cross[piece]++
	}
}

// freeAssignment removes c.inflight[i], marking its piece missing. completed
// counts an upload for the parent.
func (t *task) freeAssignment(c *peer, i int, completed bool) {
	a := c.inflight[i]
	a.parent.load--
	if a.fromSeed {
		t.seedCopies[a.piece]--
	}
	if a.cross {
		c.seg.region.cross[a.piece]--
	}
	if completed {
		a.parent.uploads++
	}
	t.inflight--
	c.st[a.piece] = stMissing
	last := len(c.inflight) - 1
	if i != last {
		c.inflight[i] = c.inflight[last]
		c.st[c.inflight[i].piece] = inflightState(i)
	}
	c.inflight[last] = assignment{}
	c.inflight = c.inflight[:last]
}

func (t *task) addHolder(p *peer, piece int) {
	t.incr(int32(piece))
	if len(t.segs) > 1 {
		t.attach(p, int32(piece), p.seg.pos)
	} else {
		p.st[piece] = int32(len(t.holders[piece]))
		t.holders[piece] = append(t.holders[piece], p)
	}
	p.held++
	if p.held == t.pieces {
		t.complete++
	}
}

func (t *task) removeHolder(p *peer, piece int) {
	t.decr(int32(piece))
	if len(t.segs) > 1 {
		t.detach(p, int32(piece), p.seg.pos)
	} else {
		hs := t.holders[piece]
		idx := p.st[piece]
		last := len(hs) - 1
		if int(idx) != last {
			moved := hs[last]
			hs[idx] = moved
			moved.st[piece] = idx
		}
		hs[last] = nil
		t.holders[piece] = hs[:last]
	}
	p.st[piece] = stMissing
	if p.held == t.pieces {
		t.complete--
	}
	p.held--
}

// incr moves piece from the run of count c to the run of c+1; it must be
// called before the holder is appended.
func (t *task) incr(piece int32) {
	c := len(t.holders[piece])
	last := t.start[c+1] - 1
	t.swap(t.rank[piece], last)
	t.start[c+1]--
	if len(t.start) <= c+2 {
		t.start = append(t.start, int32(len(t.order)))
	}
}

// decr moves piece from the run of count c to the run of c-1; it must be
// called before the holder is removed.
func (t *task) decr(piece int32) {
	c := len(t.holders[piece])
	first := t.start[c]
	t.swap(t.rank[piece], first)
	t.start[c]++
}

func (t *task) swap(i, j int32) {
	if i == j {
		return
	}
	a, b := t.order[i], t.order[j]
	t.order[i], t.order[j] = b, a
	t.rank[a], t.rank[b] = j, i
}

func (t *task) removeSeed(p *peer) {
	i := p.seedIdx
	last := len(t.seeds) - 1
	if i != last {
		t.seeds[i] = t.seeds[last]
		t.seeds[i].seedIdx = i
	}
	t.seeds[last] = nil
	t.seeds = t.seeds[:last]
	p.seedIdx = -1
}

func (t *task) removePeer(p *peer) {
	for len(p.inflight) > 0 {
		t.freeAssignment(p, len(p.inflight)-1, false)
	}
	if p.held > 0 {
		for i, st := range p.st {
			if st >= 0 {
				t.removeHolder(p, i)
			}
		}
	}
	if p.held == t.pieces { // only for zero-piece tasks now
		t.complete--
	}
	if p.seedIdx >= 0 {
		t.removeSeed(p)
	}
	t.unplace(p.seg)
	p.gone = true
	delete(t.peers, p.id)
}
