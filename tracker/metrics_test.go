package tracker

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/internal/metricstest"
)

// TestMetricsMove drives the tracker through a register, schedules, reports
// (done and failed) and checks that each of its metrics moved.
func TestMetricsMove(t *testing.T) {
	tr, origin, data := newTestTracker(t)
	_, a := newPeer(t, tr)
	_, b := newPeer(t, tr)
	ctx := context.Background()
	url := origin.URL + "/f"
	var id content.TaskID
	for _, c := range []*Client{a, b} {
		resp, err := c.Call(ctx, &Request{Type: TypeRegister, URL: url})
		if err != nil {
			t.Fatal(err)
		}
		id = resp.Task
	}
	// One schedule until the seed has a piece; every schedule call is a
	// decision and is timed.
	var as []Assignment
	deadline := time.Now().Add(20 * time.Second)
	calls := 0
	for len(as) == 0 && time.Now().Before(deadline) {
		s, err := a.Call(ctx, &Request{Type: TypeSchedule, Task: id, Max: 2})
		if err != nil {
			t.Fatal(err)
		}
		calls++
		as = s.Assignments
		if len(as) == 0 {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if len(as) == 0 {
		t.Fatal("no assignment")
	}
	if got := testutil.CollectAndCount(tr.m.scheduleSeconds); got != 1 {
		t.Fatalf("schedule histogram series: %d", got)
	}
	if n := metricstest.HistCount(t, tr.Registry(), "dfp2p_tracker_schedule_seconds", nil); n != uint64(calls) {
		t.Fatalf("dfp2p_tracker_schedule_seconds count = %d, want %d (one per schedule call)", n, calls)
	}
	if v := testutil.ToFloat64(tr.m.assignments.WithLabelValues("seed")); v != float64(len(as)) {
		t.Fatalf("dfp2p_tracker_assignments_total{parent=seed} = %v, want %d", v, len(as))
	}
	// Two children report bad pieces from the same (fake) parent: the
	// scheduler blocks it for everyone.
	liar := "12D3KooWLiarLiarLiarLiarLiarLiarLiarLiarLiarLiarLiar"
	if _, err := a.Call(ctx, &Request{Type: TypeReport, Task: id, Done: []int{as[0].Piece},
		Failed: []Failure{{Piece: 1, Parent: liar, Reason: ReasonBadPiece}, {Piece: 1, Parent: liar, Reason: "made-up"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Call(ctx, &Request{Type: TypeReport, Task: id,
		Failed: []Failure{{Piece: 0, Parent: liar, Reason: ReasonBadPiece}, {Piece: 0, Parent: liar, Reason: ReasonUnreachable}}}); err != nil {
		t.Fatal(err)
	}
	for outcome, want := range map[string]float64{"done": 1, ReasonBadPiece: 2, ReasonUnreachable: 1, ReasonOther: 1, ReasonNotFound: 0} {
		if v := testutil.ToFloat64(tr.m.reported.WithLabelValues(outcome)); v != want {
			t.Errorf("dfp2p_tracker_reported_pieces_total{outcome=%q} = %v, want %v", outcome, v, want)
		}
	}
	if _, err := a.Call(ctx, &Request{Type: "bogus-" + string(id)}); err == nil {
		t.Fatal("a bogus request type was accepted")
	}
	if v := testutil.ToFloat64(tr.m.requests.WithLabelValues("unknown", "error")); v != 1 {
		t.Errorf(`dfp2p_tracker_requests_total{type="unknown",outcome="error"} = %v, want 1`, v)
	}
	if v := testutil.ToFloat64(tr.m.requests.WithLabelValues(TypeRegister, "ok")); v != 2 {
		t.Errorf(`dfp2p_tracker_requests_total{type="register",outcome="ok"} = %v, want 2`, v)
	}

	// The seed read the file from the origin; gauges follow the tick loop.
	waitFor(t, "the seed's download bytes and the gauges", func() bool {
		return testutil.ToFloat64(tr.m.bytes.WithLabelValues("origin")) == float64(len(data)) &&
			testutil.ToFloat64(tr.m.tasks) == 1 && testutil.ToFloat64(tr.m.peers) == 3 &&
			testutil.ToFloat64(tr.m.blockedParents) == 1
	})
	for name, ok := range map[string]func(float64) bool{
		"dfp2p_cache_bytes":        func(v float64) bool { return v == float64(len(data)) },
		"dfp2p_cache_tasks":        func(v float64) bool { return v == 1 },
		"dfp2p_libp2p_peers":       func(v float64) bool { return v >= 2 },
		"dfp2p_gc_runs_total":      func(v float64) bool { return v == 0 },
		"dfp2p_member_peers":       func(v float64) bool { return v >= 2 },
		"dfp2p_upload_bytes_total": func(v float64) bool { return v == 0 },
	} {
		if v := metricstest.Value(t, tr.Registry(), name, nil); !ok(v) {
			t.Errorf("%s = %v", name, v)
		}
	}
	if _, err := tr.st.GC(false); err != nil {
		t.Fatal(err)
	}
	if v := metricstest.Value(t, tr.Registry(), "dfp2p_gc_runs_total", nil); v != 1 {
		t.Errorf("dfp2p_gc_runs_total after a GC = %v", v)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMetricsNeedReadScope: /metrics is open to loopback callers (the
// host's Prometheus agent) and needs a read token from anywhere else.
func TestMetricsNeedReadScope(t *testing.T) {
	tr, _, _ := newTestTracker(t)
	h := tr.apiHandler()
	for remote, want := range map[string]int{"127.0.0.1:5000": http.StatusOK, "192.0.2.1:5000": http.StatusUnauthorized} {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/metrics", nil)
		r.RemoteAddr = remote
		h.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("GET /metrics from %s: %d, want %d", remote, w.Code, want)
		}
		if want == http.StatusOK && !strings.Contains(w.Body.String(), "dfp2p_tracker_schedule_seconds") {
			t.Errorf("GET /metrics from %s: no dfp2p metrics", remote)
		}
	}
}
