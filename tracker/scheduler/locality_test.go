package scheduler

import (
	"fmt"
	"testing"
	"time"
)

// setupLoc is setup followed by SetLocality for the peers in locs.
func setupLoc(t testing.TB, cfg Config, pieces int, locs map[string]Locality, peers ...joinSpec) *Scheduler {
	t.Helper()
	s := setup(t, cfg, pieces, peers...)
	for _, p := range peers {
		if l, ok := locs[p.id]; ok {
			s.SetLocality("t", p.id, l)
		}
	}
	mustCheck(t, s)
	return s
}

// addLoad raises the load of peers as if they were serving others (a test
// poke: check fails until the returned undo runs).
func addLoad(s *Scheduler, loads map[string]int) (undo func()) {
	t := s.tasks["t"]
	for id, n := range loads {
		t.peers[id].load += n
	}
	return func() {
		for id, n := range loads {
			t.peers[id].load -= n
		}
	}
}

func parentOf(t *testing.T, got []Assignment, piece int) string {
	t.Helper()
	for _, a := range got {
		if a.Piece == piece {
			return a.Parent
		}
	}
	return ""
}

func TestLocalityTiers(t *testing.T) {
	locs := map[string]Locality{
		"c":  {"r1", "z1"}, // the child
		"cr": {"r1", ""},   // a child with a region and no zone
		"z":  {"r1", "z1"}, // same zone
		"r":  {"r1", "z2"}, // same region
		"r2": {"r1", "z3"},
		"o":  {"r2", "z1"}, // other region (same zone name: irrelevant)
		"sz": {"r1", "z1"}, // seeds
		"sr": {"r1", "z2"},
		"so": {"r2", "z1"},
	}
	cfg := Config{Seed: 3, MaxParentUploads: 4, MaxSeedUploads: 8}
	tests := []struct {
		name    string
		child   string
		holders []string
		seeds   []string
		loads   map[string]int
		blocked []string // parents that failed the child
		want    string   // "" = nothing
	}{
		{name: "same zone beats same region and other region, even more loaded",
			child: "c", holders: []string{"z", "r", "o"}, loads: map[string]int{"z": 3}, want: "z"},
		{name: "same region beats other region, even more loaded",
			child: "c", holders: []string{"z", "r", "o"}, loads: map[string]int{"z": 4, "r": 3}, want: "r"},
		{name: "least loaded within a tier",
			child: "c", holders: []string{"r", "r2", "o"}, loads: map[string]int{"r": 2, "r2": 1}, want: "r2"},
		{name: "full same-region holders let another region serve",
			child: "c", holders: []string{"z", "r", "o"}, loads: map[string]int{"z": 4, "r": 4}, want: "o"},
		{name: "blocked same-region holders let another region serve",
			child: "c", holders: []string{"z", "r", "o"}, blocked: []string{"z", "r"}, want: "o"},
		{name: "unknown-region holder counts as same region",
			child: "c", holders: []string{"u", "o"}, loads: map[string]int{"u": 3}, want: "u"},
		{name: "child without labels has no preference",
			child: "x", holders: []string{"z", "o"}, loads: map[string]int{"z": 2}, want: "o"},
		{name: "child without a zone: its whole region is one tier",
			child: "cr", holders: []string{"z", "r", "o"}, loads: map[string]int{"z": 2, "r": 1}, want: "r"},
		{name: "seed in region before a peer of another region",
			child: "c", holders: []string{"o"}, seeds: []string{"sr"}, want: "sr"},
		{name: "peer of another region before a seed of another region",
			child: "c", holders: []string{"o"}, seeds: []string{"so"}, loads: map[string]int{"o": 3}, want: "o"},
		{name: "seed in zone before seed in region, even more loaded",
			child: "c", seeds: []string{"sr", "sz", "so"}, loads: map[string]int{"sz": 5}, want: "sz"},
		{name: "seed of another region last",
			child: "c", seeds: []string{"sr", "so"}, loads: map[string]int{"sr": 8}, want: "so"},
		{name: "peers still before seeds in a tier",
			child: "c", holders: []string{"r"}, seeds: []string{"sz"}, loads: map[string]int{"r": 3}, want: "r"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			peers := []joinSpec{{tt.child, false, nil}}
			for _, h := range tt.holders {
				peers = append(peers, joinSpec{h, false, all(1)})
			}
			for _, h := range tt.seeds {
				peers = append(peers, joinSpec{h, true, all(1)})
			}
			s := setupLoc(t, cfg, 1, locs, peers...)
			for _, b := range tt.blocked {
				s.Failed("t", tt.child, b, 0, FailOther, t0)
			}
			undo := addLoad(s, tt.loads)
			got := s.Schedule("t", tt.child, 1, t0)
			undo()
			mustCheck(t, s)
			if p := parentOf(t, got, 0); p != tt.want {
				t.Fatalf("got %v, want parent %q", got, tt.want)
			}
		})
	}
}

