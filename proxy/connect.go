package proxy

import (
	"bufio"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// handleConnect serves CONNECT host:port: a raw tunnel, or TLS interception
// for Config.InterceptHosts.
func (p *Proxy) handleConnect(w http.ResponseWriter, r *http.Request) {
	target := r.Host
	if target == "" {
		target = r.URL.Host
	}
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		host, port = target, "443"
	}
	if _, ok := normRegistry(net.JoinHostPort(host, port)); !ok || port == "0" {
		p.refuse(w, r, &pathError{status: http.StatusBadRequest, code: "UNSUPPORTED", msg: "bad CONNECT target"})
		return
	}
	target = net.JoinHostPort(host, port)
	if p.ca != nil && p.intercepts(host, port) {
		p.interceptConnect(w, r, target)
		return
	}
	d := net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	up, err := d.DialContext(r.Context(), "tcp", target)
	if err != nil {
		if r.Context().Err() != nil {
			return
		}
		p.n.upstreamErrors.Add(1)
		note(r, outcomeError)
		p.log.Info("CONNECT dial failed", "target", target, "err", err)
		http.Error(w, "dfp2p proxy: cannot reach "+target, http.StatusBadGateway)
		return
	}
	client, raw, err := p.hijack(w)
	if err != nil {
		up.Close()
		p.log.Warn("CONNECT hijack failed", "err", err)
		return
	}
	defer p.untrack(raw)
	if !p.track(up) {
		raw.Close()
		return
	}
	defer p.untrack(up)
	p.n.tunnels.Add(1)
	note(r, outcomeTunnel)
	p.log.Debug("tunnel open", "target", target)
	tunnel(client, up, tunnelIdleTimeout)
}

// hijack takes the client connection over and answers 200. It returns the
// connection to use (with any bytes the client already sent) and the raw
// one, tracked for Close (the caller untracks it).
func (p *Proxy) hijack(w http.ResponseWriter) (conn, raw net.Conn, err error) {
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if !p.track(c) {
		return nil, nil, errors.New("proxy closing")
	}
	_ = c.SetDeadline(time.Now().Add(readHeaderTimeout))
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection Established\r\n\r\n"); err != nil {
		p.untrack(c)
		c.Close()
		return nil, nil, err
	}
	_ = c.SetDeadline(time.Time{})
	conn = c
	if brw != nil && brw.Reader.Buffered() > 0 {
		conn = &bufConn{Conn: c, r: brw.Reader}
	}
	return conn, c, nil
}

// bufConn is a connection whose first bytes were already buffered.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(b []byte) (int, error) { return c.r.Read(b) }

func (c *bufConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// tunnel copies a<->b until both sides are done, or nothing moved either
// way for idle.
func tunnel(a, b net.Conn, idle time.Duration) {
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	done := make(chan struct{})
	go func() {
		defer close(done)
		pipe(b, a, idle, &last)
	}()
	pipe(a, b, idle, &last)
	<-done
	a.Close()
	b.Close()
}

// pipe copies src to dst. On a clean end it half-closes dst; on an error, or
// when both directions have been idle for idle, it closes both.
func pipe(dst, src net.Conn, idle time.Duration, last *atomic.Int64) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := (*bp)[:32<<10]
	for {
		_ = src.SetReadDeadline(time.Now().Add(idle))
		n, err := src.Read(buf)
		if n > 0 {
			last.Store(time.Now().UnixNano())
			_ = dst.SetWriteDeadline(time.Now().Add(idle))
			if _, werr := dst.Write(buf[:n]); werr != nil {
				src.Close()
				dst.Close()
				return
			}
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && time.Since(time.Unix(0, last.Load())) < idle {
				continue // the other direction is busy
			}
			if errors.Is(err, io.EOF) {
				if cw, ok := dst.(interface{ CloseWrite() error }); ok {
					_ = cw.CloseWrite()
					return
				}
			}
			src.Close()
			dst.Close()
			return
		}
	}
}

// intercepts reports whether CONNECT to host:port is TLS-intercepted.
func (p *Proxy) intercepts(host, port string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	hp := net.JoinHostPort(host, port)
	for _, h := range p.intercept {
		switch {
		case h == host || h == hp:
			return true
		case strings.HasPrefix(h, "*.") && strings.HasSuffix(host, h[1:]):
			return true
		}
	}
	return false
}

type interceptKey struct{}

// interceptConn is a decrypted CONNECT session with its target host:port.
type interceptConn struct {
	net.Conn
	target string
}

