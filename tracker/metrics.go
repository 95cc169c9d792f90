package tracker

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	reg             *prometheus.Registry
	requests        *prometheus.CounterVec
	scheduleSeconds prometheus.Histogram
	originBytes     prometheus.Counter
	peerBytes       prometheus.Counter
	uploadBytes     prometheus.Counter
	badPieces       prometheus.Counter
	tasks           prometheus.Gauge
	peers           prometheus.Gauge
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
		originBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dfp2p_origin_bytes_total", Help: "Bytes the seed read from origins.",
		}),
		peerBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dfp2p_seed_peer_bytes_total", Help: "Bytes the seed copied from other seeds and peers (another region) instead of the origin.",
		}),
		uploadBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dfp2p_upload_bytes_total", Help: "Piece bytes the seed served to peers.",
		}),
		badPieces: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dfp2p_tracker_bad_pieces_total", Help: "Bad pieces reported by peers.",
		}),
		tasks: prometheus.NewGauge(prometheus.GaugeOpts{Name: "dfp2p_tracker_tasks", Help: "Tasks the tracker knows."}),
		peers: prometheus.NewGauge(prometheus.GaugeOpts{Name: "dfp2p_tracker_peers", Help: "Live peer-task registrations."}),
	}
	m.reg.MustRegister(m.requests, m.scheduleSeconds, m.originBytes, m.peerBytes, m.uploadBytes, m.badPieces, m.tasks, m.peers,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}
