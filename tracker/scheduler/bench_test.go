package scheduler

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

const (
	benchPeers  = 10000
	benchPieces = 256
)

// benchSwarm builds one task of benchPieces pieces with one full seed and
// benchPeers peers whose holdings are spread realistically: each peer's
// progress is uniform in [0,1), and pieces are skewed so that some are rare
// and some common (piece i is held with probability progress*w(i)).
func benchSwarm(b *testing.B) (*Scheduler, []string, time.Time) {
	b.Helper()
	return benchSwarmLoc(b, 0, 0)
}

// benchSwarmLoc is benchSwarm with the peers spread round-robin over regions
// (if > 0) of zones zones each; the seed is in the first.
func benchSwarmLoc(b *testing.B, regions, zones int) (*Scheduler, []string, time.Time) {
	b.Helper()
	s := New(Config{Seed: 1})
	s.AddTask("t", benchPieces)
	now := t0
	if err := s.Join("t", "seed", true, all(benchPieces), now); err != nil {
		b.Fatal(err)
	}
	if regions > 0 {
		s.SetLocality("t", "seed", Locality{"r0", "z0"})
	}
	rng := rand.New(rand.NewPCG(3, 4))
	ids := make([]string, benchPeers)
	have := make([]bool, benchPieces)
	for i := range ids {
		ids[i] = fmt.Sprintf("12D3KooWpeer%06d", i)
		progress := rng.Float64()
		for j := range have {
			w := 0.3 + 1.4*float64(j)/benchPieces // 0.3 .. 1.7
			have[j] = rng.Float64() < progress*w
		}
		if err := s.Join("t", ids[i], false, have, now); err != nil {
			b.Fatal(err)
		}
		if regions > 0 {
			s.SetLocality("t", ids[i], Locality{fmt.Sprintf("r%d", i%regions), fmt.Sprintf("z%d", i/regions%zones)})
		}
	}
	return s, ids, now
}

// BenchmarkDone: one piece report per op, each completing an assignment
// handed out by Schedule (refilled, untimed, when used up).
func BenchmarkDone(b *testing.B) {
	s, ids, now := benchSwarm(b)
	type rep struct {
		peer  string
		piece []int
	}
	var queue []rep
	refill := func() {
		queue = queue[:0]
		for _, id := range ids {
			for _, a := range s.Schedule("t", id, 8, now) {
				queue = append(queue, rep{id, []int{a.Piece}})
			}
		}
		rand.New(rand.NewPCG(5, 6)).Shuffle(len(queue), func(i, j int) { queue[i], queue[j] = queue[j], queue[i] })
		if len(queue) == 0 { // swarm complete: start over
			s, ids, now = benchSwarm(b)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		if len(queue) == 0 {
			b.StopTimer()
			for len(queue) == 0 {
				refill()
			}
			b.StartTimer()
		}
		r := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		s.Done("t", r.peer, r.piece, now)
		i++
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reports/s")
}

// BenchmarkSchedule: one Schedule(max=8) per op for a random peer, in a
// steady state where every peer keeps a window of up to 8 pieces in flight
// (so parents carry real load). Before each call the peer's previous window
// is released, keeping the holdings distribution stationary.
func BenchmarkSchedule(b *testing.B) {
	benchSchedule(b, 0, 0)
}

// BenchmarkScheduleRegions: BenchmarkSchedule with the peers in 3 regions of
// 2 zones each.
func BenchmarkScheduleRegions(b *testing.B) {
	benchSchedule(b, 3, 2)
}

func benchSchedule(b *testing.B, regions, zones int) {
	s, ids, now := benchSwarmLoc(b, regions, zones)
	for _, id := range ids {
		s.Schedule("t", id, 8, now)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	order := make([]int, 1<<16)
	for i := range order {
		order[i] = rng.IntN(len(ids))
	}
	got := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := ids[order[i&(len(order)-1)]]
		s.release("t", id)
		got += len(s.Schedule("t", id, 8, now))
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
	b.ReportMetric(float64(got)/float64(b.N), "assignments/op")
}
