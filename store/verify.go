package store

import (
	"context"
	"sort"
	"sync"

	"github.com/dfp2p/dfp2p/content"
	"github.com/ipfs/go-cid"
)

// VerifyReport says what VerifyContext found in one task.
type VerifyReport struct {
	Checked int   // held pieces rehashed
	Bad     []int // indices whose bytes did not match their CID, sorted
	// Dropped is how many of Bad were removed from the store by this call
	// (a piece dropped meanwhile by someone else is bad but not counted).
	Dropped int
}

// VerifyContext rehashes every held piece of the task with up to workers
// goroutines (at least one), reading each file through the store's own
// reader, so it decrypts and authenticates pieces of a store encrypted at
// rest. A piece whose bytes do not match its CID, whose file is missing or
// fails authentication is dropped: its file is removed and, under the same
// lock, the task is marked incomplete (the record is written before
// VerifyContext returns). The task is held active (see Acquire) meanwhile,
// so GC does not remove it; downloads and readers go on. When ctx ends, the
// pieces checked so far are reported with ctx's error.
func (s *Store) VerifyContext(ctx context.Context, id content.TaskID, workers int) (VerifyReport, error) {
	var rep VerifyReport
	ts, err := s.lockedTask(id)
	if err != nil {
		return rep, err
	}
	s.active[id]++
	pieces := append([]cid.Cid(nil), ts.pieces...)
	length, pieceSize := ts.rec.Length, ts.rec.PieceSize
	s.mu.Unlock()
	defer s.release(id)

	workers = max(1, workers)
	jobs := make(chan int)
	var (
		mu      sync.Mutex
		firstEr error
		wg      sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				_, n := content.PieceRange(length, pieceSize, i)
				ok, err := s.checkFile(id, i, pieces[i], n)
				mu.Lock()
				if err != nil {
					if firstEr == nil {
						firstEr = err
					}
					mu.Unlock()
					continue
				}
				rep.Checked++
				mu.Unlock()
				if ok {
					continue
				}
				s.mu.Lock()
				dropped := false
				if !s.closed && s.tasks[id] == ts && ts.pieces[i].Equals(pieces[i]) {
					err = s.dropPieceLocked(id, ts, i)
					dropped = true
				}
				s.mu.Unlock()
				mu.Lock()
				rep.Bad = append(rep.Bad, i)
				if dropped {
					rep.Dropped++
				}
				if err != nil && firstEr == nil {
					firstEr = err
				}
				mu.Unlock()
			}
		})
	}
feed:
	for i, c := range pieces {
		if !c.Defined() {
			continue
		}
		mu.Lock()
		stop := firstEr != nil
		mu.Unlock()
		if stop {
			break
		}
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	sort.Ints(rep.Bad)
	if rep.Dropped > 0 {
		s.opts.log.Warn("store: removed corrupt pieces", "task", id.Short(), "pieces", rep.Bad)
		if err := s.persist(id); err != nil && firstEr == nil {
			firstEr = err
		}
	}
	if firstEr == nil {
		firstEr = ctx.Err()
	}
	return rep, firstEr
}
