package preheat

import (
	"context"
	"testing"
	"time"
)

func TestFIFOGrantsInOrder(t *testing.T) {
	f := newFIFO(1)
	first := f.take()
	places := []chan struct{}{f.take(), f.take(), f.take()}
	if !f.wait(context.Background(), first) {
		t.Fatal("first place not granted")
	}
	// The second gives up while waiting: its turn goes to the third.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if f.wait(ctx, places[0]) {
		t.Fatal("a cancelled wait was granted")
	}
	for _, p := range places[1:] {
		select {
		case <-p:
			t.Fatal("granted before the slot was released")
		default:
		}
		f.release()
		select {
		case <-p:
		case <-time.After(time.Second):
			t.Fatal("the oldest waiter was not granted the released slot")
		}
	}
	f.release()
	if f.free != 1 || len(f.waiters) != 0 {
		t.Fatalf("free %d, waiters %d; want 1, 0", f.free, len(f.waiters))
	}
	// Granted, but the context has ended when the job waits: either the
	// wait reports the grant (the caller releases) or it passes the slot on.
	// Both leave the next place granted.
	g := f.take()
	h := f.take()
	if f.wait(ctx, g) {
		f.release()
	}
	select {
	case <-h:
	default:
		t.Fatal("the slot given up was not passed on")
	}
	f.release()
	if f.free != 1 || len(f.waiters) != 0 {
		t.Fatalf("free %d, waiters %d; want 1, 0", f.free, len(f.waiters))
	}
}
