package cdn

import (
	"context"
	"testing"
	"time"

	"github.com/dfp2p/dfp2p/internal/limit"
)

// Origin reads through WithRateLimit, over parallel ranges, keep to the
// smallest limit of the group within 10%, and the stall timeout (1 s here)
// does not fire while reads wait for the limit.
func TestFetchRateLimit(t *testing.T) {
	const size, rate = 12 << 20, 4 << 20
	o := &origin{data: testData(size, 7), ranges: true}
	srv := start(t, o)
	st := newFakeStore(t)
	u := srv.URL + "/f"
	f := newTestFetcher(t, st, WithRateLimit(limit.Group{limit.New(64 << 20), limit.New(rate)}), WithTimeout(time.Second))
	begin := time.Now()
	m, err := f.Fetch(context.Background(), Request{Task: taskFor(u), URL: u}, nil)
	el := time.Since(begin)
	if err != nil {
		t.Fatal(err)
	}
	checkManifest(t, m, taskFor(u), o.data)
	got := float64(size) / el.Seconds()
	t.Logf("12 MiB at a 4 MiB/s limit: %s, %.2f MiB/s", el, got/(1<<20))
	if got < 0.9*rate || got > 1.1*rate {
		t.Fatalf("origin read at %.2f MiB/s, want 4 MiB/s ±10%%", got/(1<<20))
	}
}
