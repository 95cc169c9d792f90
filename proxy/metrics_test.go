package proxy

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dfp2p/dfp2p/internal/metricstest"
)

// TestMetricsMove sends one request of each kind and outcome and checks the
// counters, the latency histogram and the byte and auth-check counters.
func TestMetricsMove(t *testing.T) {
	up := newFakeRegistry(t, false)
	up.user, up.pass = "alice", "secret"
	blob := []byte("a layer")
	d := up.addBlob("lib/app", blob)
	big := make([]byte, 1<<20)
	big[0] = 1
	dBig := up.addBlob("lib/app", big)
	up.addManifest("lib/app", "v1", []byte(`{"schemaVersion":2}`))
	f := newFakeFetcher(blob, big)
	p := startProxy(t, Config{Fetcher: f, Registries: map[string]string{"reg.test": up.URL}})
	reg := prometheus.NewRegistry()
	reg.MustRegister(p.Collectors()...)
	c := testClient(t)
	base := "http://" + p.Addr()
	auth := map[string]string{"Authorization": basicAuth("alice", "secret")}

	counted := func(kind, outcome string, want float64) {
		t.Helper()
		// The count lands when the handler returns, just after the answer.
		deadline := time.Now().Add(5 * time.Second)
		for {
			v := testutil.ToFloat64(p.m.requests.WithLabelValues(kind, outcome))
			if v == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("dfp2p_proxy_requests_total{kind=%q,outcome=%q} = %v, want %v", kind, outcome, v, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	if r := do(t, c, "GET", base+"/v2/lib/app/blobs/"+d+"?ns=reg.test", auth); r.status != 200 {
		t.Fatalf("blob: %d", r.status)
	}
	counted(kindBlob, outcomeP2P, 1)
	if r := do(t, c, "GET", base+"/v2/lib/app/blobs/"+d+"?ns=reg.test", nil); r.status != 401 {
		t.Fatalf("blob without credentials: %d", r.status)
	}
	counted(kindBlob, outcomeDenied, 1)
	f.set(func(f *fakeFetcher) { f.err = &statusErr{http.StatusNotFound, "origin 404"} })
	if r := do(t, c, "GET", base+"/v2/lib/app/blobs/"+d+"?ns=reg.test", auth); r.status != 404 {
		t.Fatalf("blob fetch error: %d", r.status)
	}
	counted(kindBlob, outcomeError, 1)
	f.set(func(f *fakeFetcher) { f.err, f.failAfter = nil, 256<<10 })
	if r := do(t, c, "GET", base+"/v2/lib/app/blobs/"+dBig+"?ns=reg.test", auth); r.err == nil {
		t.Fatal("a blob cut mid-way read as complete")
	}
	counted(kindBlob, outcomeAborted, 1)
	f.set(func(f *fakeFetcher) { f.failAfter = 0 })

	if r := do(t, c, "GET", base+"/v2/lib/app/manifests/v1?ns=reg.test", auth); r.status != 200 {
		t.Fatalf("manifest: %d", r.status)
	}
	counted(kindManifest, outcomeUpstream, 1)
	if r := do(t, c, "PUT", base+"/v2/lib/app/manifests/v1?ns=reg.test", nil); r.status != 405 {
		t.Fatalf("push: %d", r.status)
	}
	counted(kindManifest, outcomeRefused, 1)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	p2 := startProxy(t, Config{Fetcher: f, Registries: map[string]string{"dead.test": "http://" + dead}})
	if r := do(t, c, "GET", "http://"+p2.Addr()+"/v2/lib/app/manifests/v1?ns=dead.test", nil); r.status != 502 {
		t.Fatalf("dead registry: %d", r.status)
	}
	waitCount(t, p2, kindManifest, outcomeError)
	if r := do(t, c, "GET", base+"/healthz", nil); r.status != 200 {
		t.Fatalf("healthz: %d", r.status)
	}
	counted(kindOther, outcomeOK, 1)

	// Forward proxy and CONNECT.
	pc := proxyClient(t, p, nil)
	if r := do(t, pc, "GET", up.URL+"/v2/", nil); r.status == 0 {
		t.Fatal("forward")
	}
	counted(kindForward, outcomeUpstream, 1)
	conn, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	host := hostOf(t, up.URL)
	if _, err := conn.Write([]byte("CONNECT " + host + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if n, err := conn.Read(buf); err != nil || n < 12 || string(buf[9:12]) != "200" {
		t.Fatalf("CONNECT answer %q: %v", buf[:n], err)
	}
	conn.Close()
	counted(kindConnect, outcomeTunnel, 1)

	// A client that is neither loopback nor allowed.
	w := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/v2/", nil)
	req.RemoteAddr = "192.0.2.7:40000"
	p.Handler().ServeHTTP(w, req)
	if w.Code != http.StatusForbidden {
		t.Fatalf("outsider: %d", w.Code)
	}
	counted(kindManifest, outcomeForbidden, 1)

	// Latency: every timed request is in the histogram, CONNECT is not.
	for kind, want := range map[string]uint64{kindBlob: 4, kindManifest: 3, kindForward: 1, kindOther: 1, kindConnect: 0} {
		if n := metricstest.HistCount(t, reg, "dfp2p_proxy_request_seconds", prometheus.Labels{"kind": kind}); n != want {
			t.Errorf("dfp2p_proxy_request_seconds{kind=%q} count = %d, want %d", kind, n, want)
		}
	}
	if v := metricstest.Value(t, reg, "dfp2p_proxy_blob_bytes_total", nil); v < float64(len(blob)) {
		t.Errorf("dfp2p_proxy_blob_bytes_total = %v", v)
	}
	if v := metricstest.Value(t, reg, "dfp2p_proxy_auth_checks_total", prometheus.Labels{"result": "upstream"}); v < 2 {
		t.Errorf(`dfp2p_proxy_auth_checks_total{result="upstream"} = %v`, v)
	}
	if v := metricstest.Value(t, reg, "dfp2p_proxy_auth_checks_total", prometheus.Labels{"result": "cached"}); v < 1 {
		t.Errorf(`dfp2p_proxy_auth_checks_total{result="cached"} = %v`, v)
	}
}

func waitCount(t *testing.T, p *Proxy, kind, outcome string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(p.m.requests.WithLabelValues(kind, outcome)) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("dfp2p_proxy_requests_total{kind=%q,outcome=%q} did not move", kind, outcome)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
