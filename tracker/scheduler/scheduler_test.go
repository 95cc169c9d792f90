package scheduler

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func bits(n int, held ...int) []bool {
	b := make([]bool, n)
	for _, i := range held {
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

type joinSpec struct {
	id   string
	seed bool
	have []bool
}

func setup(t testing.TB, cfg Config, pieces int, peers ...joinSpec) *Scheduler {
	t.Helper()
	s := New(cfg)
	s.AddTask("t", pieces)
	for _, p := range peers {
		if err := s.Join("t", p.id, p.seed, p.have, t0); err != nil {
			t.Fatal(err)
		}
	}
	mustCheck(t, s)
	return s
}

func mustCheck(t testing.TB, s *Scheduler) {
	t.Helper()
	if err := s.check(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigDefaults(t *testing.T) {
	s := New(Config{Seed: 7})
	want := DefaultConfig()
	want.Seed = 7
	if got := s.Config(); got != want {
		t.Fatalf("config = %+v, want %+v", got, want)
	}
}

func TestJoinErrors(t *testing.T) {
	s := New(DefaultConfig())
	s.AddTask("t", 4)
	s.AddTask("t", 9) // idempotent: still 4 pieces
	tests := []struct {
		name, task, peer string
		have             []bool
		want             error
	}{
		{"unknown task", "x", "a", nil, ErrUnknownTask},
		{"empty peer", "t", "", nil, ErrEmptyPeer},
		{"short have", "t", "a", []bool{true}, ErrHaveLength},
		{"long have", "t", "a", all(9), ErrHaveLength},
		{"nil have", "t", "a", nil, nil},
		{"empty have", "t", "b", []bool{}, nil},
		{"full have", "t", "c", all(4), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Join(tt.task, tt.peer, false, tt.have, t0)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Join = %v, want %v", err, tt.want)
			}
		})
	}
	tv, _, _ := s.Task("t")
	if tv.Pieces != 4 || tv.Peers != 3 || tv.Complete != 1 {
		t.Fatalf("task view %+v", tv)
	}
	mustCheck(t, s)
}

// TestScheduleEligibility: only missing, not-in-flight pieces that a live
// holder other than the peer itself has.
func TestScheduleEligibility(t *testing.T) {
	tests := []struct {
		name   string
		peers  []joinSpec
		pre    func(s *Scheduler)
		max    int
		now    time.Duration
		want   map[int]string // piece -> parent, exactly
		nAsgn  int            // if want is nil: expected count
		reason string
	}{
		{
			name:  "nobody holds anything",
			peers: []joinSpec{{"s", true, nil}, {"a", false, nil}},
			max:   8, want: map[int]string{},
		},
		{
			name:  "only held pieces",
			peers: []joinSpec{{"s", true, bits(4, 1, 3)}, {"a", false, nil}},
			max:   8, want: map[int]string{1: "s", 3: "s"},
		},
		{
			name:  "not own pieces, not self",
			peers: []joinSpec{{"a", false, bits(4, 0, 1)}, {"b", false, bits(4, 1, 2)}},
			max:   8, want: map[int]string{2: "b"},
		},
		{
			name:  "not pieces in flight",
			peers: []joinSpec{{"s", true, all(3)}, {"a", false, nil}},
			pre:   func(s *Scheduler) { s.Schedule("t", "a", 2, t0) },
			max:   8, nAsgn: 1,
		},
		{
			name:  "max respected",
			peers: []joinSpec{{"s", true, all(10)}, {"a", false, nil}},
			max:   3, nAsgn: 3,
		},
		{
			name:  "max zero",
			peers: []joinSpec{{"s", true, all(10)}, {"a", false, nil}},
			max:   0, nAsgn: 0,
		},
		{
			name:  "complete peer gets nothing",
			peers: []joinSpec{{"s", true, all(3)}, {"a", false, all(3)}},
			max:   8, nAsgn: 0,
		},
		{
			name: "holder past TTL is not live",
			peers: []joinSpec{
				{"s", true, all(2)}, {"a", false, nil},
			},
			pre: func(s *Scheduler) {
				// a stays alive, s does not.
				s.Join("t", "a", false, nil, t0.Add(3*time.Minute))
			},
			now: 3 * time.Minute, max: 8, want: map[int]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pieces := 0
			for _, p := range tt.peers {
				pieces = max(pieces, len(p.have))
			}
			s := setup(t, Config{Seed: 1}, pieces, tt.peers...)
			if tt.pre != nil {
				tt.pre(s)
			}
			got := s.Schedule("t", "a", tt.max, t0.Add(tt.now))
			mustCheck(t, s)
			if tt.want != nil {
				m := map[int]string{}
				for _, a := range got {
					m[a.Piece] = a.Parent
				}
				if fmt.Sprint(m) != fmt.Sprint(tt.want) {
					t.Fatalf("got %v, want %v", m, tt.want)
				}
				return
			}
			if len(got) != tt.nAsgn {
				t.Fatalf("got %d assignments %v, want %d", len(got), got, tt.nAsgn)
			}
		})
	}
}

func TestUnknownEventsIgnored(t *testing.T) {
	s := setup(t, Config{Seed: 1}, 4, joinSpec{"s", true, all(4)})
	if got := s.Schedule("t", "nobody", 4, t0); got != nil {
		t.Fatalf("schedule for unknown peer: %v", got)
	}
	if got := s.Schedule("nope", "s", 4, t0); got != nil {
		t.Fatalf("schedule for unknown task: %v", got)
	}
	s.Done("t", "nobody", []int{1}, t0)
	s.Done("nope", "s", []int{1}, t0)
	s.Done("t", "s", []int{-1, 4, 99}, t0)
	s.Failed("t", "nobody", "s", 1, FailBadPiece, t0)
	s.Failed("nope", "s", "s", 1, FailBadPiece, t0)
	s.Leave("t", "nobody")
	s.Leave("nope", "s")
	s.RemoveTask("nope")
	mustCheck(t, s)
	if s.Joined("t", "nobody") || !s.Joined("t", "s") || s.Joined("nope", "s") {
		t.Fatal("Joined wrong")
	}
	if len(s.bad) != 0 {
		t.Fatal("unknown child's report had an effect")
	}
}

// TestRarestFirst: the piece with the fewest holders comes first.
func TestRarestFirst(t *testing.T) {
	// Piece 3 has 1 holder, 2 has 2, 1 has 3, 0 has 4.
	s := setup(t, Config{Seed: 3}, 4,
		joinSpec{"p1", false, bits(4, 0, 1, 2, 3)},
		joinSpec{"p2", false, bits(4, 0, 1, 2)},
		joinSpec{"p3", false, bits(4, 0, 1)},
		joinSpec{"p4", false, bits(4, 0)},
		joinSpec{"a", false, nil},
	)
	got := s.Schedule("t", "a", 4, t0)
	var order []int
	for _, a := range got {
		order = append(order, a.Piece)
	}
	if fmt.Sprint(order) != "[3 2 1 0]" {
		t.Fatalf("order %v, want rarest first [3 2 1 0]", order)
	}
	mustCheck(t, s)
}

// TestRandomTieBreak: children asking for one piece among equally rare ones
// do not all pick the same piece.
func TestRandomTieBreak(t *testing.T) {
	const pieces, children = 16, 64
	peers := []joinSpec{{"s", true, all(pieces)}}
	for i := range children {
		peers = append(peers, joinSpec{fmt.Sprintf("c%d", i), false, nil})
	}
	s := setup(t, Config{Seed: 5, MaxSeedUploads: 1000}, pieces, peers...)
	seen := map[int]int{}
	for i := range children {
		got := s.Schedule("t", fmt.Sprintf("c%d", i), 1, t0)
		if len(got) != 1 {
			t.Fatalf("child %d: %v", i, got)
		}
		seen[got[0].Piece]++
		// Undo, so every child sees the same rarity.
		s.release("t", fmt.Sprintf("c%d", i))
	}
	if len(seen) < pieces/2 {
		t.Fatalf("children picked only %d distinct pieces of %d: %v", len(seen), pieces, seen)
	}
}

// TestParentChoice covers least-loaded, peers-before-seeds, seed fallback and
// capacity.
func TestParentChoice(t *testing.T) {
	cfg := Config{Seed: 9, MaxParentUploads: 2, MaxSeedUploads: 3}
	t.Run("peer preferred over seed", func(t *testing.T) {
		s := setup(t, cfg, 1, joinSpec{"s", true, all(1)}, joinSpec{"p", false, all(1)}, joinSpec{"a", false, nil})
		got := s.Schedule("t", "a", 1, t0)
		if len(got) != 1 || got[0].Parent != "p" {
			t.Fatalf("got %v, want parent p", got)
		}
	})
	t.Run("seed when peers are full", func(t *testing.T) {
		s := setup(t, cfg, 1, joinSpec{"s", true, all(1)}, joinSpec{"p", false, all(1)},
			joinSpec{"a", false, nil}, joinSpec{"b", false, nil}, joinSpec{"c", false, nil})
		var parents []string
		for _, c := range []string{"a", "b", "c"} {
			for _, a := range s.Schedule("t", c, 1, t0) {
				parents = append(parents, a.Parent)
			}
		}
		if fmt.Sprint(parents) != "[p p s]" {
			t.Fatalf("parents %v, want [p p s]", parents)
		}
		mustCheck(t, s)
	})
	t.Run("least loaded peer", func(t *testing.T) {
		s := setup(t, Config{Seed: 9, MaxParentUploads: 4}, 2,
			joinSpec{"p", false, all(2)}, joinSpec{"q", false, bits(2, 1)},
			joinSpec{"a", false, nil}, joinSpec{"b", false, nil})
		// a takes piece 0 (rarest, only p) -> p has load 1.
		if got := s.Schedule("t", "a", 1, t0); len(got) != 1 || got[0] != (Assignment{0, "p"}) {
			t.Fatalf("a got %v", got)
		}
		// b wants piece 1 held by p (load 1) and q (load 0): q.
		got := s.Schedule("t", "b", 2, t0)
		m := map[int]string{}
		for _, a := range got {
			m[a.Piece] = a.Parent
		}
		if m[1] != "q" || m[0] != "p" {
			t.Fatalf("b got %v, want piece 1 from q", got)
		}
	})
	t.Run("everyone full", func(t *testing.T) {
		s := setup(t, Config{Seed: 9, MaxSeedUploads: 1}, 2, joinSpec{"s", true, all(2)},
			joinSpec{"a", false, nil}, joinSpec{"b", false, nil})
		if got := s.Schedule("t", "a", 2, t0); len(got) != 1 {
			t.Fatalf("a got %v, want 1 (seed capacity 1)", got)
		}
		if got := s.Schedule("t", "b", 2, t0); len(got) != 0 {
			t.Fatalf("b got %v, want none", got)
		}
		s.Done("t", "a", []int{0, 1}, t0) // frees the seed
		if got := s.Schedule("t", "b", 2, t0); len(got) != 2 {
			t.Fatalf("b got %v after a finished, want 2 (from a; capacity 8)", got)
		}
		mustCheck(t, s)
	})
	t.Run("sampling never hides the seed", func(t *testing.T) {
		// 40 full peers and the seed hold the piece; k=4 samples only peers.
		peers := []joinSpec{{"s", true, all(1)}, {"a", false, nil}}
		for i := range 40 {
			peers = append(peers, joinSpec{fmt.Sprintf("p%d", i), false, all(1)})
		}
		s := setup(t, Config{Seed: 9, CandidateSample: 4, MaxParentUploads: 1}, 1, peers...)
		for i := range 40 {
			s.tasks["t"].peers[fmt.Sprintf("p%d", i)].load = 1 // full (test-only poke)
		}
		got := s.Schedule("t", "a", 1, t0)
		if len(got) != 1 || got[0].Parent != "s" {
			t.Fatalf("got %v, want the seed", got)
		}
	})
}

func TestDone(t *testing.T) {
	s := setup(t, Config{Seed: 1}, 4, joinSpec{"s", true, all(4)}, joinSpec{"a", false, nil})
	got := s.Schedule("t", "a", 4, t0)
	if len(got) != 4 || s.load("t", "s") != 4 {
		t.Fatalf("got %v load %d", got, s.load("t", "s"))
	}
	s.Done("t", "a", []int{0, 1}, t0)
	s.Done("t", "a", []int{0, 1}, t0) // duplicate: no effect
	mustCheck(t, s)
	if s.load("t", "s") != 2 || !s.holds("t", "a", 0) || !s.holds("t", "a", 1) {
		t.Fatalf("load %d", s.load("t", "s"))
	}
	// a already serves what it has: a new child c gets pieces 0,1 from a.
	s.Join("t", "c", false, nil, t0)
	for _, as := range s.Schedule("t", "c", 4, t0) {
		if (as.Piece < 2) != (as.Parent == "a") {
			t.Fatalf("assignment %v", as)
		}
	}
	// Done for a piece never assigned also counts as held.
	s.Done("t", "c", []int{3}, t0)
	s.Done("t", "a", []int{2, 3}, t0)
	tv, pv, _ := s.Task("t")
	if tv.Complete != 2 {
		t.Fatalf("complete %d, want 2", tv.Complete)
	}
	// s served 0-3 to a and 3 to c; 2 is still in flight to c.
	if pv[2].Peer != "s" || pv[2].Uploads != 5 || pv[2].Inflight != 1 {
		t.Fatalf("seed view %+v", pv[2])
	}
	mustCheck(t, s)
}

func TestJoinHaveIsAuthoritative(t *testing.T) {
	s := setup(t, Config{Seed: 1}, 4, joinSpec{"s", true, all(4)}, joinSpec{"a", false, bits(4, 0, 1)})
	s.Schedule("t", "a", 4, t0) // 2 and 3 in flight
	// a restarts: it lost piece 0, finished 3.
	if err := s.Join("t", "a", false, bits(4, 1, 3), t0); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, s)
	if s.holds("t", "a", 0) || !s.holds("t", "a", 1) || !s.holds("t", "a", 3) || s.load("t", "s") != 1 {
		t.Fatalf("state after re-join: load %d", s.load("t", "s"))
	}
	// seed flag can change.
	s.Join("t", "a", true, nil, t0)
	tv, _, _ := s.Task("t")
	if tv.Seeds != 2 {
		t.Fatalf("seeds %d", tv.Seeds)
	}
	s.Join("t", "s", false, nil, t0)
	mustCheck(t, s)
}

