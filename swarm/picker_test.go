package swarm

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// check verifies the picker's internal accounting.
func (p *Picker) check() error {
	nheld, inflight := 0, 0
	loads := map[string]int{}
	for i := range p.n {
		if p.held[i] {
			nheld++
			if p.owner[i] != "" {
				return fmt.Errorf("piece %d held and in flight from %q", i, p.owner[i])
			}
		}
		if o := p.owner[i]; o != "" {
			inflight++
			loads[o]++
			if p.peers[o] == nil && !p.blocked[o] {
				return fmt.Errorf("piece %d in flight from unknown peer %q", i, o)
			}
		}
	}
	if nheld != p.nheld || inflight != p.inflight {
		return fmt.Errorf("held %d/%d, in flight %d/%d", nheld, p.nheld, inflight, p.inflight)
	}
	counts := make([]int, p.n)
	names := make([]string, 0, len(p.peers))
	for name, pp := range p.peers {
		names = append(names, name)
		if p.blocked[name] {
			return fmt.Errorf("blocked peer %q still known", name)
		}
		if pp.load != loads[name] {
			return fmt.Errorf("peer %q load %d, owns %d", name, pp.load, loads[name])
		}
		if pp.load > p.cfg.peerLimit {
			return fmt.Errorf("peer %q load %d over limit", name, pp.load)
		}
		for i, h := range pp.has {
			if h {
				counts[i]++
			}
		}
	}
	if !slices.Equal(counts, p.count) {
		return fmt.Errorf("counts %v, want %v", p.count, counts)
	}
	slices.Sort(names)
	if !slices.Equal(names, p.order) {
		return fmt.Errorf("order %v, want %v", p.order, names)
	}
	return nil
}

func mustCheck(t testing.TB, p *Picker) {
	t.Helper()
	if err := p.check(); err != nil {
		t.Fatal(err)
	}
}

func bools(n int, set ...int) []bool {
	b := make([]bool, n)
	for _, i := range set {
		b[i] = true
	}
	return b
}

func all(n int) []bool {
	b := make([]bool, n)
	for i := range b {
		b[i] = true
	}
	return b
}

