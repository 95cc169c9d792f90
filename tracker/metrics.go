package tracker

import "github.com/prometheus/client_golang/prometheus"

// reportOutcomes are the outcome label's values of
// dfp2p_tracker_reported_pieces_total: done, or a failure reason.
var reportOutcomes = []string{"done", ReasonBadPiece, ReasonNotFound, ReasonUnreachable, ReasonOther}

type metrics struct {
	reg             *prometheus.Registry
	requests        *prometheus.CounterVec
	scheduleSeconds prometheus.Histogram
	assignments     *prometheus.CounterVec
	bytes           *prometheus.CounterVec // the seed's download bytes by source
	uploadBytes     prometheus.Counter
	reported        *prometheus.CounterVec
	tasks           prometheus.Gauge
	peers           prometheus.Gauge
	blockedParents  prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dfp2p_tracker_requests_total", Help: "Tracker protocol requests by type and outcome.",
		}, []string{"type", "outcome"}),
		scheduleSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "dfp2p_tracker_schedule_seconds", Help: "Time to make one schedule decision.",
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10),
		}),
		assignments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dfp2p_tracker_assignments_total", Help: "Pieces assigned to children, by parent kind (seed, peer).",
		}, []string{"parent"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dfp2p_download_bytes_total", Help: "Bytes the seed downloaded, by source (origin; peer: other regions' seeds and peers through the DHT).",
		}, []string{"source"}),
		uploadBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dfp2p_upload_bytes_total", Help: "Piece bytes the seed served to peers.",
		}),
		reported: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dfp2p_tracker_reported_pieces_total", Help: "Pieces peers reported, by outcome (done, bad-piece, not-found, unreachable, other).",
		}, []string{"outcome"}),
		tasks: prometheus.NewGauge(prometheus.GaugeOpts{Name: "dfp2p_tracker_tasks", Help: "Tasks the tracker knows."}),
		peers: prometheus.NewGauge(prometheus.GaugeOpts{Name: "dfp2p_tracker_peers", Help: "Live peer-task registrations."}),
		blockedParents: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dfp2p_tracker_blocked_parents", Help: "Parents nobody is sent to because several peers reported bad pieces from them.",
		}),
	}
	// Every label value exists from the start, so rate() sees the first event.
	for _, s := range []string{"origin", "peer"} {
		m.bytes.WithLabelValues(s)
	}
	for _, p := range []string{"seed", "peer"} {
		m.assignments.WithLabelValues(p)
	}
	for _, o := range reportOutcomes {
		m.reported.WithLabelValues(o)
	}
	m.reg.MustRegister(m.requests, m.scheduleSeconds, m.assignments, m.bytes, m.uploadBytes, m.reported,
		m.tasks, m.peers, m.blockedParents,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// reportOutcome maps a failure reason from a peer to a bounded label value.
func reportOutcome(reason string) string {
	switch reason {
	case ReasonBadPiece, ReasonNotFound, ReasonUnreachable:
		return reason
	}
	return ReasonOther
}

// requestType maps a request's type to a bounded label value: a peer may
// send any string.
func requestType(typ string) string {
	switch typ {
	case TypeRegister, TypeAnnounce, TypeSchedule, TypeReport, TypeManifest, TypeLeave:
		return typ
	}
	return "unknown"
}
