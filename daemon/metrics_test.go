package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dfp2p/dfp2p/exchange"
	"github.com/dfp2p/dfp2p/internal/metricstest"
	"github.com/dfp2p/dfp2p/store"
	"github.com/dfp2p/dfp2p/swarm"
	"github.com/dfp2p/dfp2p/tracker"
)

// TestMetricsMove downloads one file on two daemons (a from the seed, b from
// a) and once more straight from the origin, and checks each metric moved.
func TestMetricsMove(t *testing.T) {
	data := testData(9<<20 + 5)
	origin := testOrigin(t, data)
	tr := newTracker(t)
	a := newMember(t, tr)
	b := newMember(t, tr)
	url := origin.URL + "/f"
	readAll(t, a, url)
	readAll(t, b, url)
	if v := testutil.ToFloat64(a.m.bytes.WithLabelValues(sourceSeed)); v != float64(len(data)) {
		t.Errorf(`a: dfp2p_download_bytes_total{source="seed"} = %v, want %d`, v, len(data))
	}
	bPeer, bSeed := testutil.ToFloat64(b.m.bytes.WithLabelValues(sourcePeer)), testutil.ToFloat64(b.m.bytes.WithLabelValues(sourceSeed))
	if bPeer == 0 || bPeer+bSeed != float64(len(data)) {
		t.Errorf(`b: dfp2p_download_bytes_total{source="peer"} = %v, {source="seed"} = %v; want peer > 0 and %d in all`, bPeer, bSeed, len(data))
	}
	if v := testutil.ToFloat64(a.m.uploadBytes); v != bPeer {
		t.Errorf("a: dfp2p_upload_bytes_total = %v, want %v (what b read from a)", v, bPeer)
	}
	pieces := float64(len(a.Store().Have(mustTask(t, url))))
	if v := testutil.ToFloat64(a.m.piecesDone.WithLabelValues(sourceSeed)); v != pieces {
		t.Errorf(`a: dfp2p_pieces_done_total{source="seed"} = %v, want %v`, v, pieces)
	}
	if v := testutil.ToFloat64(b.m.piecesDone.WithLabelValues(sourcePeer)) + testutil.ToFloat64(b.m.piecesDone.WithLabelValues(sourceSeed)); v != pieces {
		t.Errorf(`b: dfp2p_pieces_done_total{source=~"peer|seed"} = %v, want %v`, v, pieces)
	}
	if v := testutil.ToFloat64(a.m.activeDownloads); v != 0 {
		t.Errorf("a: dfp2p_active_downloads = %v after the download", v)
	}

	o := newDaemon(t, nil)
	readAll(t, o, url)
	if v := testutil.ToFloat64(o.m.bytes.WithLabelValues(sourceOrigin)); v != float64(len(data)) {
		t.Errorf(`o: dfp2p_download_bytes_total{source="origin"} = %v, want %d`, v, len(data))
	}
	if v := testutil.ToFloat64(o.m.piecesDone.WithLabelValues(sourceOrigin)); v != pieces {
		t.Errorf(`o: dfp2p_pieces_done_total{source="origin"} = %v, want %v`, v, pieces)
	}
	// The store's and the host's metrics are in the daemon's registry.
	for name, ok := range map[string]func(float64) bool{
		"dfp2p_cache_bytes":        func(v float64) bool { return v == float64(len(data)) },
		"dfp2p_cache_tasks":        func(v float64) bool { return v == 1 },
		"dfp2p_libp2p_peers":       func(v float64) bool { return v >= 1 },
		"dfp2p_libp2p_connections": func(v float64) bool { return v >= 1 },
		"dfp2p_gc_runs_total":      func(v float64) bool { return v == 0 },
	} {
		if v := metricstest.Value(t, b.Registry(), name, nil); !ok(v) {
			t.Errorf("b: %s = %v", name, v)
		}
	}
	if _, err := b.Store().GC(false); err != nil {
		t.Fatal(err)
	}
	if v := metricstest.Value(t, b.Registry(), "dfp2p_gc_runs_total", nil); v != 1 {
		t.Errorf("b: dfp2p_gc_runs_total after a GC = %v", v)
	}
}