// Sampling looks inside the child's zone, then region, first: one nearby
// holder among hundreds of far ones is always found.
func TestLocalitySamplingFindsNearbyHolder(t *testing.T) {
	for _, tc := range []struct {
		name      string
		far, near Locality
	}{
		{"region", Locality{"r2", "z1"}, Locality{"r1", "z2"}},
		{"zone", Locality{"r1", "z2"}, Locality{"r1", "z1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			locs := map[string]Locality{"c": {"r1", "z1"}, "near": tc.near}
			peers := []joinSpec{{"c", false, nil}, {"near", false, all(1)}}
			for i := range 300 {
				id := fmt.Sprintf("far%d", i)
				peers = append(peers, joinSpec{id, false, all(1)})
				locs[id] = tc.far
			}
			s := setupLoc(t, Config{Seed: 5, CandidateSample: 4}, 1, locs, peers...)
			for range 50 {
				if got := s.Schedule("t", "c", 1, t0); parentOf(t, got, 0) != "near" {
					t.Fatalf("got %v, want the nearby holder", got)
				}
				s.release("t", "c")
			}
			mustCheck(t, s)
		})
	}
}

func TestCrossRegionCap(t *testing.T) {
	locs := map[string]Locality{
		"a1": {"rA", "z1"}, "a2": {"rA", "z2"}, "sa": {"rA", "z1"},
		"b1": {"rB", "z1"}, "b2": {"rB", "z2"}, "b3": {"rB", "z1"},
		"c1": {"rC", ""},
	}
	children := []joinSpec{{"b1", false, nil}, {"b2", false, nil}, {"b3", false, nil}, {"c1", false, nil}}
	holders := append([]joinSpec{{"a1", false, all(1)}, {"a2", false, all(1)}}, children...)
	cfg := Config{Seed: 7, AssignmentTimeout: time.Minute}

	t.Run("one copy in flight per region, then from the regional copy", func(t *testing.T) {
		s := setupLoc(t, cfg, 1, locs, holders...)
		first := parentOf(t, s.Schedule("t", "b1", 1, t0), 0)
		if first != "a1" && first != "a2" {
			t.Fatalf("b1 got %q", first)
		}
		if got := s.Schedule("t", "b2", 1, t0); len(got) != 0 {
			t.Fatalf("b2 got %v while a copy is on its way into rB", got)
		}
		// Another region has its own allowance.
		if p := parentOf(t, s.Schedule("t", "c1", 1, t0), 0); p != "a1" && p != "a2" {
			t.Fatalf("c1 got %q", p)
		}
		mustCheck(t, s)
		s.Done("t", "b1", []int{0}, t0)
		if p := parentOf(t, s.Schedule("t", "b2", 1, t0), 0); p != "b1" {
			t.Fatalf("b2 got %q, want its region's copy from b1", p)
		}
		mustCheck(t, s)
	})
	t.Run("seeds count like peers", func(t *testing.T) {
		s := setupLoc(t, Config{Seed: 7, SeedCopies: 4}, 1, locs,
			append([]joinSpec{{"sa", true, all(1)}}, children...)...)
		if p := parentOf(t, s.Schedule("t", "b1", 1, t0), 0); p != "sa" {
			t.Fatalf("b1 got %q", p)
		}
		if got := s.Schedule("t", "b2", 1, t0); len(got) != 0 {
			t.Fatalf("b2 got %v", got)
		}
		mustCheck(t, s)
	})
	t.Run("CrossRegionCopies 2", func(t *testing.T) {
		s := setupLoc(t, Config{Seed: 7, CrossRegionCopies: 2}, 1, locs, holders...)
		for _, c := range []string{"b1", "b2"} {
			if got := s.Schedule("t", c, 1, t0); len(got) != 1 {
				t.Fatalf("%s got %v", c, got)
			}
		}
		if got := s.Schedule("t", "b3", 1, t0); len(got) != 0 {
			t.Fatalf("b3 got %v", got)
		}
		mustCheck(t, s)
	})
	// Every way an assignment ends gives the allowance back.
	for _, end := range []struct {
		name string
		f    func(s *Scheduler, parent string) time.Time
	}{
		{"failed", func(s *Scheduler, parent string) time.Time { s.Failed("t", "b1", parent, 0, FailOther, t0); return t0 }},
		{"leave", func(s *Scheduler, _ string) time.Time { s.Leave("t", "b1"); return t0 }},
		{"timeout", func(s *Scheduler, _ string) time.Time {
			now := t0.Add(time.Minute)
			for _, id := range []string{"a1", "a2", "b1", "b2"} {
				s.Join("t", id, false, nil, now)
			}
			s.Tick(now)
			return now
		}},
		{"child moves to another region", func(s *Scheduler, _ string) time.Time {
			s.SetLocality("t", "b1", Locality{"rC", "z1"})
			return t0
		}},
		{"child loses its region", func(s *Scheduler, _ string) time.Time {
			s.SetLocality("t", "b1", Locality{})
			return t0
		}},
	} {
		t.Run("freed by "+end.name, func(t *testing.T) {
			s := setupLoc(t, cfg, 1, locs, holders...)
			got := s.Schedule("t", "b1", 1, t0)
			if len(got) != 1 {
				t.Fatalf("b1 got %v", got)
			}
			now := end.f(s, got[0].Parent)
			mustCheck(t, s)
			if got := s.Schedule("t", "b2", 1, now); len(got) != 1 {
				t.Fatalf("b2 got %v after b1's transfer ended", got)
			}
			mustCheck(t, s)
		})
	}
	t.Run("remove task", func(t *testing.T) {
		s := setupLoc(t, cfg, 1, locs, holders...)
		s.Schedule("t", "b1", 1, t0)
		s.RemoveTask("t")
		mustCheck(t, s)
	})
}

