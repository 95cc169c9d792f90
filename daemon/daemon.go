package daemon

import (
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dfp2p/dfp2p/cdn"
	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/crypto"
	"github.com/dfp2p/dfp2p/crypto/member"
	"github.com/dfp2p/dfp2p/dht"
	"github.com/dfp2p/dfp2p/exchange"
	"github.com/dfp2p/dfp2p/internal/httpapi"
	"github.com/dfp2p/dfp2p/internal/limit"
	"github.com/dfp2p/dfp2p/node"
	"github.com/dfp2p/dfp2p/proxy"
	"github.com/dfp2p/dfp2p/store"
	"github.com/dfp2p/dfp2p/tracker"
)

// Config is what a daemon needs.
type Config struct {
	DataDir  string
	Listen   []string // libp2p multiaddrs
	API      string   // HOST:PORT for the local HTTP API; "" disables it
	Trackers []string // tracker multiaddrs ending in /p2p/ID; none = origin only
	// QueryFilter lists query parameters dropped from URLs before hashing;
	// nil means content.DefaultQueryFilter.
	QueryFilter []string
	Logger      *slog.Logger

	// MaxConcurrentPieces bounds pieces in flight per download (default 16).
	MaxConcurrentPieces int
	// MaxUploads bounds concurrent piece uploads (default 32).
	MaxUploads int
	// GCInterval is how often garbage collection runs (default 15m; <0 disables).
	GCInterval time.Duration
	// TaskTTL: unused tasks older than this are collected (default 24h).
	TaskTTL time.Duration
	// HighWatermark and LowWatermark are disk-use fractions (default 0.8/0.6).
	HighWatermark, LowWatermark float64
	// PieceIdleTimeout fails a piece transfer that makes no progress for this
	// long (default 5s): a parent that died mid-transfer sends no reset.
	PieceIdleTimeout time.Duration
	// AnnounceInterval is how often held tasks are re-announced (default 30s).
	AnnounceInterval time.Duration
	// OriginClient is the HTTP client used when reading origins directly.
	OriginClient *http.Client
	// Proxy configures the registry mirror and HTTP proxy; a nil Proxy or an
	// empty Proxy.Addr turns it off. Its Fetcher is the daemon itself.
	Proxy *proxy.Config
	// Region and Zone label this daemon for the trackers' locality
	// preference: parents in the same zone, then the same region.
	Region, Zone string
	// Bootstrap lists extra DHT bootstrap multiaddrs (ending in /p2p/ID);
	// the trackers are always used. With no trackers at all, the DHT is how
	// the daemon finds peers (trackerless mode).
	Bootstrap []string
	// NoDHT turns the DHT off: without a tracker the daemon reads origins.
	NoDHT bool
	// DHTOptions are extra options for the DHT (tests shorten timings).
	DHTOptions []dht.Option
	// Join makes the daemon a member of a closed cluster: it proves the
	// token's secret to a tracker once, receives a membership certificate
	// (kept in DIR/membership.cert and renewed) and refuses peers without
	// one. The token's trackers are added to Trackers. Nil: open cluster.
	Join *crypto.JoinToken
	// APICertFile and APIKeyFile serve the HTTP API over TLS when set.
	APICertFile, APIKeyFile string
	// Limits are the bandwidth limits (0: unlimited); PUT /api/v1/limits
	// changes them at run time.
	Limits limit.Rates
	// EncryptKey (32 bytes) turns on encryption of cached pieces at rest
	// with EncryptCipher (store.Ciphers; default aes-256-gcm).
	EncryptKey    []byte
	EncryptCipher string
	// Security is the TCP security transport (node.SecurityChoices;
	// "" = node.DefaultSecurity).
	Security string
	// NodeOptions are extra options for the libp2p host (the simulation
	// runner supplies its UDP sockets).
	NodeOptions []node.Option
	// Host, when set, is used instead of building one (in-process
	// simulations on a simulated network). It stays the caller's: Close
	// does not close it, and Listen, Security and NodeOptions are ignored.
	Host host.Host
	// WriteAddrs writes DIR/addrs once listening (default true for processes;
	// in-process peers of `dfp2p get` turn it off).
	NoAddrsFile bool
}

