package proxy

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestForwardProxy(t *testing.T) {
	up := newFakeRegistry(t, false)
	blob := []byte("layer through the swarm")
	d := up.addBlob("library/app", blob)
	up.addManifest("library/app", "v1", []byte(`{"m":1}`))
	f := newFakeFetcher(blob)
	p := startProxy(t, Config{Fetcher: f})
	c := proxyClient(t, p, nil)

	// Not rule-matched: forwarded as is.
	r := do(t, c, "GET", up.URL+"/v2/library/app/manifests/v1", map[string]string{"Accept": manifestType})
	if r.status != 200 || string(r.body) != `{"m":1}` || f.calls.Load() != 0 {
		t.Fatalf("forwarded GET: %d %q fetches %d", r.status, r.body, f.calls.Load())
	}
	last := up.last()
	if last.Header.Get("Accept") != manifestType || !strings.Contains(last.Header.Get("Via"), "dfp2p-") {
		t.Fatalf("upstream saw %v", last.Header)
	}
	// Rule-matched blob URL: auth HEAD upstream, then the fetcher.
	r = do(t, c, "GET", up.URL+"/v2/library/app/blobs/"+d, map[string]string{"Authorization": "Bearer t"})
	if r.status != 200 || !bytes.Equal(r.body, blob) || f.calls.Load() != 1 {
		t.Fatalf("blob via proxy: %d %q fetches %d", r.status, r.body, f.calls.Load())
	}
	if req := f.lastReq(); req.URL != up.URL+"/v2/library/app/blobs/"+d || req.Digest != d || req.Header.Get("Authorization") != "Bearer t" {
		t.Fatalf("fetch request %+v", req)
	}
	if up.last().Method != "HEAD" {
		t.Fatal("no authorization HEAD before the swarm")
	}
	// HEAD on the blob URL is forwarded, not fetched.
	if r = do(t, c, "HEAD", up.URL+"/v2/library/app/blobs/"+d, nil); r.status != 200 || f.calls.Load() != 1 {
		t.Fatalf("HEAD blob: %d fetches %d", r.status, f.calls.Load())
	}
	// Other methods with bodies stream through (forward mode is not pull-only).
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Method", r.Method)
		_, _ = w.Write(b)
	}))
	t.Cleanup(echo.Close)
	req, _ := http.NewRequest("PUT", echo.URL+"/upload", strings.NewReader("payload"))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "payload" || resp.Header.Get("X-Method") != "PUT" {
		t.Fatalf("PUT via proxy: %d %q", resp.StatusCode, b)
	}
	// Unreachable upstream: 502.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	if r = do(t, c, "GET", dead.URL+"/x", nil); r.status != 502 {
		t.Fatalf("dead upstream: %d", r.status)
	}
}

func TestForwardRules(t *testing.T) {
	up := newFakeRegistry(t, false)
	blob := []byte("layer")
	d := up.addBlob("a", blob)
	f := newFakeFetcher(blob)
	// A rule that matches nothing blob-like: every GET is forwarded.
	p := startProxy(t, Config{Fetcher: f, Rules: []string{`\.iso$`}})
	c := proxyClient(t, p, nil)
	if r := do(t, c, "GET", up.URL+"/v2/a/blobs/"+d, nil); r.status != 200 || f.calls.Load() != 0 || up.last().Method != "GET" {
		t.Fatalf("not rule-matched: %d fetches %d", r.status, f.calls.Load())
	}
	// Matched but not a digest URL: cannot be verified, forwarded.
	if r := do(t, c, "GET", up.URL+"/images/x.iso", nil); r.status != 404 || f.calls.Load() != 0 {
		t.Fatalf("rule-matched non-blob: %d fetches %d", r.status, f.calls.Load())
	}
	bt, ok := blobURL(mustURL(t, "https://r.test/prefix/v2/team/app/blobs/"+d))
	if !ok || bt.digest != d || bt.registry != "r.test" {
		t.Fatalf("prefixed blob URL: %+v %v", bt, ok)
	}
	for _, bad := range []string{"https://r.test/v2/a/blobs/sha512:ab", "https://r.test/v2/a/manifests/" + d, "https://r.test/blobs/" + d} {
		if _, ok := blobURL(mustURL(t, bad)); ok {
			t.Errorf("blobURL(%s) accepted", bad)
		}
	}
}

func TestLoopRefused(t *testing.T) {
	p := startProxy(t, Config{Fetcher: newFakeFetcher()})
	c := proxyClient(t, p, nil)
	// The proxy forwarding to itself as an origin would loop forever.
	if r := do(t, c, "GET", "http://"+p.Addr()+"/v2/", nil); r.status != http.StatusLoopDetected {
		t.Fatalf("loop: %d", r.status)
	}
}

func TestConnectTunnel(t *testing.T) {
	up := newFakeRegistry(t, true)
	up.addManifest("a", "v1", []byte("manifest"))
	f := newFakeFetcher()
	p := startProxy(t, Config{Fetcher: f})
	tr := up.Client().Transport.(*http.Transport).Clone()
	c := proxyClient(t, p, tr)
	r := do(t, c, "GET", up.URL+"/v2/a/manifests/v1", nil)
	if r.status != 200 || string(r.body) != "manifest" {
		t.Fatalf("through tunnel: %d %q", r.status, r.body)
	}
	// Untouched: the client verified the registry's own certificate.
	if s := p.Stats(); s.Tunnels != 1 || s.Intercepted != 0 || f.calls.Load() != 0 {
		t.Fatalf("stats %+v", s)
	}
	// Unreachable CONNECT target: 502 before any tunnel.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	conn, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	host := hostOf(t, dead.URL)
	io.WriteString(conn, "CONNECT "+host+" HTTP/1.1\r\nHost: "+host+"\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != 502 {
		t.Fatalf("dead CONNECT: %v %v", resp, err)
	}
	resp.Body.Close()
}