// A regional holder that is busy lets an idle child take the piece from
// another region (within the cap); a child with work in flight waits for it.
func TestCrossRegionWhenRegionalHolderBusy(t *testing.T) {
	locs := map[string]Locality{"a": {"rA", ""}, "b1": {"rB", ""}, "b2": {"rB", ""}}
	s := setupLoc(t, Config{Seed: 2, MaxParentUploads: 2}, 2, locs,
		joinSpec{"a", false, all(2)}, joinSpec{"b1", false, bits(2, 0)}, joinSpec{"b2", false, nil})
	undo := addLoad(s, map[string]int{"b1": 2}) // b1, in rB, is full
	// Piece 1 has no holder in rB: it crosses at once. Piece 0's regional
	// holder is busy and b2 now has work: it waits.
	got := s.Schedule("t", "b2", 2, t0)
	if len(got) != 1 || parentOf(t, got, 1) != "a" {
		t.Fatalf("b2 got %v, want only piece 1 from a", got)
	}
	// Once idle, b2 takes piece 0 from rA.
	s.Done("t", "b2", []int{1}, t0)
	if p := parentOf(t, s.Schedule("t", "b2", 2, t0), 0); p != "a" {
		t.Fatalf("idle b2 got piece 0 from %q, want a", p)
	}
	undo()
	mustCheck(t, s)
}

func TestSetLocality(t *testing.T) {
	s := setup(t, Config{Seed: 1}, 4, joinSpec{"s", true, all(4)}, joinSpec{"p", false, bits(4, 0, 2)},
		joinSpec{"q", false, all(4)}, joinSpec{"c", false, nil})
	s.SetLocality("t", "nobody", Locality{"r", "z"})
	s.SetLocality("nope", "p", Locality{"r", "z"})
	mustCheck(t, s)
	if len(s.tasks["t"].segs) != 1 {
		t.Fatal("segment made for an unknown peer")
	}
	// Moving holders between segments keeps their holdings.
	for _, l := range []Locality{{"r1", "z1"}, {"r2", "z1"}, {"r1", "z2"}, {"r1", ""}, {"", "z9"}, {"r2", "z1"}} {
		s.SetLocality("t", "p", l)
		mustCheck(t, s)
		s.SetLocality("t", "q", Locality{"r1", "z1"})
		mustCheck(t, s)
		if !s.holds("t", "p", 0) || !s.holds("t", "p", 2) || s.holds("t", "p", 1) || !s.holds("t", "q", 3) {
			t.Fatalf("holdings changed after moving p to %v", l)
		}
		got := s.Schedule("t", "c", 4, t0)
		if len(got) != 4 {
			t.Fatalf("c got %v", got)
		}
		mustCheck(t, s)
		s.release("t", "c")
	}
	_, pv, _ := s.Task("t")
	for _, v := range pv {
		if v.Peer == "p" && (v.Region != "r2" || v.Zone != "z1") {
			t.Fatalf("view %+v", v)
		}
	}
	// Segments and regions go with their last peer.
	s.Leave("t", "p")
	s.Leave("t", "q")
	mustCheck(t, s)
	if tk := s.tasks["t"]; len(tk.segs) != 1 || len(tk.regions) != 0 {
		t.Fatalf("%d segments, %d regions left", len(tk.segs), len(tk.regions))
	}
}

func TestLocalityTooManySegments(t *testing.T) {
	s := setup(t, Config{Seed: 1}, 2, joinSpec{"s", true, all(2)})
	for i := range maxSegments {
		id := fmt.Sprintf("p%d", i)
		s.Join("t", id, false, bits(2, i%2), t0)
		s.SetLocality("t", id, Locality{fmt.Sprintf("r%d", i/4), fmt.Sprintf("z%d", i%4)})
	}
	mustCheck(t, s)
	tk := s.tasks["t"]
	last := tk.peers[fmt.Sprintf("p%d", maxSegments-1)]
	if len(tk.segs) != maxSegments || last.seg.pos != 0 {
		t.Fatalf("%d segments, last peer in segment %d", len(tk.segs), last.seg.pos)
	}
	// Room again: the same labels are placed on the next call.
	s.Leave("t", "p0")
	s.SetLocality("t", last.id, last.loc)
	mustCheck(t, s)
	if last.seg.pos == 0 {
		t.Fatal("peer not placed once a segment was free")
	}
}