func TestPickerTable(t *testing.T) {
	type step func(t *testing.T, p *Picker)
	next := func(max int, at time.Duration, want ...Pick) step {
		return func(t *testing.T, p *Picker) {
			t.Helper()
			got := p.Next(max, t0.Add(at))
			if len(want) == 0 && len(got) == 0 {
				return
			}
			if !slices.Equal(got, want) {
				t.Fatalf("Next(%d) = %v, want %v", max, got, want)
			}
		}
	}
	// nextCount checks only how many picks come back and from whom.
	nextCount := func(max int, at time.Duration, perPeer map[string]int) step {
		return func(t *testing.T, p *Picker) {
			t.Helper()
			got := map[string]int{}
			for _, pk := range p.Next(max, t0.Add(at)) {
				got[pk.Peer]++
			}
			for k, v := range perPeer {
				if got[k] != v {
					t.Fatalf("Next(%d): %v, want %v", max, got, perPeer)
				}
			}
			for k := range got {
				if _, ok := perPeer[k]; !ok {
					t.Fatalf("Next(%d): %v, want %v", max, got, perPeer)
				}
			}
		}
	}
	has := func(peer string, have []bool) step {
		return func(t *testing.T, p *Picker) { p.PeerHas(peer, have) }
	}
	done := func(i int) step { return func(t *testing.T, p *Picker) { p.Done(i) } }
	failed := func(i int, peer string, bad bool, at time.Duration) step {
		return func(t *testing.T, p *Picker) { p.Failed(i, peer, bad, t0.Add(at)) }
	}
	gone := func(peer string) step { return func(t *testing.T, p *Picker) { p.PeerGone(peer) } }
	missing := func(n int, complete bool) step {
		return func(t *testing.T, p *Picker) {
			t.Helper()
			if p.Missing() != n || p.Complete() != complete {
				t.Fatalf("Missing %d Complete %v, want %d %v", p.Missing(), p.Complete(), n, complete)
			}
		}
	}
	wake := func(at time.Duration, want time.Duration, ok bool) step {
		return func(t *testing.T, p *Picker) {
			t.Helper()
			got, gotOK := p.WakeAt(t0.Add(at))
			if gotOK != ok || ok && !got.Equal(t0.Add(want)) {
				t.Fatalf("WakeAt = %v %v", got.Sub(t0), gotOK)
			}
		}
	}
	cases := []struct {
		name   string
		pieces int
		have   []bool
		opts   []PickerOption
		steps  []step
	}{
		{"rarest first, least loaded holder", 3, nil, nil, []step{
			has("a", all(3)), has("b", bools(3, 1, 2)), has("c", bools(3, 2)),
			next(1, 0, Pick{0, "a"}), next(1, 0, Pick{1, "b"}), next(1, 0, Pick{2, "c"}),
			next(5, 0),
		}},
		{"spread over equal holders", 8, nil, nil, []step{
			has("a", all(8)), has("b", all(8)),
			nextCount(4, 0, map[string]int{"a": 2, "b": 2}),
		}},
		{"per-peer limit", 10, nil, nil, []step{
			has("a", all(10)), nextCount(10, 0, map[string]int{"a": DefaultPeerLimit}), next(10, 0),
		}},
		{"per-peer limit option", 10, nil, []PickerOption{WithPeerLimit(2)}, []step{
			has("a", all(10)), nextCount(10, 0, map[string]int{"a": 2}),
		}},
		{"held pieces are never picked", 3, bools(3, 0, 2), nil, []step{
			missing(1, false), has("a", all(3)), next(3, 0, Pick{1, "a"}), next(3, 0), done(1), missing(0, true), next(3, 0),
		}},
		{"in-flight pieces are not picked again", 2, nil, nil, []step{
			has("a", all(2)), has("b", bools(2, 0)),
			next(1, 0, Pick{1, "a"}), next(5, 0, Pick{0, "b"}), next(5, 0),
		}},
		{"a bad peer is blocked for good", 1, nil, nil, []step{
			has("a", all(1)), next(1, 0, Pick{0, "a"}), failed(0, "a", true, 0),
			next(5, time.Hour), has("a", all(1)), next(5, time.Hour),
			has("b", all(1)), next(5, time.Hour, Pick{0, "b"}),
		}},
		{"a failing peer backs off", 1, nil, nil, []step{
			has("a", all(1)), next(1, 0, Pick{0, "a"}), failed(0, "a", false, time.Second),
			wake(time.Second, 3*time.Second, true),
			next(1, 2900*time.Millisecond), next(1, 3*time.Second, Pick{0, "a"}), wake(3*time.Second, 0, false),
		}},
		{"backoff option", 1, nil, []PickerOption{WithBackoff(100 * time.Millisecond)}, []step{
			has("a", all(1)), next(1, 0, Pick{0, "a"}), failed(0, "a", false, 0),
			next(1, 50*time.Millisecond), next(1, 100*time.Millisecond, Pick{0, "a"}),
		}},
		{"others serve while a peer backs off", 2, nil, nil, []step{
			has("a", bools(2, 0)), next(1, 0, Pick{0, "a"}), failed(0, "a", false, 0),
			has("a", all(2)), has("b", all(2)), nextCount(2, 0, map[string]int{"b": 2}),
		}},
		{"peer gone releases its pieces", 1, nil, nil, []step{
			has("a", all(1)), next(1, 0, Pick{0, "a"}), gone("a"), next(1, 0),
			has("b", all(1)), next(1, 0, Pick{0, "b"}),
			// The late result from a does not free b's slot.
			failed(0, "a", false, 0), next(1, 0), done(0), missing(0, true),
		}},
		{"done frees the slot", 3, nil, []PickerOption{WithPeerLimit(1)}, []step{
			has("a", all(3)), nextCount(3, 0, map[string]int{"a": 1}), next(3, 0),
			func(t *testing.T, p *Picker) {
				for i := range 3 {
					if p.owner[i] != "" {
						p.Done(i)
					}
				}
			},
			nextCount(3, 0, map[string]int{"a": 1}),
		}},
		{"peers losing pieces", 2, nil, nil, []step{
			has("a", all(2)), has("a", bools(2, 1)), next(5, 0, Pick{1, "a"}),
		}},
		{"ignored input", 2, nil, nil, []step{
			has("a", all(3)), has("", all(2)), next(5, 0), next(0, 0), next(-1, 0),
			done(-1), done(7), failed(9, "a", true, 0), failed(0, "", true, 0), gone(""), gone("nobody"),
			missing(2, false),
		}},
		{"no pieces", 0, nil, nil, []step{missing(0, true), has("a", nil), next(3, 0)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPicker(tc.pieces, tc.have, 1, tc.opts...)
			for _, s := range tc.steps {
				s(t, p)
				mustCheck(t, p)
			}
		})
	}
}

