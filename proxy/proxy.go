package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/dfp2p/dfp2p/internal/fsutil"
)

// BlobRequest asks the swarm for one blob. Digest ("sha256:HEX") names the task, so the same
// layer from two registry host names is one task; URL is the upstream blob URL used if the
// swarm has to read the origin; Header carries the requester's Authorization for that fetch.
type BlobRequest struct {
	URL    string
	Header http.Header
	Digest string
}

// Fetcher is what the daemon provides. The body yields the blob from offset 0; length is known.
// Errors that carry an HTTP status (the origin's 404, 401...) implement interface{ HTTPStatus() int }.
type Fetcher interface {
	FetchBlob(ctx context.Context, req BlobRequest) (body io.ReadCloser, length int64, err error)
}

// Config configures a Proxy.
type Config struct {
	Addr            string            // listen address; default "127.0.0.1:65001"
	AddrFile        string            // if set, the bound address is written there atomically — the daemon passes DIR/proxy
	Fetcher         Fetcher           // required
	DefaultRegistry string            // registry used when a request names none (no ?ns=); default "docker.io"
	Registries      map[string]string // registry name -> upstream base URL; unlisted names map to "https://<name>" (docker.io -> https://registry-1.docker.io built in)
	Rules           []string          // regexes on the full URL: which GETs go P2P in forward-proxy mode; default matches OCI blob URLs
	AllowCIDRs      []string          // clients allowed besides loopback; default none (never an open proxy)
	CACert, CAKey   string            // PEM files; with InterceptHosts set, CONNECT to those hosts is TLS-intercepted (opt-in)
	InterceptHosts  []string          // "host", "host:port" or "*.domain"
	AuthCacheTTL    time.Duration     // default 30s
	HTTPClient      *http.Client      // for upstream; default one with sane timeouts, Proxy: nil. Its redirect policy is replaced: redirects go back to the client.
	Logger          *slog.Logger
}

// Defaults and limits.
const (
	DefaultAddr     = "127.0.0.1:65001"
	DefaultRegistry = "docker.io"
	// DefaultRule matches OCI blob URLs: the GETs that go through the swarm in
	// forward-proxy mode.
	DefaultRule = `/v2/.+/blobs/sha256:[a-f0-9]{64}$`

	maxHeaderBytes    = 64 << 10
	maxPathLen        = 2048
	readHeaderTimeout = 10 * time.Second
	idleConnTimeout   = 2 * time.Minute
	// streamIdleTimeout bounds a body copy that makes no progress: an
	// upstream that stops sending, a client that stops reading.
	streamIdleTimeout = 2 * time.Minute
	// tunnelIdleTimeout closes a CONNECT tunnel idle both ways this long.
	tunnelIdleTimeout = 5 * time.Minute
	dialTimeout       = 10 * time.Second
	authCheckTimeout  = 30 * time.Second
	shutdownGrace     = 5 * time.Second
	copyBufSize       = 256 << 10
)

// Stats counts requests by outcome since the proxy started.
type Stats struct {
	Requests       int64 `json:"requests"`        // requests from allowed clients
	Forbidden      int64 `json:"forbidden"`       // refused: client neither loopback nor in AllowCIDRs
	BadRequests    int64 `json:"bad_requests"`    // refused by the proxy itself: bad path, digest, method, loop
	Forwarded      int64 `json:"forwarded"`       // passed through to an upstream
	BlobsServed    int64 `json:"blobs_served"`    // blob answers from the Fetcher sent completely
	BlobBytes      int64 `json:"blob_bytes"`      // body bytes of those
	BlobErrors     int64 `json:"blob_errors"`     // Fetcher errors answered before the first byte
	BlobsAborted   int64 `json:"blobs_aborted"`   // blob streams cut mid-way
	AuthChecks     int64 `json:"auth_checks"`     // HEADs sent upstream for the authorization check
	AuthCacheHits  int64 `json:"auth_cache_hits"` // authorization checks answered from the cache
	AuthDenied     int64 `json:"auth_denied"`     // blob GETs refused because the registry refused the requester
	UpstreamErrors int64 `json:"upstream_errors"` // upstream unreachable or failed mid-way
	Tunnels        int64 `json:"tunnels"`         // CONNECT tunnels opened
	Intercepted    int64 `json:"intercepted"`     // CONNECT sessions TLS-intercepted
}

