package scheduler

import "testing"

func TestAssigned(t *testing.T) {
	s := setup(t, Config{Seed: 1}, 4,
		joinSpec{id: "seed", seed: true, have: all(4)},
		joinSpec{id: "a", have: bits(4, 0, 1)},
		joinSpec{id: "c"})
	as := s.Schedule("t", "c", 4, t0)
	if len(as) != 4 {
		t.Fatalf("got %d assignments, want 4", len(as))
	}
	for _, a := range as {
		got, ok := s.Assigned("t", "c", a.Piece)
		if !ok || got != a.Parent {
			t.Fatalf("Assigned(c, %d) = %q, %v; want %q", a.Piece, got, ok, a.Parent)
		}
	}
	// Read-only: asking twice changes nothing, and the state stays valid.
	mustCheck(t, s)
	for _, tt := range []struct {
		name, task, peer string
		piece            int
	}{
		{"unknown task", "x", "c", 0},
		{"unknown peer", "t", "zz", 0},
		{"negative piece", "t", "c", -1},
		{"piece out of range", "t", "c", 4},
		{"held, not in flight", "t", "a", 0},
		{"missing, not in flight", "t", "a", 2},
	} {
		if p, ok := s.Assigned(tt.task, tt.peer, tt.piece); ok {
			t.Errorf("%s: Assigned = %q, true; want false", tt.name, p)
		}
	}
	// Done frees the assignment: afterwards the piece is held, not assigned.
	s.Done("t", "c", []int{as[0].Piece}, t0)
	if _, ok := s.Assigned("t", "c", as[0].Piece); ok {
		t.Fatal("piece still assigned after Done")
	}
	// The other assignments moved in c.inflight (swap-remove) and still
	// answer with their own parents.
	for _, a := range as[1:] {
		if got, ok := s.Assigned("t", "c", a.Piece); !ok || got != a.Parent {
			t.Fatalf("after Done: Assigned(c, %d) = %q, %v; want %q", a.Piece, got, ok, a.Parent)
		}
	}
	mustCheck(t, s)
}
