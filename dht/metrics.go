package dht

import "github.com/prometheus/client_golang/prometheus"

// Collectors are the DHT's Prometheus metrics, for the owner's registry:
// dfp2p_dht_peers (routing table size; 0 means not joined) and
// dfp2p_dht_provided_keys (task and root keys being announced).
func (d *DHT) Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "dfp2p_dht_peers", Help: "Peers in the DHT routing table (0: not joined).",
		}, func() float64 { return float64(d.RoutingTableSize()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "dfp2p_dht_provided_keys", Help: "Task and manifest-root keys this node announces.",
		}, func() float64 { return float64(d.Provided()) }),
	}
}