func TestFailures(t *testing.T) {
	cfg := Config{Seed: 2, FailureBlock: 30 * time.Second, BadPieceBlock: 5 * time.Minute}
	type check struct {
		child   string
		at      time.Duration
		parents []string // allowed parents for piece 0 (nil = none)
	}
	tests := []struct {
		name    string
		reports []struct {
			child string
			why   FailReason
		}
		checks []check
		heldBy bool // whether "p" still holds piece 0 after the reports
	}{
		{
			name: "other blocks only that child, then expires",
			reports: []struct {
				child string
				why   FailReason
			}{{"a", FailOther}},
			checks: []check{{"a", 0, []string{"s"}}, {"b", 0, []string{"p"}}, {"a", 31 * time.Second, []string{"p"}}},
			heldBy: true,
		},
		{
			name: "one unreachable report blocks one child",
			reports: []struct {
				child string
				why   FailReason
			}{{"a", FailUnreachable}},
			checks: []check{{"a", 0, []string{"s"}}, {"b", 0, []string{"p"}}},
			heldBy: true,
		},
		{
			name: "two unreachable reports block everyone",
			reports: []struct {
				child string
				why   FailReason
			}{{"a", FailUnreachable}, {"b", FailUnreachable}},
			checks: []check{{"c", 0, []string{"s"}}, {"c", 31 * time.Second, []string{"p"}}},
			heldBy: true,
		},
		{
			name: "same child twice is one reporter",
			reports: []struct {
				child string
				why   FailReason
			}{{"a", FailUnreachable}, {"a", FailUnreachable}},
			checks: []check{{"c", 0, []string{"p"}}},
			heldBy: true,
		},
		{
			name: "bad pieces reported by two children block everyone for BadPieceBlock",
			reports: []struct {
				child string
				why   FailReason
			}{{"a", FailBadPiece}, {"b", FailBadPiece}},
			// p no longer holds 0, but also cannot serve piece 1.
			checks: []check{{"c", 0, []string{"s"}}, {"c", 4 * time.Minute, []string{"s"}}},
			heldBy: false,
		},
		{
			name: "one bad-piece report blocks the parent for the reporter only",
			reports: []struct {
				child string
				why   FailReason
			}{{"a", FailBadPiece}, {"a", FailBadPiece}},
			checks: []check{{"a", 0, []string{"s"}}, {"c", 0, []string{"p", "s"}}},
			heldBy: false,
		},
		{
			name: "not found drops the holding, no block",
			reports: []struct {
				child string
				why   FailReason
			}{{"a", FailNotFound}},
			checks: []check{{"a", 0, []string{"s"}}},
			heldBy: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := setup(t, cfg, 2, joinSpec{"s", true, all(2)}, joinSpec{"p", false, all(2)},
				joinSpec{"a", false, nil}, joinSpec{"b", false, nil}, joinSpec{"c", false, nil})
			for _, r := range tt.reports {
				s.Failed("t", r.child, "p", 0, r.why, t0)
				mustCheck(t, s)
			}
			if got := s.holds("t", "p", 0); got != tt.heldBy {
				t.Fatalf("p holds piece 0 = %v, want %v", got, tt.heldBy)
			}
			for _, c := range tt.checks {
				now := t0.Add(c.at)
				for _, id := range []string{"s", "p", "a", "b", "c"} {
					s.Join("t", id, id == "s", nil, now) // keep alive
				}
				s.Tick(now)
				got := s.Schedule("t", c.child, 2, now)
				for _, a := range got {
					if a.Piece != 0 {
						continue
					}
					ok := false
					for _, p := range c.parents {
						ok = ok || a.Parent == p
					}
					if !ok {
						t.Fatalf("at %v child %s got %v, allowed parents %v", c.at, c.child, got, c.parents)
					}
				}
				if len(got) == 0 {
					t.Fatalf("at %v child %s got nothing", c.at, c.child)
				}
				s.release("t", c.child)
				mustCheck(t, s)
			}
			_, pv, _ := s.Task("t")
			for _, v := range pv {
				if v.Peer == "p" && v.Failures != len(tt.reports) {
					t.Fatalf("failures %d", v.Failures)
				}
			}
		})
	}
}