type counters struct {
	requests, forbidden, badRequests, forwarded, blobsServed, blobBytes, blobErrors, blobsAborted,
	authChecks, authCacheHits, authDenied, upstreamErrors, tunnels, intercepted atomic.Int64
}

// Proxy is a running registry mirror and forward proxy.
type Proxy struct {
	cfg        Config
	log        *slog.Logger
	ln         net.Listener
	srv        *http.Server
	handler    http.Handler
	client     *http.Client // upstream; never follows redirects
	ownClient  bool
	rules      []*regexp.Regexp
	allow      []netip.Prefix
	registries map[string]*url.URL
	defaultReg string
	auth       *authCache
	authFlight singleflight.Group
	via        string // our Via token, for loop detection
	grace      time.Duration

	// TLS interception (nil without CA).
	ca        *certAuthority
	intercept []string
	isrv      *http.Server
	iln       *chanListener

	ctx    context.Context // cancelled by Close: stops fetches and upstream calls
	cancel context.CancelFunc

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{} // hijacked tunnel connections
	wg     sync.WaitGroup

	closeOnce sync.Once
	closeErr  error

	n              counters
	m              *metrics
	lastRefusalLog atomic.Int64 // unix nanos
}

// New listens and serves; it returns once listening.
func New(cfg Config) (*Proxy, error) {
	p, err := newProxy(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", p.cfg.Addr)
	if err != nil {
		p.cancel()
		return nil, fmt.Errorf("proxy listen %s: %w", p.cfg.Addr, err)
	}
	p.ln = ln
	if p.cfg.AddrFile != "" {
		if err := fsutil.WriteFileAtomic(p.cfg.AddrFile, []byte(ln.Addr().String()+"\n"), 0o644); err != nil {
			ln.Close()
			p.cancel()
			return nil, fmt.Errorf("proxy addr file: %w", err)
		}
	}
	errLog := slog.NewLogLogger(p.log.Handler(), slog.LevelDebug)
	p.srv = &http.Server{
		Handler:           p.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleConnTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return p.ctx },
		ErrorLog:          errLog,
	}
	p.serve(p.srv, ln)
	if p.ca != nil {
		p.iln = newChanListener(ln.Addr())
		p.isrv = &http.Server{
			Handler:           http.HandlerFunc(p.serveIntercepted),
			ReadHeaderTimeout: readHeaderTimeout,
			IdleTimeout:       idleConnTimeout,
			MaxHeaderBytes:    maxHeaderBytes,
			BaseContext:       func(net.Listener) context.Context { return p.ctx },
			ConnContext: func(ctx context.Context, c net.Conn) context.Context {
				if ic, ok := c.(*interceptConn); ok {
					return context.WithValue(ctx, interceptKey{}, ic.target)
				}
				return ctx
			},
			ErrorLog: errLog,
		}
		p.serve(p.isrv, p.iln)
	}
	p.log.Info("proxy listening", "addr", ln.Addr().String(), "default_registry", p.defaultReg,
		"allow", p.cfg.AllowCIDRs, "intercept", p.intercept)
	return p, nil
}

