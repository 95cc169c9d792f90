package store

import "github.com/prometheus/client_golang/prometheus"

// gcMetrics counts what GC did; Collectors exposes them.
type gcMetrics struct {
	runs         prometheus.Counter
	removed      *prometheus.CounterVec
	removedBytes prometheus.Counter
}

func newGCMetrics() gcMetrics {
	m := gcMetrics{
		runs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dfp2p_gc_runs_total", Help: "Garbage collection runs of the piece cache.",
		}),
		removed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dfp2p_gc_removed_tasks_total", Help: "Tasks garbage collection removed from the piece cache, by reason (ttl, watermark).",
		}, []string{"reason"}),
		removedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dfp2p_gc_removed_bytes_total", Help: "Piece bytes garbage collection freed.",
		}),
	}
	// Both reasons exist from the start, so rate() sees the first removal.
	m.removed.WithLabelValues(ReasonTTL)
	m.removed.WithLabelValues(ReasonWatermark)
	return m
}

func (m gcMetrics) record(rep GCReport) {
	m.runs.Inc()
	for _, id := range rep.Removed {
		if r := rep.Reason[id]; r == ReasonTTL || r == ReasonWatermark {
			m.removed.WithLabelValues(r).Inc()
		}
	}
	m.removedBytes.Add(float64(rep.FreedBytes))
}

// Collectors are the store's Prometheus metrics, for the owner's registry
// (the daemon's cache, the tracker's seed cache): dfp2p_cache_bytes (piece
// bytes held), dfp2p_cache_tasks (tasks held, complete or not),
// dfp2p_gc_runs_total, dfp2p_gc_removed_tasks_total{reason} and
// dfp2p_gc_removed_bytes_total.
func (s *Store) Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "dfp2p_cache_bytes", Help: "Piece bytes held in the cache.",
		}, func() float64 { return float64(s.Usage()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "dfp2p_cache_tasks", Help: "Tasks held in the cache, complete or partial.",
		}, func() float64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			return float64(len(s.tasks))
		}),
		s.gcm.runs, s.gcm.removed, s.gcm.removedBytes,
	}
}