func TestBadPieceBlocksAcrossTasksAndExpires(t *testing.T) {
	s := New(Config{Seed: 4})
	s.AddTask("t", 1)
	s.AddTask("u", 1)
	for _, tk := range []string{"t", "u"} {
		s.Join(tk, "p", false, all(1), t0)
		s.Join(tk, "a", false, nil, t0)
	}
	s.Join("t", "b", false, nil, t0)
	s.Failed("t", "a", "p", 0, FailBadPiece, t0)
	if n := s.BlockedParents(t0); n != 0 {
		t.Fatalf("BlockedParents after one report = %d", n)
	}
	s.Failed("t", "b", "p", 0, FailBadPiece, t0)
	if n := s.BlockedParents(t0); n != 1 {
		t.Fatalf("BlockedParents after two reporters = %d, want 1", n)
	}
	if got := s.Schedule("u", "a", 1, t0); len(got) != 0 {
		t.Fatalf("bad parent used in another task: %v", got)
	}
	later := t0.Add(5*time.Minute + time.Second)
	if n := s.BlockedParents(later); n != 0 {
		t.Fatalf("BlockedParents after the block ran out = %d", n)
	}
	s.Join("u", "p", false, nil, later)
	s.Join("u", "a", false, nil, later)
	s.Tick(later)
	if len(s.bad) != 0 {
		t.Fatal("block not expired")
	}
	if got := s.Schedule("u", "a", 1, later); len(got) != 1 {
		t.Fatalf("got %v after the block expired", got)
	}
}