func (c *Config) defaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.QueryFilter == nil {
		c.QueryFilter = content.DefaultQueryFilter
	}
	if c.MaxConcurrentPieces <= 0 {
		c.MaxConcurrentPieces = 16
	}
	if c.MaxUploads <= 0 {
		c.MaxUploads = 32
	}
	if c.GCInterval == 0 {
		c.GCInterval = 15 * time.Minute
	}
	if c.TaskTTL <= 0 {
		c.TaskTTL = 24 * time.Hour
	}
	if c.HighWatermark <= 0 {
		c.HighWatermark = 0.8
	}
	if c.LowWatermark <= 0 {
		c.LowWatermark = 0.6
	}
	if c.PieceIdleTimeout <= 0 {
		c.PieceIdleTimeout = 5 * time.Second
	}
	if c.AnnounceInterval <= 0 {
		c.AnnounceInterval = 30 * time.Second
	}
}

// Daemon is a running peer.
type Daemon struct {
	cfg        Config
	log        *slog.Logger
	h          host.Host
	st         *store.Store
	xs         *exchange.Server
	xc         *exchange.Client
	tc         *tracker.Client
	dht        *dht.DHT
	members    *member.Members
	keeper     *member.Keeper
	auth       *httpapi.Auth
	originOpts []cdn.Option
	limits     *limit.Set
	m          *metrics
	api        *httpapi.Server
	proxy      *proxy.Proxy

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	active map[content.TaskID]*download
	// recent keeps the byte sources of the last finished downloads for the
	// API (bounded: see rememberStats).
	recent map[content.TaskID]Stats

	verifying sync.Mutex // one cache verify at a time (api_cache.go)
}