// newProxy checks cfg and builds everything but the listeners.
func newProxy(cfg Config) (*Proxy, error) {
	if cfg.Fetcher == nil {
		return nil, errors.New("proxy: Config.Fetcher is required")
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.DefaultRegistry == "" {
		cfg.DefaultRegistry = DefaultRegistry
	}
	if cfg.AuthCacheTTL <= 0 {
		cfg.AuthCacheTTL = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if len(cfg.Rules) == 0 {
		cfg.Rules = []string{DefaultRule}
	}
	p := &Proxy{
		cfg:        cfg,
		log:        cfg.Logger.With("component", "proxy"),
		registries: map[string]*url.URL{},
		auth:       newAuthCache(cfg.AuthCacheTTL),
		conns:      map[net.Conn]struct{}{},
		grace:      shutdownGrace,
		m:          newMetrics(),
	}
	var tok [6]byte
	_, _ = rand.Read(tok[:])
	p.via = "dfp2p-" + hex.EncodeToString(tok[:])

	reg, ok := normRegistry(cfg.DefaultRegistry)
	if !ok {
		return nil, fmt.Errorf("proxy: bad default registry %q", cfg.DefaultRegistry)
	}
	p.defaultReg = reg
	for name, base := range cfg.Registries {
		n, ok := normRegistry(name)
		if !ok {
			return nil, fmt.Errorf("proxy: bad registry name %q", name)
		}
		u, err := parseBase(base)
		if err != nil {
			return nil, fmt.Errorf("proxy: registry %s: %w", name, err)
		}
		p.registries[n] = u
	}
	for _, r := range cfg.Rules {
		re, err := regexp.Compile(r)
		if err != nil {
			return nil, fmt.Errorf("proxy: rule %q: %w", r, err)
		}
		p.rules = append(p.rules, re)
	}
	for _, c := range cfg.AllowCIDRs {
		pfx, err := netip.ParsePrefix(strings.TrimSpace(c))
		if err != nil {
			addr, aerr := netip.ParseAddr(strings.TrimSpace(c))
			if aerr != nil {
				return nil, fmt.Errorf("proxy: allow CIDR %q: %w", c, err)
			}
			pfx = netip.PrefixFrom(addr, addr.BitLen())
		}
		p.allow = append(p.allow, pfx.Masked())
	}
	for _, h := range cfg.InterceptHosts {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "" {
			continue
		}
		p.intercept = append(p.intercept, h)
	}
	if len(p.intercept) > 0 {
		if cfg.CACert == "" || cfg.CAKey == "" {
			return nil, errors.New("proxy: InterceptHosts needs CACert and CAKey")
		}
		ca, err := loadCA(cfg.CACert, cfg.CAKey)
		if err != nil {
			return nil, fmt.Errorf("proxy: %w", err)
		}
		p.ca = ca
	}
	if cfg.HTTPClient != nil {
		c := *cfg.HTTPClient
		p.client = &c
	} else {
		p.client = &http.Client{Transport: defaultTransport()}
		p.ownClient = true
	}
	// Redirects go back to the requester (mirror and proxy semantics); the
	// authorization check counts a redirect as "allowed".
	p.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.handler = http.HandlerFunc(p.serveHTTP)
	return p, nil
}

func defaultTransport() *http.Transport {
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:    10 * time.Second,
		ResponseHeaderTimeout:  30 * time.Second,
		ExpectContinueTimeout:  time.Second,
		IdleConnTimeout:        90 * time.Second,
		MaxIdleConns:           100,
		MaxIdleConnsPerHost:    16,
		MaxResponseHeaderBytes: maxHeaderBytes,
		ForceAttemptHTTP2:      true,
		DisableCompression:     true,
	}
}

func (p *Proxy) serve(srv *http.Server, ln net.Listener) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.log.Error("proxy server", "err", err)
		}
	}()
}

// Addr is the bound listen address.
func (p *Proxy) Addr() string {
	if p.ln == nil {
		return ""
	}
	return p.ln.Addr().String()
}

// Handler is the proxy's request handler (for tests); it applies the same
// client check as the listener.
func (p *Proxy) Handler() http.Handler { return p.handler }

// Stats returns the request counters.
func (p *Proxy) Stats() Stats {
	n := &p.n
	return Stats{
		Requests: n.requests.Load(), Forbidden: n.forbidden.Load(), BadRequests: n.badRequests.Load(),
		Forwarded: n.forwarded.Load(), BlobsServed: n.blobsServed.Load(), BlobBytes: n.blobBytes.Load(),
		BlobErrors: n.blobErrors.Load(), BlobsAborted: n.blobsAborted.Load(), AuthChecks: n.authChecks.Load(),
		AuthCacheHits: n.authCacheHits.Load(), AuthDenied: n.authDenied.Load(),
		UpstreamErrors: n.upstreamErrors.Load(), Tunnels: n.tunnels.Load(), Intercepted: n.intercepted.Load(),
	}
}