func (p *Proxy) interceptConnect(w http.ResponseWriter, r *http.Request, target string) {
	host, _, _ := net.SplitHostPort(target)
	client, raw, err := p.hijack(w)
	if err != nil {
		p.log.Warn("CONNECT hijack failed", "err", err)
		return
	}
	// From here the intercept server owns the connection.
	p.untrack(raw)
	p.n.intercepted.Add(1)
	note(r, outcomeIntercepted)
	tc := tls.Server(client, &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return p.ca.leaf(host)
		},
	})
	p.log.Debug("intercepting CONNECT", "target", target)
	p.iln.push(&interceptConn{Conn: tc, target: target})
}

// serveIntercepted serves requests decrypted from an intercepted CONNECT:
// routed as https://host/... like absolute-form proxy requests.
func (p *Proxy) serveIntercepted(w http.ResponseWriter, r *http.Request) {
	if !p.enter() {
		w.Header().Set("Connection", "close")
		http.Error(w, "proxy is shutting down", http.StatusServiceUnavailable)
		return
	}
	defer p.leave()
	r, counted := p.observe(r, kindForward)
	defer counted()
	target, _ := r.Context().Value(interceptKey{}).(string)
	if target == "" {
		p.n.forbidden.Add(1)
		note(r, outcomeForbidden)
		http.Error(w, "dfp2p proxy: client not allowed", http.StatusForbidden)
		return
	}
	if !p.admit(w, r) {
		return
	}
	if r.Method == http.MethodConnect || !strings.HasPrefix(r.RequestURI, "/") {
		p.refuse(w, r, &pathError{status: http.StatusBadRequest, code: "UNSUPPORTED", msg: "want origin-form requests inside an intercepted tunnel"})
		return
	}
	host := strings.TrimSuffix(target, ":443")
	u, err := url.Parse("https://" + host + r.URL.RequestURI())
	if err != nil {
		p.refuse(w, r, &pathError{status: http.StatusBadRequest, code: "UNSUPPORTED", msg: "bad request URI"})
		return
	}
	p.handleForward(w, r, u)
}

// chanListener hands connections pushed by CONNECT to an http.Server.
type chanListener struct {
	addr net.Addr
	ch   chan net.Conn
	mu   sync.Mutex
	done chan struct{}
	shut bool
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// push gives c to the server, or closes it once the listener is closed.
func (l *chanListener) push(c net.Conn) {
	l.mu.Lock()
	if l.shut {
		l.mu.Unlock()
		c.Close()
		return
	}
	l.mu.Unlock()
	select {
	case l.ch <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *chanListener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.shut {
		l.shut = true
		close(l.done)
	}
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// certAuthority mints leaf certificates for intercepted hosts.
type certAuthority struct {
	cert    *x509.Certificate
	certDER []byte
	key     crypto.Signer
	leafKey *ecdsa.PrivateKey

	mu    sync.Mutex
	cache map[string]*tls.Certificate
}

const (
	leafValidity  = 7 * 24 * time.Hour
	maxLeafCached = 1024
)

func loadCA(certFile, keyFile string) (*certAuthority, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("parse CA: %w", err)
	}
	if !cert.IsCA || (cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0) {
		return nil, errors.New("CA certificate cannot sign certificates (not a CA, or no certSign usage)")
	}
	if time.Now().After(cert.NotAfter) {
		return nil, errors.New("CA certificate has expired")
	}
	key, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, errors.New("CA key cannot sign")
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return &certAuthority{cert: cert, certDER: pair.Certificate[0], key: key, leafKey: leafKey,
		cache: map[string]*tls.Certificate{}}, nil
}

// leaf returns a (cached) certificate for host signed by the CA.
func (ca *certAuthority) leaf(host string) (*tls.Certificate, error) {
	host = strings.ToLower(strings.Trim(host, "[]"))
	now := time.Now()
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if c, ok := ca.cache[host]; ok && now.Before(c.Leaf.NotAfter.Add(-time.Hour)) {
		return c, nil
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: host, Organization: []string{"dfp2p proxy"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(leafValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	if tmpl.NotAfter.After(ca.cert.NotAfter) {
		tmpl.NotAfter = ca.cert.NotAfter
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &ca.leafKey.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("mint certificate for %s: %w", host, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	c := &tls.Certificate{Certificate: [][]byte{der, ca.certDER}, PrivateKey: ca.leafKey, Leaf: leaf}
	if len(ca.cache) >= maxLeafCached {
		clear(ca.cache)
	}
	ca.cache[host] = c
	return c, nil
}
