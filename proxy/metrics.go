package proxy

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Request kinds (the kind label).
const (
	kindManifest = "manifest" // registry API calls passed to the registry: manifests, tags, /v2/, blob HEADs
	kindBlob     = "blob"     // blob GETs served through the swarm (mirror, rule-matched forward, intercepted)
	kindForward  = "forward"  // forward-proxy requests passed through
	kindConnect  = "connect"  // CONNECT tunnels and interceptions
	kindOther    = "other"    // /healthz
)

// Request outcomes (the outcome label).
const (
	outcomeP2P         = "p2p"         // blob body sent completely from the swarm
	outcomeUpstream    = "upstream"    // answered by the upstream (any status), body complete
	outcomeDenied      = "denied"      // the registry refused the requester the blob (its 401/403/404...)
	outcomeError       = "error"       // upstream unreachable, authorization check or fetch failed: an error status
	outcomeAborted     = "aborted"     // the body failed mid-way and the response was cut
	outcomeRefused     = "refused"     // refused by the proxy itself: bad path, digest, method, range, loop
	outcomeForbidden   = "forbidden"   // client neither loopback nor in AllowCIDRs
	outcomeTunnel      = "tunnel"      // CONNECT tunnelled
	outcomeIntercepted = "intercepted" // CONNECT TLS-intercepted (its requests are counted on their own)
	outcomeOK          = "ok"          // served by the proxy itself (/healthz)
	outcomeCanceled    = "canceled"    // the client went away before an answer
)

// metrics are the proxy's Prometheus metrics.
type metrics struct {
	requests *prometheus.CounterVec
	seconds  *prometheus.HistogramVec
}

func newMetrics() *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dfp2p_proxy_requests_total",
			Help: "Registry mirror and proxy requests, by kind (manifest, blob, forward, connect, other) and outcome (p2p, upstream, denied, error, aborted, refused, forbidden, tunnel, intercepted, ok, canceled).",
		}, []string{"kind", "outcome"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dfp2p_proxy_request_seconds",
			Help:    "Time to answer a registry mirror or proxy request completely, by kind (CONNECT tunnels are not timed).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10), // 1 ms .. 4.4 min
		}, []string{"kind"}),
	}
	for _, o := range []string{outcomeP2P, outcomeDenied, outcomeError, outcomeAborted} {
		m.requests.WithLabelValues(kindBlob, o)
	}
	for _, k := range []string{kindManifest, kindBlob, kindForward} {
		m.seconds.WithLabelValues(k)
	}
	return m
}

// Collectors are the proxy's Prometheus metrics for the owner's registry:
// dfp2p_proxy_requests_total{kind,outcome}, dfp2p_proxy_request_seconds{kind},
// dfp2p_proxy_blob_bytes_total and dfp2p_proxy_auth_checks_total{result}.
func (p *Proxy) Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		p.m.requests, p.m.seconds,
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "dfp2p_proxy_blob_bytes_total", Help: "Blob body bytes the proxy sent from the swarm.",
		}, func() float64 { return float64(p.n.blobBytes.Load()) }),
		authChecks("upstream", "sent to the registry", &p.n.authChecks),
		authChecks("cached", "answered from the cache", &p.n.authCacheHits),
	}
}

func authChecks(result, what string, n *atomic.Int64) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "dfp2p_proxy_auth_checks_total", Help: "Blob authorization checks, by result (upstream: HEAD sent to the registry; cached).",
		ConstLabels: prometheus.Labels{"result": result},
	}, func() float64 { return float64(n.Load()) })
}

// reqObs is what one request's metrics record, kept in its context.
type reqObs struct {
	kind, outcome string
}

type obsKey struct{}

// observe starts recording r as a request of kind; the returned function
// counts it (also when the handler aborts the response with a panic).
func (p *Proxy) observe(r *http.Request, kind string) (*http.Request, func()) {
	o := &reqObs{kind: kind, outcome: outcomeCanceled}
	start := time.Now()
	return r.WithContext(context.WithValue(r.Context(), obsKey{}, o)), func() {
		p.m.requests.WithLabelValues(o.kind, o.outcome).Inc()
		if o.kind != kindConnect {
			p.m.seconds.WithLabelValues(o.kind).Observe(time.Since(start).Seconds())
		}
	}
}

// kindOf is a request's kind as far as its form tells; handlers refine it.
func kindOf(r *http.Request) string {
	switch {
	case r.Method == http.MethodConnect:
		return kindConnect
	case r.URL.Scheme != "" || r.URL.Host != "":
		return kindForward
	case r.URL.Path == "/healthz":
		return kindOther
	}
	return kindManifest
}

// note sets r's outcome (the last one noted counts).
func note(r *http.Request, outcome string) {
	if o, ok := r.Context().Value(obsKey{}).(*reqObs); ok {
		o.outcome = outcome
	}
}

// noteKind sets r's kind.
func noteKind(r *http.Request, kind string) {
	if o, ok := r.Context().Value(obsKey{}).(*reqObs); ok {
		o.kind = kind
	}
}
