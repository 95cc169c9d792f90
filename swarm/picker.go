package swarm

import (
	"math/rand/v2"
	"slices"
	"sort"
	"time"
)

// Picker defaults.
const (
	// DefaultPeerLimit is how many pieces one peer is asked for at once.
	DefaultPeerLimit = 4
	// DefaultBackoff is how long a peer that failed a piece (without sending
	// bad bytes) is not asked again.
	DefaultBackoff = 2 * time.Second
)

// Pick assigns one piece to one peer.
type Pick struct {
	Piece int
	Peer  string
}

// PickerOption configures NewPicker.
type PickerOption func(*pickerConfig)

type pickerConfig struct {
	peerLimit int
	backoff   time.Duration
}

// WithPeerLimit bounds the pieces in flight from one peer (default
// DefaultPeerLimit).
func WithPeerLimit(n int) PickerOption {
	return func(c *pickerConfig) {
		if n > 0 {
			c.peerLimit = n
		}
	}
}

// WithBackoff sets how long a peer is avoided after a failed piece that was
// not bad (default DefaultBackoff).
func WithBackoff(d time.Duration) PickerOption {
	return func(c *pickerConfig) {
		if d >= 0 {
			c.backoff = d
		}
	}
}

// Picker decides which piece to fetch next from which peer. It is a pure
// state machine: events in (what peers hold, pieces done or failed, peers
// gone), decisions out (Next). It does no I/O, starts no goroutines and reads
// no clock: time comes in as arguments. It is not safe for concurrent use.
//
// Policy: among pieces neither held nor in flight, the rarest first (fewest
// holders that are not blocked), ties broken at random (seeded); each goes to
// the least-loaded holder that is usable (not blocked, not backing off, below
// the per-peer limit), ties broken at random.
type Picker struct {
	cfg      pickerConfig
	n        int
	held     []bool
	nheld    int
	owner    []string // peer fetching each piece; "" when not in flight
	inflight int
	count    []int // holders per piece among known, unblocked peers
	peers    map[string]*pickPeer
	order    []string // names of peers, sorted (deterministic iteration)
	blocked  map[string]bool
	rng      *rand.Rand
}

type pickPeer struct {
	has   []bool
	load  int // pieces in flight from this peer
	until time.Time
}

// NewPicker returns a picker for a task of pieces pieces, of which have (nil,
// or of length pieces) are held already. seed makes tie-breaks reproducible.
func NewPicker(pieces int, have []bool, seed int64, opts ...PickerOption) *Picker {
	cfg := pickerConfig{peerLimit: DefaultPeerLimit, backoff: DefaultBackoff}
	for _, o := range opts {
		o(&cfg)
	}
	pieces = max(pieces, 0)
	p := &Picker{
		cfg:     cfg,
		n:       pieces,
		held:    make([]bool, pieces),
		owner:   make([]string, pieces),
		count:   make([]int, pieces),
		peers:   make(map[string]*pickPeer),
		blocked: make(map[string]bool),
		rng:     rand.New(rand.NewPCG(uint64(seed), uint64(seed)^0x9e3779b97f4a7c15)),
	}
	if len(have) == pieces {
		for i, h := range have {
			if h {
				p.held[i] = true
				p.nheld++
			}
		}
	}
	return p
}

// PeerHas replaces what peer holds (for example from a status poll). have
// must have one entry per piece; other lengths and the empty name are
// ignored, as are blocked peers. Pieces in flight from peer stay in flight.
func (p *Picker) PeerHas(peer string, have []bool) {
	if peer == "" || len(have) != p.n || p.blocked[peer] {
		return
	}
	pp := p.peers[peer]
	if pp == nil {
		pp = &pickPeer{has: make([]bool, p.n)}
		p.peers[peer] = pp
		i, _ := slices.BinarySearch(p.order, peer)
		p.order = slices.Insert(p.order, i, peer)
	}
	for i, h := range have {
		if h != pp.has[i] {
			if h {
				p.count[i]++
			} else {
				p.count[i]--
			}
			pp.has[i] = h
		}
	}
}

// PeerGone forgets peer and releases the pieces in flight from it. A blocked
// peer stays blocked.
func (p *Picker) PeerGone(peer string) {
	if peer == "" {
		return
	}
	p.forget(peer)
	for i, o := range p.owner {
		if o == peer {
			p.owner[i] = ""
			p.inflight--
		}
	}
}

