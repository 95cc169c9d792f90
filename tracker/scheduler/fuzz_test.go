package scheduler

import (
	"math/rand/v2"
	"testing"
	"time"
)

// FuzzEvents feeds random event sequences over a small universe (2 tasks, 6
// peers, up to 8 pieces, 3 regions x 2 zones plus unknown labels) and checks
// every invariant after each event, plus the properties of every Schedule
// answer.
func FuzzEvents(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	f.Add([]byte{0x10, 0xff, 0x21, 0x03, 0x42, 0x07, 0x33, 0x50, 0x61, 0x72, 0x05, 0x44, 0x80})
	f.Add([]byte("seed joins, peers schedule and report, someone fails, time passes"))
	f.Fuzz(runEvents)
}

// TestRandomEvents runs the fuzz body on pseudo-random event sequences, so
// that plain go test explores more than the seed corpus.
func TestRandomEvents(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	data := make([]byte, 3000)
	for range 200 {
		for i := range data {
			data[i] = byte(rng.IntN(256))
		}
		runEvents(t, data)
	}
}

func runEvents(t *testing.T, data []byte) {
	peers := []string{"a", "b", "c", "d", "e", "f"}
	tasks := []string{"t", "u"}
	locs := []Locality{{}, {"", "z1"}, {"r1", ""}}
	for _, r := range []string{"r1", "r2", "r3"} {
		locs = append(locs, Locality{r, "z1"}, Locality{r, "z2"})
	}
	s := New(Config{Seed: 1, MaxParentUploads: 2, MaxSeedUploads: 3, CandidateSample: 2,
		FailureBlock: 3 * time.Second, BadPieceBlock: 7 * time.Second,
		PeerTTL: 10 * time.Second, AssignmentTimeout: 5 * time.Second})
	now := t0
	next := func() int {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return int(b)
	}
	for len(data) > 0 {
		op := next()
		tk := tasks[op>>7&1]
		p := peers[(op>>4)%len(peers)]
		arg := next()
		switch op % 11 {
		case 0:
			s.AddTask(tk, arg%9)
		case 1:
			var have []bool
			if arg&1 == 1 {
				if tt := s.tasks[tk]; tt != nil {
					have = make([]bool, tt.pieces)
					for i := range have {
						have[i] = next()&1 == 1
					}
				}
			}
			_ = s.Join(tk, p, arg&2 == 2, have, now)
		case 2:
			var pcs []int
			for range arg % 4 {
				pcs = append(pcs, next()%10-1)
			}
			s.Done(tk, p, pcs, now)
		case 3:
			s.Failed(tk, p, peers[arg%len(peers)], next()%10-1, FailReason(arg>>4%5), now)
		case 4, 5:
			max := arg%6 - 1
			tt := s.tasks[tk]
			var before []int32
			if tt != nil && tt.peers[p] != nil {
				before = append(before, tt.peers[p].st...)
			}
			got := s.Schedule(tk, p, max, now)
			if len(got) > max && len(got) > 0 {
				t.Fatalf("%d assignments for max %d", len(got), max)
			}
			seen := map[int]bool{}
			for _, a := range got {
				if a.Parent == p {
					t.Fatalf("self assignment %v", a)
				}
				if before[a.Piece] != stMissing || seen[a.Piece] {
					t.Fatalf("piece %d held, in flight or repeated", a.Piece)
				}
				seen[a.Piece] = true
				par := tt.peers[a.Parent]
				if par == nil || par.st[a.Piece] < 0 {
					t.Fatalf("parent %s does not hold piece %d", a.Parent, a.Piece)
				}
				if par.load > s.capacity(par) {
					t.Fatalf("parent %s over capacity", a.Parent)
				}
				if now.Sub(par.lastSeen) > s.cfg.PeerTTL {
					t.Fatalf("expired parent %s used", a.Parent)
				}
			}
		case 6:
			s.Leave(tk, p)
		case 7:
			now = now.Add(time.Duration(arg%16) * time.Second)
			s.Tick(now)
		case 8:
			if arg%8 == 0 {
				s.RemoveTask(tk)
			}
		case 9:
			s.Tasks()
			s.Peers()
			s.Task(tk)
		case 10:
			s.SetLocality(tk, p, locs[arg%len(locs)])
		}
		if err := s.check(); err != nil {
			t.Fatalf("after op %d: %v", op%11, err)
		}
	}
}
