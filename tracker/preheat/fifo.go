package preheat

import (
	"context"
	"sync"
)

// fifo is a counting semaphore that grants its slots in the order places
// were taken: pending jobs start in the order they were submitted, whatever
// order their goroutines happen to run in.
type fifo struct {
	mu      sync.Mutex
	free    int
	waiters []chan struct{} // closed when granted
}

func newFIFO(n int) *fifo { return &fifo{free: n} }

// take queues a place now; wait on it later.
func (f *fifo) take() chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan struct{})
	if f.free > 0 && len(f.waiters) == 0 {
		f.free--
		close(ch)
		return ch
	}
	f.waiters = append(f.waiters, ch)
	return ch
}

// wait blocks until the place is granted (true) or ctx ends (false; the
// place is given up, and a slot granted meanwhile passed on).
func (f *fifo) wait(ctx context.Context, place chan struct{}) bool {
	select {
	case <-place:
		return true
	case <-ctx.Done():
	}
	f.mu.Lock()
	for i, w := range f.waiters {
		if w == place {
			f.waiters = append(f.waiters[:i], f.waiters[i+1:]...)
			f.mu.Unlock()
			return false
		}
	}
	f.mu.Unlock()
	f.release() // granted while ctx ended: pass the slot on
	return false
}

// release frees a granted slot: the oldest waiter gets it.
func (f *fifo) release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.waiters) > 0 {
		close(f.waiters[0])
		f.waiters = f.waiters[1:]
		return
	}
	f.free++
}