// A lying member cannot cut a task off from its seed.
func TestBadPieceReportsNeverBlockSeedForOthers(t *testing.T) {
	s := setup(t, Config{Seed: 5}, 2, joinSpec{"s", true, all(2)}, joinSpec{"liar", false, nil}, joinSpec{"b", false, nil}, joinSpec{"c", false, nil})
	s.Failed("t", "liar", "s", 0, FailBadPiece, t0)
	s.Failed("t", "b", "s", 0, FailBadPiece, t0)
	if got := s.Schedule("t", "c", 2, t0); len(got) != 2 || got[0].Parent != "s" {
		t.Fatalf("honest child lost the seed: %v", got)
	}
	if got := s.Schedule("t", "liar", 2, t0); len(got) != 0 {
		t.Fatalf("reporter still sent to the parent it reported: %v", got)
	}
	mustCheck(t, s)
}

func TestFailedFreesAssignment(t *testing.T) {
	s := setup(t, Config{Seed: 1}, 2, joinSpec{"s", true, all(2)}, joinSpec{"a", false, nil})
	s.Schedule("t", "a", 2, t0)
	s.Failed("t", "a", "s", 0, FailOther, t0)
	if s.load("t", "s") != 1 {
		t.Fatalf("load %d", s.load("t", "s"))
	}
	// Self report: frees, nothing else.
	s.Failed("t", "a", "a", 1, FailBadPiece, t0)
	if s.load("t", "s") != 0 || len(s.bad) != 0 {
		t.Fatal("self report")
	}
	// Reports from two children against a parent that already left still
	// block it.
	s.Join("t", "b", false, nil, t0)
	s.Failed("t", "a", "gone", 0, FailBadPiece, t0)
	s.Failed("t", "b", "gone", 0, FailBadPiece, t0)
	if _, ok := s.bad["gone"]; !ok {
		t.Fatal("no block for departed parent")
	}
	mustCheck(t, s)
}

