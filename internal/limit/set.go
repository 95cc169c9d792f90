package limit

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Directions, as used in the API, the metric label and the CLI.
const (
	Download = "download"
	Upload   = "upload"
	Origin   = "origin"
)

// Rates are a process's limits in bytes per second (0: unlimited).
type Rates struct {
	Download int64 `json:"download"`
	Upload   int64 `json:"upload"`
	Origin   int64 `json:"origin"`
}

// Set is a process's three limits.
type Set struct {
	// Download: piece bytes received from peers, seeds and origins.
	Download *Limiter
	// Upload: piece bytes served to other peers.
	Upload *Limiter
	// Origin: bytes read from origins (they count toward Download too).
	Origin *Limiter
}

// NewSet returns a Set at rates r.
func NewSet(r Rates) *Set {
	return &Set{Download: New(r.Download), Upload: New(r.Upload), Origin: New(r.Origin)}
}

// Rates returns the current limits.
func (s *Set) Rates() Rates {
	return Rates{Download: s.Download.Rate(), Upload: s.Upload.Rate(), Origin: s.Origin.Rate()}
}

// SetRates changes all three limits.
func (s *Set) SetRates(r Rates) {
	s.Download.SetRate(r.Download)
	s.Upload.SetRate(r.Upload)
	s.Origin.SetRate(r.Origin)
}

// OriginGroup is what origin reads wait on: the origin and the download
// limit.
func (s *Set) OriginGroup() Group { return Group{s.Download, s.Origin} }

// Collector returns a Prometheus collector for the gauge
// dfp2p_rate_limit_bytes_per_second{direction} (0: unlimited).
func (s *Set) Collector() prometheus.Collector { return collector{s} }

var rateDesc = prometheus.NewDesc("dfp2p_rate_limit_bytes_per_second",
	"Bandwidth limit by direction (download, upload, origin), bytes per second; 0 means unlimited.",
	[]string{"direction"}, nil)

type collector struct{ s *Set }

func (c collector) Describe(ch chan<- *prometheus.Desc) { ch <- rateDesc }

func (c collector) Collect(ch chan<- prometheus.Metric) {
	r := c.s.Rates()
	for _, d := range []struct {
		name string
		v    int64
	}{{Download, r.Download}, {Upload, r.Upload}, {Origin, r.Origin}} {
		ch <- prometheus.MustNewConstMetric(rateDesc, prometheus.GaugeValue, float64(d.v), d.name)
	}
}