// A tunnel stays up while the proxy closes: Close must cut it and return.
func TestCloseCutsTunnels(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	p := startProxy(t, Config{Fetcher: newFakeFetcher()})
	conn, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "CONNECT "+ln.Addr().String()+" HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	up := <-accepted
	defer up.Close()
	io.WriteString(conn, "ping")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(up, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("tunnel: %q %v", buf, err)
	}
	done := make(chan struct{})
	go func() { p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs on an open tunnel")
	}
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("tunnel still open after Close")
	}
}

// writeTestCA writes a CA certificate and key as PEM files.
func writeTestCA(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "dfp2p test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestInterceptConnect(t *testing.T) {
	up := newFakeRegistry(t, true) // TLS registry on 127.0.0.1
	blob := []byte("intercepted layer")
	d := up.addBlob("library/app", blob)
	up.addManifest("library/app", "v1", []byte("the manifest"))
	certFile, keyFile, pool := writeTestCA(t)
	f := newFakeFetcher(blob)
	upClient := &http.Client{Transport: up.Client().Transport.(*http.Transport).Clone()}
	t.Cleanup(upClient.CloseIdleConnections)
	p := startProxy(t, Config{Fetcher: f, CACert: certFile, CAKey: keyFile,
		InterceptHosts: []string{"127.0.0.1"}, HTTPClient: upClient})
	// The client trusts only the test CA: it can talk to the registry only
	// through a leaf the proxy minted.
	c := proxyClient(t, p, &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}})

	r := do(t, c, "GET", up.URL+"/v2/library/app/blobs/"+d, nil)
	if r.status != 200 || !bytes.Equal(r.body, blob) || f.calls.Load() != 1 {
		t.Fatalf("intercepted blob: %d %q fetches %d", r.status, r.body, f.calls.Load())
	}
	if req := f.lastReq(); req.URL != up.URL+"/v2/library/app/blobs/"+d || req.Digest != d {
		t.Fatalf("fetch request %+v", req)
	}
	if up.last().Method != "HEAD" {
		t.Fatal("no authorization HEAD")
	}
	r = do(t, c, "GET", up.URL+"/v2/library/app/manifests/v1", nil)
	if r.status != 200 || string(r.body) != "the manifest" || f.calls.Load() != 1 {
		t.Fatalf("intercepted manifest: %d %q", r.status, r.body)
	}
	if s := p.Stats(); s.Intercepted < 1 || s.Tunnels != 0 {
		t.Fatalf("stats %+v", s)
	}
	// Leaves are cached per host and chain to the CA.
	l1, err := p.ca.leaf("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	l2, _ := p.ca.leaf("127.0.0.1")
	if l1 != l2 {
		t.Fatal("leaf not cached")
	}
	if _, err := l1.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	ln, err := p.ca.leaf("registry.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ln.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "registry.example.com"}); err != nil {
		t.Fatal(err)
	}
}

func TestIntercepts(t *testing.T) {
	p := &Proxy{intercept: []string{"registry.example.com", "*.corp.test", "10.0.0.1:5000"}}
	for _, tc := range []struct {
		host, port string
		want       bool
	}{
		{"registry.example.com", "443", true},
		{"REGISTRY.example.com.", "443", true},
		{"other.example.com", "443", false},
		{"a.corp.test", "443", true},
		{"corp.test", "443", false},
		{"10.0.0.1", "5000", true},
		{"10.0.0.1", "443", false},
	} {
		if got := p.intercepts(tc.host, tc.port); got != tc.want {
			t.Errorf("intercepts(%s, %s) = %v", tc.host, tc.port, got)
		}
	}
}

func TestClientAllowed(t *testing.T) {
	p, err := newProxy(Config{Fetcher: newFakeFetcher(), AllowCIDRs: []string{"10.0.0.0/8", "fd00::/8", "192.0.2.7"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.cancel()
	for addr, want := range map[string]bool{
		"127.0.0.1:5555":         true,
		"127.8.9.10:1":           true,
		"[::1]:80":               true,
		"[::ffff:127.0.0.1]:80":  true,
		"10.1.2.3:4000":          true,
		"[fd00::1]:1":            true,
		"192.0.2.7:9":            true,
		"192.0.2.8:9":            false,
		"11.0.0.1:80":            false,
		"[2001:db8::1]:80":       false,
		"[fe80::1%eth0]:80":      false,
		"garbage":                false,
		"":                       false,
		"[::ffff:10.0.0.9]:1234": true,
	} {
		if got := p.clientAllowed(addr); got != want {
			t.Errorf("clientAllowed(%q) = %v", addr, got)
		}
	}
	// Through the handler: a foreign client gets 403 and nothing else.
	f := newFakeFetcher([]byte("x"))
	p2 := startProxy(t, Config{Fetcher: f})
	req := httptest.NewRequest("GET", "/v2/a/blobs/"+digestOf([]byte("x")), nil)
	req.RemoteAddr = "203.0.113.5:40000"
	rec := httptest.NewRecorder()
	p2.Handler().ServeHTTP(rec, req)
	if rec.Code != 403 || f.calls.Load() != 0 || p2.Stats().Forbidden != 1 {
		t.Fatalf("foreign client: %d", rec.Code)
	}
}
