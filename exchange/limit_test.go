package exchange

import (
	"context"
	"testing"
	"time"

	"github.com/dfp2p/dfp2p/internal/limit"
)

// fetchTimed fetches 4 pieces of piece bytes from a server and returns the
// rate.
func fetchTimed(t *testing.T, piece int, sopts []ServerOption, copts []ClientOption) float64 {
	t.Helper()
	srvH, cliH := pair(t)
	src := newFakeSource(t)
	srv := NewServer(srvH, src, sopts...)
	defer srv.Close()
	var refs []PieceRef
	for i := range 4 {
		refs = append(refs, src.add(t, testTask, i, randBytes(uint64(i), piece)))
	}
	var col collector
	start := time.Now()
	for _, r := range NewClient(cliH, copts...).Fetch(context.Background(), srvH.ID(), refs, col.deliver) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	return float64(4*piece) / time.Since(start).Seconds()
}

// The server's upload limit and the client's download limit each hold a
// transfer of about 3 s to the limit within 10%. The limit is 4 MiB/s, or an
// eighth of what this machine moves unlimited if that is less (under -race
// a loopback libp2p stream may move only a few MiB/s).
func TestRateLimits(t *testing.T) {
	free := fetchTimed(t, 1<<20, nil, nil)
	rate := int64(min(4<<20, free/8))
	t.Logf("unlimited: %.2f MiB/s; limit %.2f MiB/s", free/(1<<20), float64(rate)/(1<<20))
	if rate < 128<<10 {
		t.Skipf("this machine moves only %.2f MiB/s unlimited", free/(1<<20))
	}
	piece := int(3 * rate / 4)
	for name, got := range map[string]float64{
		"upload":   fetchTimed(t, piece, []ServerOption{WithUploadLimit(limit.New(rate))}, nil),
		"download": fetchTimed(t, piece, nil, []ClientOption{WithDownloadLimit(limit.New(rate))}),
	} {
		t.Logf("%s: %.2f MiB/s (%+.1f%%)", name, got/(1<<20), 100*(got-float64(rate))/float64(rate))
		if got < 0.9*float64(rate) || got > 1.1*float64(rate) {
			t.Errorf("%s: %.2f MiB/s, want %.2f MiB/s ±10%%", name, got/(1<<20), float64(rate)/(1<<20))
		}
	}
}