func TestPickerTieBreak(t *testing.T) {
	seq := func(seed int64) []Pick {
		p := NewPicker(64, nil, seed)
		for _, name := range []string{"a", "b", "c", "d"} {
			p.PeerHas(name, all(64))
		}
		var out []Pick
		for !p.Complete() {
			picks := p.Next(16, t0)
			for _, pk := range picks {
				p.Done(pk.Piece)
			}
			out = append(out, picks...)
		}
		return out
	}
	if !slices.Equal(seq(7), seq(7)) {
		t.Fatal("same seed, different picks")
	}
	firsts := map[int]bool{}
	for seed := range int64(20) {
		firsts[seq(seed)[0].Piece] = true
	}
	if len(firsts) < 5 {
		t.Fatalf("first pick over 20 seeds took only %d values", len(firsts))
	}
	// Rarity beats randomness: a piece with one holder always goes first.
	for seed := range int64(20) {
		p := NewPicker(8, nil, seed)
		p.PeerHas("a", all(8))
		p.PeerHas("b", bools(8, 0, 1, 2, 3, 4, 6, 7))
		if got := p.Next(1, t0); got[0].Piece != 5 {
			t.Fatalf("seed %d: first pick %v", seed, got)
		}
	}
}

// source yields choices; drive uses it to generate events.
type source interface {
	intn(n int) int // in [0, n); 0 once exhausted
	done() bool
}

type randSource struct {
	r    *rand.Rand
	left int
}

func (s *randSource) intn(n int) int { s.left--; return s.r.IntN(n) }
func (s *randSource) done() bool     { return s.left <= 0 }

type byteSource struct {
	b []byte
	i int
}

func (s *byteSource) intn(n int) int {
	if s.i >= len(s.b) {
		return 0
	}
	v := int(s.b[s.i])
	s.i++
	return v % n
}
func (s *byteSource) done() bool { return s.i >= len(s.b) }

