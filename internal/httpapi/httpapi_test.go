package httpapi

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dfp2p/dfp2p/crypto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// selfSigned writes a certificate for 127.0.0.1 and its key as PEM files.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dfp2p test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "api.crt"), filepath.Join(dir, "api.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	c, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(c)
	return certFile, keyFile, pool
}

// With WithTLS the API speaks HTTPS only; tokens gate it as over HTTP.
func TestListenTLSAndAuth(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	ca, _ := crypto.NewCA()
	auth, err := NewAuth(ca.Public(), dir)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /read", auth.Require(crypto.ScopeRead, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	mux.HandleFunc("POST /admin", auth.Require(crypto.ScopeAdmin, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	srv, err := Listen("127.0.0.1:0", dir, mux, slog.New(slog.DiscardHandler), WithTLS(certFile, keyFile))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	do := func(method, url, token string) int {
		req, _ := http.NewRequest(method, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	base := "https://" + srv.Addr()
	if got := do("GET", base+"/read", ""); got != 200 {
		t.Fatalf("loopback read without a token: %d", got)
	}
	if got := do("POST", base+"/admin", ""); got != 401 {
		t.Fatalf("admin without a token: %d", got)
	}
	local, _ := os.ReadFile(filepath.Join(dir, LocalTokenFile))
	if got := do("POST", base+"/admin", strings.TrimSpace(string(local))); got != 200 {
		t.Fatalf("admin with the local token: %d", got)
	}
	if fi, _ := os.Stat(filepath.Join(dir, LocalTokenFile)); fi.Mode().Perm() != 0o600 {
		t.Fatalf("local token mode %o", fi.Mode().Perm())
	}
	// Plain HTTP is not served.
	plain := &http.Client{Transport: &http.Transport{}}
	if resp, err := plain.Get("http://" + srv.Addr() + "/read"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP served on a TLS API")
		}
	}
	plain.CloseIdleConnections()
	if _, err := Listen("127.0.0.1:0", "", mux, slog.New(slog.DiscardHandler), WithTLS(certFile, "/nonexistent")); err == nil {
		t.Fatal("a missing key file was accepted")
	}
}