// forget removes peer's holdings and state, not its in-flight pieces.
func (p *Picker) forget(peer string) {
	pp := p.peers[peer]
	if pp == nil {
		return
	}
	for i, h := range pp.has {
		if h {
			p.count[i]--
		}
	}
	delete(p.peers, peer)
	if i, ok := slices.BinarySearch(p.order, peer); ok {
		p.order = slices.Delete(p.order, i, i+1)
	}
}

// usable reports whether pp may be given another piece at now.
func (p *Picker) usable(pp *pickPeer, now time.Time) bool {
	return pp.load < p.cfg.peerLimit && !now.Before(pp.until)
}

// Next returns up to max new assignments and marks them in flight.
func (p *Picker) Next(max int, now time.Time) []Pick {
	if max <= 0 || p.nheld == p.n {
		return nil
	}
	anyUsable := false
	for _, pp := range p.peers {
		if p.usable(pp, now) {
			anyUsable = true
			break
		}
	}
	if !anyUsable {
		return nil
	}
	type cand struct {
		piece, count int
		key          uint64
	}
	var cands []cand
	for i := range p.n {
		if p.held[i] || p.owner[i] != "" || p.count[i] == 0 {
			continue
		}
		cands = append(cands, cand{i, p.count[i], p.rng.Uint64()})
	}
	sort.Slice(cands, func(a, b int) bool {
		if cands[a].count != cands[b].count {
			return cands[a].count < cands[b].count
		}
		return cands[a].key < cands[b].key
	})
	var out []Pick
	for _, c := range cands {
		best, ties := "", 0
		var bestLoad int
		usableLeft := false
		for _, name := range p.order {
			pp := p.peers[name]
			if !p.usable(pp, now) {
				continue
			}
			usableLeft = true
			if !pp.has[c.piece] {
				continue
			}
			switch {
			case best == "" || pp.load < bestLoad:
				best, bestLoad, ties = name, pp.load, 1
			case pp.load == bestLoad:
				ties++
				if p.rng.IntN(ties) == 0 {
					best = name
				}
			}
		}
		if !usableLeft {
			break
		}
		if best == "" {
			continue
		}
		p.owner[c.piece] = best
		p.peers[best].load++
		p.inflight++
		out = append(out, Pick{Piece: c.piece, Peer: best})
		if len(out) == max {
			break
		}
	}
	return out
}

// release frees piece's in-flight slot, if any.
func (p *Picker) release(piece int) {
	o := p.owner[piece]
	if o == "" {
		return
	}
	if pp := p.peers[o]; pp != nil {
		pp.load--
	}
	p.owner[piece] = ""
	p.inflight--
}

// Done marks piece held and frees its in-flight slot.
func (p *Picker) Done(piece int) {
	if piece < 0 || piece >= p.n {
		return
	}
	p.release(piece)
	if !p.held[piece] {
		p.held[piece] = true
		p.nheld++
	}
}

// Failed frees piece's in-flight slot if peer holds it. bad means peer sent
// bytes that do not match the piece's CID: it is blocked for good. Otherwise
// peer is not given pieces until the backoff has passed from now.
func (p *Picker) Failed(piece int, peer string, bad bool, now time.Time) {
	if piece >= 0 && piece < p.n && peer != "" && p.owner[piece] == peer {
		p.release(piece)
	}
	if peer == "" {
		return
	}
	if bad {
		p.blocked[peer] = true
		p.forget(peer)
		return
	}
	if pp := p.peers[peer]; pp != nil {
		if until := now.Add(p.cfg.backoff); until.After(pp.until) {
			pp.until = until
		}
	}
}

// Complete reports whether every piece is held.
func (p *Picker) Complete() bool { return p.nheld == p.n }

// Missing is the number of pieces not held.
func (p *Picker) Missing() int { return p.n - p.nheld }

// InFlight is the number of pieces assigned and not yet done or failed.
func (p *Picker) InFlight() int { return p.inflight }

// Blocked reports whether peer is blocked.
func (p *Picker) Blocked(peer string) bool { return p.blocked[peer] }

// WakeAt returns the earliest time after now at which a peer's backoff ends,
// and false if no peer is backing off: a caller with nothing to do may sleep
// until then.
func (p *Picker) WakeAt(now time.Time) (time.Time, bool) {
	var at time.Time
	for _, pp := range p.peers {
		if pp.until.After(now) && (at.IsZero() || pp.until.Before(at)) {
			at = pp.until
		}
	}
	return at, !at.IsZero()
}
