package dht

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	kad "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p-kad-dht/records"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/dfp2p/dfp2p/content"
)

// ProtocolPrefix is the DHT protocol prefix: peers speak /dfp2p/kad/1.0.0 and
// never join the public /ipfs DHT.
const ProtocolPrefix protocol.ID = "/dfp2p"

// Cluster-tuned defaults. See the package documentation for why they are
// minutes, not the public DHT's hours.
const (
	// DefaultProvideTTL is how long a peer keeps a provider record it was
	// sent. Three reprovide intervals: a record survives two missed rounds.
	DefaultProvideTTL = 30 * time.Minute
	// DefaultReprovideInterval is how often every provided key is announced
	// again.
	DefaultReprovideInterval = 10 * time.Minute
	// DefaultQueryTimeout bounds one lookup or one announcement. Inside a
	// cluster a lookup takes milliseconds; the bound is for dead peers.
	DefaultQueryTimeout = 10 * time.Second
	// DefaultMaxProviders is used by FindProviders when max <= 0.
	DefaultMaxProviders = 20
)

const (
	// retryInterval is how soon an announcement that failed (for example
	// before the node joined the DHT) is tried again. It is also the longest
	// the reprovider sleeps between scans of its key set.
	retryInterval = 30 * time.Second
	// rtRefreshPeriod is how often the routing table's buckets are
	// refreshed. Half the library default: pods come and go faster than
	// public DHT peers.
	rtRefreshPeriod = 5 * time.Minute
	// Bootstrap loop: backoff between connection attempts while the routing
	// table is empty, and the health-check period once it is not.
	bootstrapMinBackoff = 250 * time.Millisecond
	bootstrapMaxBackoff = 30 * time.Second
	bootstrapCheck      = 5 * time.Second
	// maxAnnounceConcurrency bounds the reprovider's parallel announcements.
	maxAnnounceConcurrency = 8
	// findGrace is how long a provider lookup goes on collecting after the
	// first provider arrived.
	findGrace = 300 * time.Millisecond
)

// ErrClosed is returned by calls made after Close.
var ErrClosed = errors.New("dht: closed")

// ErrNoPeers is returned by FindProviders and FindRootProviders when nothing
// was found and the node has no DHT peers (it has not joined yet).
var ErrNoPeers = errors.New("dht: no DHT peers (not joined yet)")

type config struct {
	bootstrap    []string
	server       bool
	log          *slog.Logger
	provideTTL   time.Duration
	reprovide    time.Duration
	queryTimeout time.Duration
}

// Option configures New.
type Option func(*config)

// WithBootstrap sets the peers to join through: full multiaddrs ending in
// /p2p/<peer ID>, for example the trackers' addresses. Several addresses of
// one peer are merged; the node's own ID is skipped. Without bootstrap peers
// the node waits for others to connect to it (the first tracker of a
// cluster).
func WithBootstrap(addrs ...string) Option {
	return func(c *config) { c.bootstrap = append(c.bootstrap, addrs...) }
}

// WithServerMode selects server mode (true, the default: answer queries and
// store records; for trackers, seeds and in-cluster daemons) or libp2p's
// auto mode (false: act as a client until AutoNAT reports the host publicly
// reachable; for daemons that may sit behind NAT).
func WithServerMode(server bool) Option { return func(c *config) { c.server = server } }

// WithLogger sets the logger for joins, losses and failed announcements.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithProvideTTL sets how long this node keeps provider records others send
// it. It must exceed the reprovide interval.
func WithProvideTTL(d time.Duration) Option { return func(c *config) { c.provideTTL = d } }

// WithReprovideInterval sets how often provided keys are announced again.
func WithReprovideInterval(d time.Duration) Option { return func(c *config) { c.reprovide = d } }

// WithQueryTimeout bounds each lookup and each announcement (the caller's
// context may bound them further).
func WithQueryTimeout(d time.Duration) Option { return func(c *config) { c.queryTimeout = d } }

// DHT is a running DHT node on a caller-owned libp2p host.
type DHT struct {
	h    host.Host
	kad  *kad.IpfsDHT
	cfg  config
	log  *slog.Logger
	boot []peer.AddrInfo

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	mu    sync.Mutex
	keys  map[string]*keyState       // provided keys by CID key string
	roots map[content.TaskID]cid.Cid // root advertised per task, for Withdraw
	kick  chan struct{}              // asks the reprovider to retry failed keys now
	sem   chan struct{}              // bounds concurrent reprovider announcements
}

