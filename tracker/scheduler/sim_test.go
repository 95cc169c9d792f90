package scheduler

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

type simOpts struct {
	peers, pieces int
	max           int    // Schedule max per round
	originRate    int    // pieces the seed gets from origin per round; 0 = it starts full
	evil          string // a peer that fails every transfer with evilWhy
	evilWhy       FailReason
	// regions > 0 spreads the peers over regions r0.. with zones z0..
	// (zones per region, at least 1); the seed is in r0/z0.
	regions, zones int
	seed           int64 // added to the random seeds
}

type simResult struct {
	rounds         int
	seedUploads    int
	evilAssigned   int // assignments to the evil peer
	evilAfterFirst int // ... after its first failure (for bad piece: must be 0 within BadPieceBlock)
	crossRegion    int // completed transfers between two regions
	crossZone      int // completed transfers between two zones of one region
}

// simulate drives a swarm through rounds of Schedule -> transfer -> Done and
// checks the invariants after every decision.
func simulate(t *testing.T, o simOpts) simResult {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Seed = 42 + o.seed
	s := New(cfg)
	rng := rand.New(rand.NewPCG(1+uint64(o.seed), 2))
	s.AddTask("t", o.pieces)
	now := t0
	var seedHave []bool
	if o.originRate == 0 {
		seedHave = all(o.pieces)
	}
	if err := s.Join("t", "seed", true, seedHave, now); err != nil {
		t.Fatal(err)
	}
	loc := map[string]Locality{}
	if o.regions > 0 {
		loc["seed"] = Locality{"r0", "z0"}
		s.SetLocality("t", "seed", loc["seed"])
	}
	ids := make([]string, o.peers)
	for i := range ids {
		ids[i] = fmt.Sprintf("peer%03d", i)
		if err := s.Join("t", ids[i], false, nil, now); err != nil {
			t.Fatal(err)
		}
		if o.regions > 0 {
			loc[ids[i]] = Locality{fmt.Sprintf("r%d", i%o.regions), fmt.Sprintf("z%d", i/o.regions%max(o.zones, 1))}
			s.SetLocality("t", ids[i], loc[ids[i]])
		}
	}
	type pending struct {
		child string
		a     Assignment
		due   int
	}
	var inflight []pending
	var res simResult
	evilFailed := false
	originNext := 0
	for round := 1; ; round++ {
		if round > 2000 {
			t.Fatalf("not complete after %d rounds", round)
		}
		now = now.Add(time.Second)
		// The seed fetches from origin and reports as pieces land.
		if o.originRate > 0 && originNext < o.pieces {
			var got []int
			for i := 0; i < o.originRate && originNext < o.pieces; i++ {
				got = append(got, originNext)
				originNext++
			}
			s.Done("t", "seed", got, now)
		}
		s.Join("t", "seed", true, nil, now) // heartbeat
		rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		for _, id := range ids {
			for _, a := range s.Schedule("t", id, o.max, now) {
				if a.Parent == id {
					t.Fatalf("self assignment %s %v", id, a)
				}
				if !s.holds("t", a.Parent, a.Piece) {
					t.Fatalf("round %d: %s assigned piece %d from %s which does not hold it", round, id, a.Piece, a.Parent)
				}
				if s.holds("t", id, a.Piece) {
					t.Fatalf("assigned a held piece")
				}
				c := s.capacity(s.tasks["t"].peers[a.Parent])
				if l := s.load("t", a.Parent); l > c {
					t.Fatalf("parent %s load %d over capacity %d", a.Parent, l, c)
				}
				if a.Parent == o.evil {
					res.evilAssigned++
					if evilFailed {
						res.evilAfterFirst++
					}
				}
				due := round
				if rng.IntN(10) < 3 { // some transfers take longer
					due += 1 + rng.IntN(3)
				}
				inflight = append(inflight, pending{id, a, due})
			}
		}
		// Transfers that finish this round, reported in one batch per child.
		batch := map[string][]int{}
		rest := inflight[:0]
		for _, p := range inflight {
			switch {
			case p.due > round:
				rest = append(rest, p)
			case p.a.Parent == o.evil:
				s.Failed("t", p.child, p.a.Parent, p.a.Piece, o.evilWhy, now)
				evilFailed = true
			default:
				batch[p.child] = append(batch[p.child], p.a.Piece)
				c, par := loc[p.child], loc[p.a.Parent]
				switch {
				case c.Region != par.Region:
					res.crossRegion++
				case c.Zone != par.Zone:
					res.crossZone++
				}
			}
		}
		inflight = rest
		for _, child := range slices.Sorted(maps.Keys(batch)) { // deterministic
			s.Done("t", child, batch[child], now)
		}
		s.Tick(now)
		if round%10 == 0 {
			mustCheck(t, s)
		}
		tv, _, _ := s.Task("t")
		if tv.Complete == o.peers+1 {
			res.rounds = round
			break
		}
	}
	mustCheck(t, s)
	for _, pv := range s.Peers() {
		if pv.Peer == "seed" {
			res.seedUploads = pv.Uploads
		}
	}
	return res
}