func TestTTL(t *testing.T) {
	cfg := Config{Seed: 1, PeerTTL: 2 * time.Minute, AssignmentTimeout: time.Minute}
	s := setup(t, cfg, 4, joinSpec{"s", true, all(4)}, joinSpec{"a", false, nil}, joinSpec{"b", false, bits(4, 0)})
	s.Schedule("t", "a", 2, t0)
	// Assignments time out.
	s.Join("t", "a", false, nil, t0.Add(61*time.Second))
	s.Join("t", "s", true, nil, t0.Add(61*time.Second))
	s.Tick(t0.Add(61 * time.Second))
	mustCheck(t, s)
	if tv, _, _ := s.Task("t"); tv.Inflight != 0 || s.load("t", "s") != 0 {
		t.Fatalf("assignments not expired: %+v", tv)
	}
	// b sent nothing for 2m: forgotten with its holdings.
	s.Tick(t0.Add(2*time.Minute + time.Second))
	mustCheck(t, s)
	if s.Joined("t", "b") || !s.Joined("t", "a") {
		t.Fatal("wrong peers expired")
	}
	if len(s.tasks["t"].holders[0]) != 1 {
		t.Fatal("expired peer still a holder")
	}
	// Expired peer in flight as a parent: the child's assignment survives
	// until reported, the load on the forgotten struct is harmless.
	s.Join("t", "b", false, all(4), t0.Add(3*time.Minute))
	if !s.Joined("t", "b") {
		t.Fatal("re-join after expiry")
	}
	s.Leave("t", "s")
	mustCheck(t, s)
	tv, _, _ := s.Task("t")
	if tv.Seeds != 0 || tv.Peers != 2 || tv.Complete != 1 {
		t.Fatalf("view %+v", tv)
	}
}