// TestActiveDownloadsGauge checks the gauge is up while a download runs.
func TestActiveDownloadsGauge(t *testing.T) {
	data := testData(1 << 20)
	release := make(chan struct{})
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release // the download stays active until the test looked
		http.ServeContent(w, r, "f", time.Unix(0, 0), bytes.NewReader(data))
	}))
	defer origin.Close()
	d := newDaemon(t, nil)
	dl, err := d.start(Request{URL: origin.URL + "/f"})
	if err != nil {
		t.Fatal(err)
	}
	if v := testutil.ToFloat64(d.m.activeDownloads); v != 1 {
		t.Errorf("dfp2p_active_downloads = %v while downloading", v)
	}
	close(release)
	<-dl.done
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(d.m.activeDownloads) != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if v := testutil.ToFloat64(d.m.activeDownloads); v != 0 {
		t.Errorf("dfp2p_active_downloads = %v after the download", v)
	}
}

// TestPieceFailureMetrics checks the failure classification and counters the
// tracker path and the swarm path share.
func TestPieceFailureMetrics(t *testing.T) {
	m := newMetrics()
	cases := []struct {
		err     error
		reason  string
		blocked bool
	}{
		{fmt.Errorf("x: %w", store.ErrBadPiece), tracker.ReasonBadPiece, true},
		{fmt.Errorf("x: %w", store.ErrBadPiece), tracker.ReasonBadPiece, false},
		{fmt.Errorf("x: %w", exchange.ErrNotFound), tracker.ReasonNotFound, false},
		{fmt.Errorf("%w: refused", errDial), tracker.ReasonUnreachable, false},
		{fmt.Errorf("%w peer: refused", swarm.ErrUnreachable), tracker.ReasonUnreachable, false},
		{errors.New("reset"), tracker.ReasonOther, false},
	}
	for _, c := range cases {
		if got := classify(c.err); got != c.reason {
			t.Fatalf("classify(%v) = %q, want %q", c.err, got, c.reason)
		}
		m.pieceFailed(c.reason, c.blocked)
	}
	for reason, want := range map[string]float64{tracker.ReasonBadPiece: 2, tracker.ReasonNotFound: 1, tracker.ReasonUnreachable: 2, tracker.ReasonOther: 1} {
		if v := testutil.ToFloat64(m.piecesFailed.WithLabelValues(reason)); v != want {
			t.Errorf("dfp2p_pieces_failed_total{reason=%q} = %v, want %v", reason, v, want)
		}
	}
	if v := testutil.ToFloat64(m.badPieces); v != 2 {
		t.Errorf("dfp2p_bad_pieces_total = %v, want 2", v)
	}
	if v := testutil.ToFloat64(m.blockedPeers); v != 1 {
		t.Errorf("dfp2p_blocked_peers_total = %v, want 1", v)
	}
	// Every series exists before any event (rate() sees the first one).
	if n := testutil.CollectAndCount(newMetrics().piecesFailed); n != 4 {
		t.Errorf("fresh dfp2p_pieces_failed_total has %d series, want 4", n)
	}
}

// TestMetricsNeedReadScope: /metrics is open to loopback callers (the
// host's Prometheus agent) and needs a read token from anywhere else.
func TestMetricsNeedReadScope(t *testing.T) {
	tr := newTracker(t)
	d := newMember(t, tr)
	h := d.apiHandler()
	for remote, want := range map[string]int{"127.0.0.1:5000": http.StatusOK, "192.0.2.1:5000": http.StatusUnauthorized} {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/metrics", nil)
		r.RemoteAddr = remote
		h.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("GET /metrics from %s: %d, want %d", remote, w.Code, want)
		}
		if want == http.StatusOK && !bytes.Contains(w.Body.Bytes(), []byte("dfp2p_download_bytes_total")) {
			t.Errorf("GET /metrics from %s: no dfp2p metrics", remote)
		}
	}
}