func TestSimulation(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    simOpts
	}{
		{"seed starts full", simOpts{peers: 200, pieces: 64, max: 4}},
		{"seed fetching from origin", simOpts{peers: 200, pieces: 64, max: 4, originRate: 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := simulate(t, tc.o)
			total := tc.o.pieces * tc.o.peers
			share := float64(r.seedUploads) / float64(total)
			t.Logf("%d peers x %d pieces: complete in %d rounds; seed uploaded %d of %d pieces (%.1f%%)",
				tc.o.peers, tc.o.pieces, r.rounds, r.seedUploads, total, 100*share)
			if share > 0.15 {
				t.Fatalf("seed share %.1f%% too high", 100*share)
			}
		})
	}
}

func TestSimulationFailingParent(t *testing.T) {
	const peers = 100
	t.Run("keeps failing", func(t *testing.T) {
		r := simulate(t, simOpts{peers: peers, pieces: 32, max: 4, evil: "peer007", evilWhy: FailOther})
		t.Logf("failing parent got %d assignments (%d after its first failure) in %d rounds", r.evilAssigned, r.evilAfterFirst, r.rounds)
		// Each child can be sent to it at most once per FailureBlock (30 rounds).
		if limit := peers * (r.rounds/30 + 1); r.evilAssigned > limit {
			t.Fatalf("failing parent assigned %d times, limit %d", r.evilAssigned, limit)
		}
	})
	t.Run("bad piece", func(t *testing.T) {
		r := simulate(t, simOpts{peers: peers, pieces: 32, max: 4, evil: "peer007", evilWhy: FailBadPiece})
		t.Logf("bad-piece parent got %d assignments (%d after the first report) in %d rounds", r.evilAssigned, r.evilAfterFirst, r.rounds)
		// The first report blocks it for that child; the second, from another
		// child, for everyone. In between it can only take what fits in its
		// upload slots for one more round.
		if limit := 2 * DefaultConfig().MaxParentUploads; r.rounds < 300 && r.evilAfterFirst > limit {
			t.Fatalf("bad-piece parent assigned %d times after being reported, limit %d", r.evilAfterFirst, limit)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		r := simulate(t, simOpts{peers: peers, pieces: 32, max: 4, evil: "peer007", evilWhy: FailUnreachable})
		t.Logf("unreachable parent got %d assignments in %d rounds", r.evilAssigned, r.rounds)
		if limit := 2 * 8 * (r.rounds/30 + 1); r.evilAssigned > limit {
			t.Fatalf("unreachable parent assigned %d times, limit %d", r.evilAssigned, limit)
		}
	})
}

// TestSimulationRegions: the only seed is in one region, every region has
// many peers. Each piece should cross into each other region about once
// (limit: 1.25 times that, unless the case says otherwise).
func TestSimulationRegions(t *testing.T) {
	for _, tc := range []struct {
		name  string
		o     simOpts
		limit float64
	}{
		{"3 regions x 2 zones", simOpts{peers: 300, pieces: 64, max: 4, regions: 3, zones: 2}, 1.25},
		{"3 regions, seed fetching from origin", simOpts{peers: 300, pieces: 64, max: 4, originRate: 4, regions: 3, zones: 2}, 1.25},
		{"5 regions x 3 zones", simOpts{peers: 300, pieces: 32, max: 4, regions: 5, zones: 3}, 1.25},
		// A window as large as a parent's capacity keeps the regional
		// holders saturated for longer, and idle children then cross.
		{"4 regions, window 8", simOpts{peers: 600, pieces: 128, max: 8, regions: 4, zones: 1}, 1.6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := simulate(t, tc.o)
			total := tc.o.pieces * tc.o.peers
			ideal := tc.o.pieces * (tc.o.regions - 1)
			t.Logf("%d peers x %d pieces in %d regions: complete in %d rounds; %d cross-region transfers (ideal %d, %.2fx), %d cross-zone of %d; seed uploaded %d",
				tc.o.peers, tc.o.pieces, tc.o.regions, r.rounds, r.crossRegion, ideal, float64(r.crossRegion)/float64(ideal), r.crossZone, total, r.seedUploads)
			if limit := int(tc.limit * float64(ideal)); r.crossRegion > limit {
				t.Fatalf("%d cross-region transfers, limit %d", r.crossRegion, limit)
			}
			if share := float64(r.seedUploads) / float64(total); share > 0.15 {
				t.Fatalf("seed share %.1f%% too high", 100*share)
			}
		})
	}
}