func TestLeaveWhileParentInFlight(t *testing.T) {
	s := setup(t, Config{Seed: 1}, 2, joinSpec{"p", false, all(2)}, joinSpec{"a", false, nil})
	s.Schedule("t", "a", 2, t0)
	s.Leave("t", "p")
	mustCheck(t, s)
	s.Join("t", "p", false, all(2), t0) // back, fresh state
	s.Done("t", "a", []int{0}, t0)      // frees the old struct's load
	s.Failed("t", "a", "p", 1, FailOther, t0)
	mustCheck(t, s)
	if s.load("t", "p") != 0 {
		t.Fatalf("load %d", s.load("t", "p"))
	}
}

func TestViews(t *testing.T) {
	s := New(Config{Seed: 1})
	s.AddTask("b", 2)
	s.AddTask("a", 0)
	s.Join("b", "x", true, all(2), t0)
	s.Join("b", "y", false, nil, t0)
	s.Join("a", "y", false, nil, t0)
	s.Schedule("b", "y", 1, t0)
	tasks := s.Tasks()
	if len(tasks) != 2 || tasks[0].Task != "a" || tasks[0].Complete != 1 {
		t.Fatalf("tasks %+v", tasks)
	}
	want := TaskView{Task: "b", Pieces: 2, Peers: 2, Seeds: 1, Complete: 1, Inflight: 1}
	if tasks[1] != want {
		t.Fatalf("task b %+v, want %+v", tasks[1], want)
	}
	peers := s.Peers()
	if len(peers) != 3 || peers[0].Peer != "x" || peers[1].Task != "a" || peers[2].Task != "b" {
		t.Fatalf("peers %+v", peers)
	}
	if p := peers[0]; !p.Seed || p.Held != 2 || p.Inflight != 1 || p.Capacity != 32 || !p.LastSeen.Equal(t0) {
		t.Fatalf("seed view %+v", p)
	}
	if p := peers[2]; p.Downloading != 1 {
		t.Fatalf("child view %+v", p)
	}
	if _, _, ok := s.Task("zzz"); ok {
		t.Fatal("unknown task found")
	}
	s.RemoveTask("b")
	s.Leave("a", "y")
	mustCheck(t, s)
	if len(s.Peers()) != 0 || s.Tasks()[0].Complete != 0 {
		t.Fatalf("after removal: %+v %+v", s.Peers(), s.Tasks())
	}
}

