package node

import (
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/prometheus/client_golang/prometheus"
)

// Collectors are the host's Prometheus metrics, for the owner's registry:
// dfp2p_libp2p_peers (peers with at least one open connection) and
// dfp2p_libp2p_connections (open connections, all transports).
func Collectors(h host.Host) []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "dfp2p_libp2p_peers", Help: "Peers with at least one open libp2p connection.",
		}, func() float64 { return float64(len(h.Network().Peers())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "dfp2p_libp2p_connections", Help: "Open libp2p connections.",
		}, func() float64 { return float64(len(h.Network().Conns())) }),
	}
}