// New starts a DHT node on h, starts connecting to the bootstrap peers in
// the background (retrying until the routing table has peers, and again
// whenever it empties) and returns without waiting for the join. Close stops
// it; the host stays the caller's.
func New(ctx context.Context, h host.Host, opts ...Option) (*DHT, error) {
	cfg := config{
		server:       true,
		provideTTL:   DefaultProvideTTL,
		reprovide:    DefaultReprovideInterval,
		queryTimeout: DefaultQueryTimeout,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.log == nil {
		cfg.log = slog.New(slog.DiscardHandler)
	}
	if h == nil {
		return nil, errors.New("dht: nil host")
	}
	if cfg.reprovide <= 0 || cfg.queryTimeout <= 0 {
		return nil, fmt.Errorf("dht: reprovide interval (%s) and query timeout (%s) must be positive", cfg.reprovide, cfg.queryTimeout)
	}
	if cfg.provideTTL <= cfg.reprovide {
		return nil, fmt.Errorf("dht: provide TTL %s must exceed the reprovide interval %s, or records expire between announcements", cfg.provideTTL, cfg.reprovide)
	}
	boot, err := ParseBootstrap(h.ID(), cfg.bootstrap)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	mode := kad.ModeServer
	if !cfg.server {
		mode = kad.ModeAuto
	}
	k, err := kad.New(h,
		kad.ProtocolPrefix(ProtocolPrefix),
		kad.Mode(mode),
		// Provider records are soft state, rebuilt by reproviding; nothing
		// is worth keeping across a restart.
		kad.Datastore(dssync.MutexWrap(ds.NewMapDatastore())),
		// Only provider records are used; value records (PutValue) are not
		// stored or served.
		kad.DisableValues(),
		kad.ProviderManagerOpts(
			records.ProvideValidity(cfg.provideTTL),
			records.ProviderAddrTTL(cfg.provideTTL),
			records.CleanupInterval(cfg.reprovide),
		),
		// The bootstrap loop below owns joining; the library gets no
		// bootstrap peers (and so never falls back to public ones).
		kad.BootstrapPeersFunc(func() []peer.AddrInfo { return nil }),
		kad.RoutingTableRefreshPeriod(rtRefreshPeriod),
		kad.RoutingTableRefreshQueryTimeout(cfg.queryTimeout),
		kad.AddressFilter(dropLoopbackIfRoutable),
	)
	if err != nil {
		return nil, fmt.Errorf("dht: %w", err)
	}

	d := &DHT{
		h:     h,
		kad:   k,
		cfg:   cfg,
		log:   cfg.log,
		boot:  boot,
		keys:  map[string]*keyState{},
		roots: map[content.TaskID]cid.Cid{},
		kick:  make(chan struct{}, 1),
		sem:   make(chan struct{}, maxAnnounceConcurrency),
	}
	// The node outlives the ctx given to New (which only bounds start-up),
	// so its own context derives from Background.
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.wg.Add(2)
	go d.bootstrapLoop()
	go d.reprovideLoop()
	d.log.Debug("dht started", "prefix", ProtocolPrefix, "server", cfg.server, "bootstrap", len(boot))
	return d, nil
}

// Close stops the bootstrap and reprovider loops, waits for them and closes
// the DHT. Records this node announced stay on other peers until their TTL
// runs out. The host is not closed. Close is idempotent.
func (d *DHT) Close() error {
	var err error
	d.once.Do(func() {
		d.cancel()
		d.wg.Wait()
		err = d.kad.Close()
	})
	return err
}

// RoutingTableSize is how many DHT peers this node routes through (0 until
// it has joined). For health checks and metrics.
func (d *DHT) RoutingTableSize() int { return d.kad.RoutingTable().Size() }

// ParseBootstrap parses bootstrap multiaddrs (each must end in /p2p/<peer
// ID>), merges addresses of the same peer and drops self. It is what New
// does with WithBootstrap; callers may use it to validate configuration early.
func ParseBootstrap(self peer.ID, addrs []string) ([]peer.AddrInfo, error) {
	var mas []ma.Multiaddr
	for _, s := range addrs {
		m, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("dht: bootstrap address %q: %w", s, err)
		}
		if _, err := m.ValueForProtocol(ma.P_P2P); err != nil {
			return nil, fmt.Errorf("dht: bootstrap address %q has no /p2p/<peer ID> component", s)
		}
		mas = append(mas, m)
	}
	infos, err := peer.AddrInfosFromP2pAddrs(mas...)
	if err != nil {
		return nil, fmt.Errorf("dht: bootstrap addresses: %w", err)
	}
	out := infos[:0]
	for _, ai := range infos {
		if ai.ID == self {
			continue
		}
		if len(ai.Addrs) == 0 {
			return nil, fmt.Errorf("dht: bootstrap peer %s has no transport address", ai.ID)
		}
		out = append(out, ai)
	}
	return out, nil
}

