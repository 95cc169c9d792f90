package daemon

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dfp2p/dfp2p/tracker"
)

// Byte and piece sources (the source label).
const (
	sourceOrigin = "origin" // read from the origin by this daemon
	sourceSeed   = "seed"   // from the cluster's CDN seed
	sourcePeer   = "peer"   // from other daemons (tracker schedule or DHT)
)

// failReasons are the reason label's values: the tracker's report reasons.
var failReasons = []string{tracker.ReasonBadPiece, tracker.ReasonNotFound, tracker.ReasonUnreachable, tracker.ReasonOther}

type metrics struct {
	reg             *prometheus.Registry
	bytes           *prometheus.CounterVec
	uploadBytes     prometheus.Counter
	piecesDone      *prometheus.CounterVec
	piecesFailed    *prometheus.CounterVec
	badPieces       prometheus.Counter
	blockedPeers    prometheus.Counter
	activeDownloads prometheus.Gauge
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
		piecesDone: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dfp2p_pieces_done_total", Help: "Pieces verified and stored, by source (origin, seed, peer).",
		}, []string{"source"}),
		piecesFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dfp2p_pieces_failed_total", Help: "Piece fetches from peers that failed, by reason (bad-piece, not-found, unreachable, other).",
		}, []string{"reason"}),
		badPieces: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dfp2p_bad_pieces_total", Help: "Pieces received that did not match their CID.",
		}),
		blockedPeers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dfp2p_blocked_peers_total", Help: "Times a download stopped using a peer because it sent a bad piece.",
		}),
		activeDownloads: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dfp2p_active_downloads", Help: "Downloads in progress.",
		}),
	}
	// Every label value exists from the start, so rate() sees the first event.
	for _, s := range []string{sourceOrigin, sourceSeed, sourcePeer} {
		m.bytes.WithLabelValues(s)
		m.piecesDone.WithLabelValues(s)
	}
	for _, r := range failReasons {
		m.piecesFailed.WithLabelValues(r)
	}
	m.reg.MustRegister(m.bytes, m.uploadBytes, m.piecesDone, m.piecesFailed, m.badPieces, m.blockedPeers, m.activeDownloads,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// pieceFailed counts a failed piece fetch; reason is one of failReasons.
// blocked says the download stopped using the peer for it.
func (m *metrics) pieceFailed(reason string, blocked bool) {
	m.piecesFailed.WithLabelValues(reason).Inc()
	if reason == tracker.ReasonBadPiece {
		m.badPieces.Inc()
	}
	if blocked {
		m.blockedPeers.Inc()
	}
}
