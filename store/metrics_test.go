package store

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dfp2p/dfp2p/internal/metricstest"
)

func TestMetricsMove(t *testing.T) {
	clk := newClock()
	s, _, fs := gcStore(t, clk, []int64{ps, 2 * ps}, WithTTL(time.Hour), WithWatermarks(1, 1))
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Collectors()...)
	names := []string{"dfp2p_cache_bytes", "dfp2p_cache_tasks"}
	want := func(bytes, tasks int64) {
		t.Helper()
		if got := metricstest.Value(t, reg, "dfp2p_cache_bytes", nil); got != float64(bytes) {
			t.Fatalf("dfp2p_cache_bytes = %v, want %d", got, bytes)
		}
		if got := metricstest.Value(t, reg, "dfp2p_cache_tasks", nil); got != float64(tasks) {
			t.Fatalf("dfp2p_cache_tasks = %v, want %d", got, tasks)
		}
	}
	want(3*ps, 2)
	if n, err := testutil.GatherAndCount(reg, names...); err != nil || n != 2 {
		t.Fatalf("gauges: %d, %v", n, err)
	}

	// A dry run is not a run.
	if _, err := s.GC(true); err != nil {
		t.Fatal(err)
	}
	if v := testutil.ToFloat64(s.gcm.runs); v != 0 {
		t.Fatalf("runs after a dry run = %v", v)
	}
	clk.Advance(2 * time.Hour)
	if err := s.Touch(fs[1].id); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GC(false); err != nil {
		t.Fatal(err)
	}
	if v := testutil.ToFloat64(s.gcm.runs); v != 1 {
		t.Fatalf("dfp2p_gc_runs_total = %v, want 1", v)
	}
	if v := testutil.ToFloat64(s.gcm.removed.WithLabelValues(ReasonTTL)); v != 1 {
		t.Fatalf("dfp2p_gc_removed_tasks_total{reason=ttl} = %v, want 1", v)
	}
	if v := testutil.ToFloat64(s.gcm.removed.WithLabelValues(ReasonWatermark)); v != 0 {
		t.Fatalf("dfp2p_gc_removed_tasks_total{reason=watermark} = %v, want 0", v)
	}
	if v := testutil.ToFloat64(s.gcm.removedBytes); v != float64(ps) {
		t.Fatalf("dfp2p_gc_removed_bytes_total = %v, want %d", v, ps)
	}
	want(2*ps, 1)
}