// New starts a daemon. It returns once the host listens, the API serves and
// DIR/addrs is written.
func New(cfg Config) (*Daemon, error) {
	cfg.defaults()
	d := &Daemon{cfg: cfg, log: cfg.Logger.With("component", "daemon"), active: map[content.TaskID]*download{}, recent: map[content.TaskID]Stats{}}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	ok := false
	defer func() {
		if !ok {
			_ = d.Close()
		}
	}()
	if cfg.Join != nil {
		cfg.Trackers = append(append([]string(nil), cfg.Join.Addrs...), cfg.Trackers...)
	}
	trackers, err := tracker.ParseAddrs(cfg.Trackers)
	if err != nil {
		return nil, err
	}
	relay := &dht.Relay{}
	st, err := store.Open(cfg.DataDir, store.WithLogger(d.log), store.WithTTL(cfg.TaskTTL),
		store.WithWatermarks(cfg.HighWatermark, cfg.LowWatermark), store.WithEvents(relay.Event),
		store.WithEncryption(cfg.EncryptKey, cfg.EncryptCipher))
	if err != nil {
		return nil, err
	}
	d.st = st
	h := cfg.Host
	if h == nil {
		h, err = node.New(append([]node.Option{node.WithIdentityDir(cfg.DataDir), node.WithListenAddrs(cfg.Listen...),
			node.WithSecurity(cfg.Security), node.WithLogger(d.log)}, cfg.NodeOptions...)...)
		if err != nil {
			return nil, err
		}
	}
	d.h = h
	d.m = newMetrics()
	d.limits = limit.NewSet(cfg.Limits)
	d.m.reg.MustRegister(d.limits.Collector())
	var ca ed25519.PublicKey
	if cfg.Join != nil {
		ca = cfg.Join.CA
	}
	if d.members, err = member.New(h, ca, member.WithLogger(d.log)); err != nil {
		return nil, err
	}
	d.m.reg.MustRegister(d.members.Collectors()...)
	d.m.reg.MustRegister(append(st.Collectors(), node.Collectors(h)...)...)
	gated := d.members.Host()
	d.xs = exchange.NewServer(gated, st, exchange.WithMaxUploads(cfg.MaxUploads), exchange.WithStatus(exchange.StoreStatus(st)),
		exchange.WithUploadObserver(func(_ peer.ID, n int64) { d.m.uploadBytes.Add(float64(n)) }), exchange.WithUploadLimit(d.limits.Upload))
	d.xc = exchange.NewClient(h, exchange.WithIdleTimeout(cfg.PieceIdleTimeout), exchange.WithDownloadLimit(d.limits.Download))
	if len(trackers) > 0 {
		d.tc = tracker.NewClient(h, trackers)
	}
	d.servePreheat(gated)
	if cfg.Join != nil {
		if err := d.join(trackers); err != nil {
			return nil, err
		}
	}
	if !cfg.NoDHT {
		// Trackers run DHT servers: they are the natural way in.
		boot := append(append([]string(nil), cfg.Bootstrap...), cfg.Trackers...)
		kd, err := relay.Start(d.ctx, gated, st, d.m.reg, boot, d.log, cfg.DHTOptions...)
		if err != nil {
			return nil, err
		}
		d.dht = kd
	}
	d.originOpts = []cdn.Option{cdn.WithLogger(d.log), cdn.WithRateLimit(d.limits.OriginGroup())}
	if cfg.OriginClient != nil {
		d.originOpts = append(d.originOpts, cdn.WithHTTPClient(cfg.OriginClient))
	}
	if cfg.API != "" {
		api, err := httpapi.Listen(cfg.API, cfg.DataDir, d.apiHandler(), d.log, httpapi.WithTLS(cfg.APICertFile, cfg.APIKeyFile))
		if err != nil {
			return nil, err
		}
		d.api = api
	}
	if cfg.Proxy != nil && cfg.Proxy.Addr != "" {
		pc := *cfg.Proxy
		pc.Fetcher = d
		if pc.Logger == nil {
			pc.Logger = d.log
		}
		if pc.AddrFile == "" && !cfg.NoAddrsFile {
			pc.AddrFile = filepath.Join(cfg.DataDir, "proxy")
		}
		p, err := proxy.New(pc)
		if err != nil {
			return nil, err
		}
		d.proxy = p
		d.m.reg.MustRegister(p.Collectors()...)
	}
	if d.tc != nil {
		d.wg.Add(1)
		go d.announceLoop()
	}
	if cfg.GCInterval > 0 {
		d.wg.Add(1)
		go d.gcLoop()
	}
	if !cfg.NoAddrsFile {
		if err := node.WriteAddrsFile(filepath.Join(cfg.DataDir, "addrs"), h); err != nil {
			return nil, err
		}
	}
	d.log.Info("daemon listening", "peer", h.ID(), "addrs", node.Addrs(h), "api", d.APIAddr(), "proxy", d.ProxyAddr(), "trackers", len(trackers))
	ok = true
	return d, nil
}

// Host is the daemon's libp2p host.
func (d *Daemon) Host() host.Host { return d.h }

// Store is the daemon's piece store.
func (d *Daemon) Store() *store.Store { return d.st }

// APIAddr is the HTTP API's address, or "".
func (d *Daemon) APIAddr() string {
	return d.api.Addr()
}

// ProxyAddr is the registry mirror's address, or "".
func (d *Daemon) ProxyAddr() string {
	if d.proxy == nil {
		return ""
	}
	return d.proxy.Addr()
}

// Registry is the daemon's Prometheus registry.
func (d *Daemon) Registry() *prometheus.Registry { return d.m.reg }