// Close stops the proxy: open requests get a few seconds to finish, then
// fetches and upstream calls are cancelled and connections closed. It waits
// for every goroutine the proxy started.
func (p *Proxy) Close() error {
	p.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), p.grace)
		var wg sync.WaitGroup
		for _, s := range []*http.Server{p.srv, p.isrv} {
			if s == nil {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = s.Shutdown(ctx)
			}()
		}
		wg.Wait()
		cancel()
		p.cancel()
		for _, s := range []*http.Server{p.srv, p.isrv} {
			if s != nil {
				_ = s.Close()
			}
		}
		if p.iln != nil {
			_ = p.iln.Close()
		}
		p.mu.Lock()
		p.closed = true
		for c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
		if p.ownClient {
			p.client.CloseIdleConnections()
		}
	})
	return p.closeErr
}

// enter registers a running handler; false once the proxy is closed.
func (p *Proxy) enter() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.wg.Add(1)
	return true
}

func (p *Proxy) leave() { p.wg.Done() }

// track registers a hijacked connection so that Close can cut it; it
// returns false (and closes c) when the proxy is closing.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.ctx.Err() != nil {
		_ = c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// clientAllowed reports whether a request from remoteAddr ("IP:port") may
// use the proxy: loopback, or inside one of AllowCIDRs.
func (p *Proxy) clientAllowed(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	if i := strings.IndexByte(host, '%'); i >= 0 { // IPv6 zone
		host = host[:i]
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	if addr.IsLoopback() {
		return true
	}
	for _, pfx := range p.allow {
		if pfx.Contains(addr) {
			return true
		}
	}
	return false
}

// looped reports whether r already went through this proxy.
func (p *Proxy) looped(r *http.Request) bool {
	for _, v := range r.Header.Values("Via") {
		if strings.Contains(v, p.via) {
			return true
		}
	}
	return false
}

// admit decides whether the proxy serves r at all, for plain and
// intercepted requests alike: the client must be loopback or in AllowCIDRs,
// and the request must not loop through this proxy. It answers the refusals.
func (p *Proxy) admit(w http.ResponseWriter, r *http.Request) bool {
	if !p.clientAllowed(r.RemoteAddr) {
		p.n.forbidden.Add(1)
		note(r, outcomeForbidden)
		level := slog.LevelDebug
		if now := time.Now().UnixNano(); now-p.lastRefusalLog.Load() > int64(10*time.Second) {
			p.lastRefusalLog.Store(now) // at most one warning per 10 s: scanners must not flood the log
			level = slog.LevelWarn
		}
		p.log.Log(r.Context(), level, "refused client: not loopback and not in allowed CIDRs", "remote", r.RemoteAddr,
			"method", r.Method, "host", r.Host, "refused_total", p.n.forbidden.Load())
		http.Error(w, "dfp2p proxy: client not allowed", http.StatusForbidden)
		return false
	}
	p.n.requests.Add(1)
	if p.looped(r) {
		p.n.badRequests.Add(1)
		note(r, outcomeRefused)
		http.Error(w, "dfp2p proxy: request loops through this proxy", http.StatusLoopDetected)
		return false
	}
	return true
}

func (p *Proxy) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if !p.enter() {
		w.Header().Set("Connection", "close")
		http.Error(w, "proxy is shutting down", http.StatusServiceUnavailable)
		return
	}
	defer p.leave()
	r, counted := p.observe(r, kindOf(r))
	defer counted()
	if !p.admit(w, r) {
		return
	}
	switch {
	case r.Method == http.MethodConnect:
		p.handleConnect(w, r)
	case r.URL.Scheme != "" || r.URL.Host != "":
		p.handleForward(w, r, r.URL)
	case r.URL.Path == "/healthz" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ok\n")
		note(r, outcomeOK)
	default:
		p.handleMirror(w, r)
	}
}