func TestFailReasonString(t *testing.T) {
	for r, want := range map[FailReason]string{FailOther: "other", FailUnreachable: "unreachable",
		FailBadPiece: "bad-piece", FailNotFound: "not-found", 42: "FailReason(42)"} {
		if r.String() != want {
			t.Errorf("%d: %q", int(r), r.String())
		}
	}
}

// Peers that start together do not all take a new piece from the seed: at
// most SeedCopies do, the rest get it from them.
func TestSeedCopiesLimit(t *testing.T) {
	s := setup(t, Config{Seed: 9, SeedCopies: 2}, 1, joinSpec{"s", true, all(1)},
		joinSpec{"a", false, nil}, joinSpec{"b", false, nil}, joinSpec{"c", false, nil}, joinSpec{"d", false, nil})
	var from []string
	for _, c := range []string{"a", "b", "c", "d"} {
		for _, a := range s.Schedule("t", c, 1, t0) {
			from = append(from, c+"<-"+a.Parent)
		}
	}
	if len(from) != 2 {
		t.Fatalf("assignments %v: want 2 copies from the seed", from)
	}
	mustCheck(t, s)
	child := strings.Split(from[0], "<-")[0]
	s.Done("t", child, []int{0}, t0)
	var waiting string
	for _, c := range []string{"a", "b", "c", "d"} {
		if !strings.Contains(strings.Join(from, ","), c+"<-") {
			waiting = c
			break
		}
	}
	got := s.Schedule("t", waiting, 1, t0)
	if len(got) != 1 || got[0].Parent != child {
		t.Fatalf("%s got %v, want the piece from %s", waiting, got, child)
	}
	mustCheck(t, s)
}