// dropLoopbackIfRoutable removes loopback addresses from a peer's address
// list (ours when announcing, others' when storing them) when it has other
// addresses. A host listening on 0.0.0.0 reports 127.0.0.1 among its
// addresses; another host dialling it would reach itself or a neighbour
// process. A loopback-only list (tests, single-host setups) is kept.
func dropLoopbackIfRoutable(addrs []ma.Multiaddr) []ma.Multiaddr {
	routable := 0
	for _, a := range addrs {
		if !manet.IsIPLoopback(a) {
			routable++
		}
	}
	if routable == 0 || routable == len(addrs) {
		return addrs
	}
	out := make([]ma.Multiaddr, 0, routable)
	for _, a := range addrs {
		if !manet.IsIPLoopback(a) {
			out = append(out, a)
		}
	}
	return out
}

// bootstrapLoop joins the DHT and rejoins it whenever the routing table
// empties. While the table is empty it dials every bootstrap peer, with
// exponential backoff between rounds; peers enter the table asynchronously
// (identify, then the library's liveness check). On the first peer it
// refreshes the routing table and asks the reprovider to retry the keys that
// could not be announced yet.
func (d *DHT) bootstrapLoop() {
	defer d.wg.Done()
	joined := false
	backoff := bootstrapMinBackoff
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-timer.C:
		}
		if n := d.kad.RoutingTable().Size(); n > 0 {
			if !joined {
				joined = true
				backoff = bootstrapMinBackoff
				d.log.Info("dht joined", "peers", n)
				d.refresh()
				d.kickReprovider()
			}
			timer.Reset(bootstrapCheck)
			continue
		}
		if joined {
			joined = false
			d.log.Warn("dht lost all peers; rejoining through bootstrap peers")
		}
		if len(d.boot) == 0 {
			// Nothing to dial: wait for others to connect (the first
			// tracker of a cluster), and notice them soon.
			timer.Reset(time.Second)
			continue
		}
		if ok := d.connectBootstrap(); ok == 0 {
			d.log.Debug("dht bootstrap: no peer reachable", "retry_in", backoff)
		}
		timer.Reset(backoff)
		backoff = min(2*backoff, bootstrapMaxBackoff)
	}
}

// connectBootstrap dials all bootstrap peers in parallel and reports how
// many are connected.
func (d *DHT) connectBootstrap() int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for _, ai := range d.boot {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(d.ctx, d.cfg.queryTimeout)
			defer cancel()
			if err := d.h.Connect(ctx, ai); err != nil {
				if d.ctx.Err() == nil {
					d.log.Debug("dht bootstrap dial failed", "peer", ai.ID, "err", err)
				}
				return
			}
			mu.Lock()
			ok++
			mu.Unlock()
		})
	}
	wg.Wait()
	return ok
}

// refresh runs one routing-table refresh and waits for it (bounded).
func (d *DHT) refresh() {
	ctx, cancel := context.WithTimeout(d.ctx, 2*d.cfg.queryTimeout)
	defer cancel()
	select {
	case err := <-d.kad.RefreshRoutingTable():
		if err != nil && d.ctx.Err() == nil {
			d.log.Debug("dht routing table refresh", "err", err)
		}
	case <-ctx.Done():
	}
}

// queryContext bounds one lookup or announcement by the query timeout, the
// caller's ctx and Close.
func (d *DHT) queryContext(ctx context.Context) (context.Context, context.CancelFunc) {
	qctx, cancel := context.WithTimeout(ctx, d.cfg.queryTimeout)
	stop := context.AfterFunc(d.ctx, cancel)
	return qctx, func() { stop(); cancel() }
}
