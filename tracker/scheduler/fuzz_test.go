package scheduler

import (
	"testing"
	"time"
)

// FuzzEvents feeds random event sequences over a small universe (2 tasks, 6
// peers, up to 8 pieces) and checks every invariant after each event, plus
// the properties of every Schedule answer.
func FuzzEvents(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	f.Add([]byte{0x10, 0xff, 0x21, 0x03, 0x42, 0x07, 0x33, 0x50, 0x61, 0x72, 0x05, 0x44, 0x80})
	f.Add([]byte("seed joins, peers schedule and report, someone fails, time passes"))
	peers := []string{"a", "b", "c", "d", "e", "f"}
	tasks := []string{"t", "u"}
	f.Fuzz(func(t *testing.T, data []byte) {
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
			switch op % 10 {
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
			}
			if err := s.check(); err != nil {
				t.Fatalf("after op %d: %v", op%10, err)
			}
		}
	})
}
