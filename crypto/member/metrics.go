package member

import "github.com/prometheus/client_golang/prometheus"

// Collectors are membership's Prometheus metrics for the owner's registry:
// dfp2p_member_refused_streams_total (streams reset because the peer was not
// a member) and dfp2p_member_peers (connected peers with a valid
// certificate).
func (m *Members) Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "dfp2p_member_refused_streams_total", Help: "Streams refused because the peer had no valid membership certificate.",
		}, func() float64 { return float64(m.Refused()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "dfp2p_member_peers", Help: "Connected peers with a valid membership certificate.",
		}, func() float64 {
			m.mu.Lock()
			defer m.mu.Unlock()
			return float64(len(m.peers))
		}),
	}
}