// drive runs random events against a picker and a model of what it was told,
// checking every decision and the picker's accounting after every event, and
// finally that a healthy seed peer lets it finish.
func drive(t testing.TB, src source) {
	n := src.intn(40)
	npeers := 1 + src.intn(6)
	limit := 1 + src.intn(5)
	backoff := time.Duration(src.intn(4)) * time.Second
	initial := make([]bool, n)
	for i := range initial {
		initial[i] = src.intn(4) == 0
	}
	p := NewPicker(n, initial, int64(src.intn(1000)), WithPeerLimit(limit), WithBackoff(backoff))
	now := t0

	held := slices.Clone(initial)
	owner := map[int]string{}       // pieces in flight
	has := map[string][]bool{}      // what each known peer was said to hold
	until := map[string]time.Time{} // backoff of known peers
	blocked := map[string]bool{}
	name := func(i int) string { return fmt.Sprintf("p%d", i) }
	load := func(peer string) int {
		k := 0
		for _, o := range owner {
			if o == peer {
				k++
			}
		}
		return k
	}
	missing := func() int {
		k := 0
		for _, h := range held {
			if !h {
				k++
			}
		}
		return k
	}
	inflight := func() []int {
		var out []int
		for i := range owner {
			out = append(out, i)
		}
		slices.Sort(out)
		return out
	}
	checkPicks := func(picks []Pick, max int) {
		if len(picks) > max {
			t.Fatalf("%d picks for max %d", len(picks), max)
		}
		for _, pk := range picks {
			switch {
			case pk.Piece < 0 || pk.Piece >= n:
				t.Fatalf("pick %v out of range", pk)
			case held[pk.Piece]:
				t.Fatalf("pick %v: piece held", pk)
			case owner[pk.Piece] != "":
				t.Fatalf("pick %v: piece in flight from %s", pk, owner[pk.Piece])
			case blocked[pk.Peer]:
				t.Fatalf("pick %v: peer blocked", pk)
			case has[pk.Peer] == nil || !has[pk.Peer][pk.Piece]:
				t.Fatalf("pick %v: peer lacks the piece", pk)
			case now.Before(until[pk.Peer]):
				t.Fatalf("pick %v: peer backing off", pk)
			case load(pk.Peer) >= limit:
				t.Fatalf("pick %v: peer at its limit", pk)
			}
			owner[pk.Piece] = pk.Peer
		}
	}
	for steps := 0; !src.done() && steps < 3000; steps++ {
		switch src.intn(8) {
		case 0, 1: // a peer reports its holdings (usually growing)
			peer := name(src.intn(npeers))
			h := make([]bool, n)
			for i := range h {
				h[i] = has[peer] != nil && has[peer][i] && src.intn(10) != 0 || src.intn(3) == 0
			}
			p.PeerHas(peer, h)
			if !blocked[peer] {
				if has[peer] == nil {
					until[peer] = time.Time{}
				}
				has[peer] = h
			}
		case 2, 3:
			max := src.intn(12)
			checkPicks(p.Next(max, now), max)
		case 4: // a piece arrives
			if f := inflight(); len(f) > 0 {
				i := f[src.intn(len(f))]
				p.Done(i)
				delete(owner, i)
				held[i] = true
			}
		case 5: // a piece fails
			if f := inflight(); len(f) > 0 {
				i := f[src.intn(len(f))]
				peer := owner[i]
				bad := src.intn(6) == 0
				p.Failed(i, peer, bad, now)
				delete(owner, i)
				if bad {
					blocked[peer] = true
					delete(has, peer)
					delete(until, peer)
				} else if has[peer] != nil {
					if u := now.Add(backoff); u.After(until[peer]) {
						until[peer] = u
					}
				}
			}
		case 6:
			if src.intn(3) == 0 { // a peer goes away
				peer := name(src.intn(npeers))
				p.PeerGone(peer)
				delete(has, peer)
				delete(until, peer)
				for i, o := range owner {
					if o == peer {
						delete(owner, i)
					}
				}
			} else if n > 0 { // a piece lands from elsewhere
				i := src.intn(n)
				if owner[i] == "" {
					p.Done(i)
					held[i] = true
				}
			}
		case 7:
			now = now.Add(time.Duration(src.intn(3000)) * time.Millisecond)
		}
		if err := p.check(); err != nil {
			t.Fatal(err)
		}
		if p.Missing() != missing() || p.InFlight() != len(owner) || p.Complete() != (missing() == 0) {
			t.Fatalf("Missing %d InFlight %d, model %d %d", p.Missing(), p.InFlight(), missing(), len(owner))
		}
	}
	// Drain: every in-flight piece fails softly, a seed holding everything
	// joins, and the picker must finish.
	for _, i := range inflight() {
		p.Failed(i, owner[i], false, now)
		delete(owner, i)
	}
	p.PeerHas("seed", all(n))
	has["seed"] = all(n)
	for rounds := 0; !p.Complete(); rounds++ {
		if rounds > 2*n+10 {
			t.Fatalf("not complete after %d rounds: %d missing", rounds, p.Missing())
		}
		now = now.Add(backoff + time.Second)
		picks := p.Next(16, now)
		checkPicks(picks, 16)
		for _, pk := range picks {
			if pk.Peer != "seed" && src.intn(2) == 0 {
				p.Failed(pk.Piece, pk.Peer, false, now)
			} else {
				p.Done(pk.Piece)
				held[pk.Piece] = true
			}
			delete(owner, pk.Piece)
		}
		if err := p.check(); err != nil {
			t.Fatal(err)
		}
	}
	if missing() != 0 || p.InFlight() != 0 {
		t.Fatalf("complete with %d missing, %d in flight", missing(), p.InFlight())
	}
}

func TestPickerInvariantsRandom(t *testing.T) {
	for seed := range uint64(300) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			drive(t, &randSource{r: rand.New(rand.NewPCG(seed, 99)), left: 2000})
		})
	}
}

func FuzzPicker(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{10, 3, 2, 0, 1, 0, 2, 5, 3, 4, 5, 0, 2, 7, 9, 6, 1})
	r := rand.New(rand.NewPCG(1, 2))
	for range 4 {
		b := make([]byte, 400)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		drive(t, &byteSource{b: data})
	})
}
