package daemon

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	reg             *prometheus.Registry
	bytes           *prometheus.CounterVec
	uploadBytes     prometheus.Counter
	badPieces       prometheus.Counter
	activeDownloads prometheus.Gauge
	gcRuns          prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dfp2p_download_bytes_total", Help: "Bytes downloaded, by source (origin, seed, peer).",
		}, []string{"source"}),
		uploadBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dfp2p_upload_bytes_total", Help: "Piece bytes served to other peers.",
		}),
		badPieces: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dfp2p_bad_pieces_total", Help: "Pieces received that did not match their CID.",
		}),
		activeDownloads: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dfp2p_active_downloads", Help: "Downloads in progress.",
		}),
		gcRuns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dfp2p_gc_runs_total", Help: "Garbage collection runs.",
		}),
	}
	m.reg.MustRegister(m.bytes, m.uploadBytes, m.badPieces, m.activeDownloads, m.gcRuns,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}