// Close stops the daemon: downloads are cancelled (their pieces stay on disk
// for the next start), the API and host are shut down.
func (d *Daemon) Close() error {
	d.leaveAll()
	if d.proxy != nil {
		_ = d.proxy.Close()
	}
	d.cancel()
	d.api.Close()
	if d.xs != nil {
		_ = d.xs.Close()
	}
	d.wg.Wait()
	if d.dht != nil {
		_ = d.dht.Close()
	}
	if d.keeper != nil {
		d.keeper.Close()
	}
	if d.members != nil {
		d.members.Close()
	}
	var err error
	if d.h != nil && d.cfg.Host == nil {
		err = d.h.Close()
	}
	if d.st != nil {
		err = errors.Join(err, d.st.Close())
	}
	return err
}

// start returns the download for req, starting one if none is running.
func (d *Daemon) start(req Request) (*download, error) {
	if _, err := content.ParseURL(req.URL); err != nil {
		return nil, &Error{Msg: err.Error(), BadRequest: true}
	}
	if err := content.CheckHeader(req.Header); err != nil {
		return nil, &Error{Msg: err.Error(), BadRequest: true}
	}
	id, err := content.TaskIDFor(req.URL, req.Tag, req.Digest, d.cfg.QueryFilter)
	if err != nil {
		return nil, &Error{Msg: err.Error(), BadRequest: true}
	}
	return d.startTask(id, req)
}

// startTask is start for a task whose ID is already known (a repair).
func (d *Daemon) startTask(id content.TaskID, req Request) (*download, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ctx.Err() != nil {
		return nil, errors.New("daemon is shutting down")
	}
	if dl, ok := d.active[id]; ok {
		return dl, nil
	}
	dl := newDownload(id, req)
	d.active[id] = dl
	d.m.activeDownloads.Inc()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer d.m.activeDownloads.Dec()
		d.run(d.ctx, dl)
	}()
	return dl, nil
}

// Open starts (or joins) the download of req and returns a stream of the
// file's bytes in order, available as soon as the first pieces are. It
// returns once the file's length is known, or with the error that stopped the
// download (an origin 404 arrives here as *Error with OriginStatus 404).
func (d *Daemon) Open(ctx context.Context, req Request) (*Stream, error) {
	dl, err := d.start(req)
	if err != nil {
		return nil, err
	}
	if err := dl.waitStarted(ctx); err != nil {
		return nil, err
	}
	return &Stream{d: d, dl: dl, ctx: ctx, Task: dl.task, Length: dl.length}, nil
}

func (d *Daemon) announceLoop() {
	defer d.wg.Done()
	tk := time.NewTicker(d.cfg.AnnounceInterval)
	defer tk.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-tk.C:
			d.announceAll()
		}
	}
}

// announceAll tells the tracker which pieces this daemon holds for every
// task in its store, so it stays a parent after its own download finished
// and the tracker can rebuild its state after a restart.
func (d *Daemon) announceAll() {
	tasks, err := d.st.Tasks()
	if err != nil {
		return
	}
	addrs := node.Addrs(d.h)
	for _, t := range tasks {
		if t.Held == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(d.ctx, 5*time.Second)
		_, err := d.tc.Call(ctx, &tracker.Request{Type: tracker.TypeAnnounce, Task: t.ID, Addrs: addrs,
			Have: tracker.NewBitfield(d.st.Have(t.ID)), Region: d.cfg.Region, Zone: d.cfg.Zone})
		cancel()
		if err != nil {
			d.log.Debug("announce", "task", t.ID.Short(), "err", err)
		}
	}
}

// leaveAll tells the tracker, best effort and briefly, that this peer no
// longer serves its tasks, so nobody is sent to a daemon that is gone.
func (d *Daemon) leaveAll() {
	if d.tc == nil || d.st == nil {
		return
	}
	tasks, err := d.st.Tasks()
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, t := range tasks {
		if ctx.Err() != nil {
			return
		}
		_, _ = d.tc.Call(ctx, &tracker.Request{Type: tracker.TypeLeave, Task: t.ID})
	}
}

func (d *Daemon) gcLoop() {
	defer d.wg.Done()
	d.st.RunGC(d.ctx, d.cfg.GCInterval, nil) // counted in the store's metrics
}
