// Package node owns libp2p host construction for dfp2p: the host identity,
// the transports and their security, and the resource and connection limits.
//
// It must not know any dfp2p protocol: packages such as exchange and tracker
// register their own stream handlers on the host that New returns.
//
// Transport choices:
//   - QUIC v1 is the primary transport (one round trip to connect, no
//     head-of-line blocking between streams, TLS 1.3 built in).
//   - TCP is the fallback, secured with exactly one of Noise (the default) or
//     TLS 1.3, chosen with WithSecurity, and multiplexed with yamux. Only the
//     chosen one is offered, so an operator can pin it; plaintext is never
//     offered. See docs/TRANSPORT.md.
//   - No relay, WebSocket, WebTransport or WebRTC: dfp2p peers sit on
//     reachable cluster networks and move bulk data, which relays cannot.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/libp2p/go-libp2p/x/rate"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/quic-go/quic-go"
	"go.uber.org/fx"

	"github.com/dfp2p/dfp2p/internal/fsutil"
)

// DefaultListenAddrs are used when WithListenAddrs is not given: QUIC and TCP
// on loopback with kernel-chosen ports. Daemons pass their configured
// addresses explicitly.
var DefaultListenAddrs = []string{
	"/ip4/127.0.0.1/udp/0/quic-v1",
	"/ip4/127.0.0.1/tcp/0",
}

// Connection manager defaults. The manager trims connections down to
// DefaultConnLow once DefaultConnHigh is exceeded; connections younger than
// connGracePeriod and protected peers (see Protect) are never trimmed.
const (
	DefaultConnLow  = 256
	DefaultConnHigh = 512
	connGracePeriod = time.Minute
)

// rcmgrMemory is the memory budget the resource manager scales its limits
// from. A fixed budget (instead of libp2p's default of 1/8 of the machine's
// RAM) makes a daemon behave the same on every host. Actual use is far lower:
// it bounds flow-control windows and stream buffers, not piece data, which
// goes to disk.
const rcmgrMemory = 1 << 30

// Security transports for TCP connections (WithSecurity). QUIC always uses
// TLS 1.3, whatever the choice.
const (
	SecurityNoise = "noise" // Noise_XX_25519_ChaChaPoly_SHA256, libp2p protocol /noise
	SecurityTLS   = "tls"   // TLS 1.3, libp2p protocol /tls/1.0.0
)

// DefaultSecurity is the TCP security transport used without WithSecurity.
const DefaultSecurity = SecurityNoise

// SecurityChoices lists the values WithSecurity accepts. There is no
// plaintext choice.
var SecurityChoices = []string{SecurityNoise, SecurityTLS}

type config struct {
	identity    crypto.PrivKey
	security    string
	identityDir string
	listen      []string
	low, high   int
	log         *slog.Logger
	listenIsSet bool
	listenUDP   func(network string, laddr *net.UDPAddr) (net.PacketConn, error)
}

// Option configures New.
type Option func(*config)

// WithIdentity sets the host's private key (see LoadOrCreateIdentity). Without
// it the host gets a fresh random ed25519 identity.
func WithIdentity(sk crypto.PrivKey) Option { return func(c *config) { c.identity = sk } }

// WithIdentityDir makes New use the identity kept in dir (identity.key),
// creating it on first start: what every long-running dfp2p process does
// with its data dir. See LoadOrCreateIdentity.
func WithIdentityDir(dir string) Option { return func(c *config) { c.identityDir = dir } }

// WithListenAddrs sets the multiaddrs to listen on, for example
// "/ip4/0.0.0.0/udp/4001/quic-v1" and "/ip4/0.0.0.0/tcp/4001". An empty list
// makes a host that only dials.
func WithListenAddrs(addrs ...string) Option {
	return func(c *config) { c.listen = addrs; c.listenIsSet = true }
}

// WithConnLimits sets the connection manager's low and high watermarks.
func WithConnLimits(low, high int) Option { return func(c *config) { c.low, c.high = low, high } }

// WithSecurity sets the one security transport TCP connections use: "noise"
// (DefaultSecurity) or "tls" (see SecurityChoices). Only the chosen one is
// offered and accepted, so two hosts with different choices cannot connect
// over TCP (they still can over QUIC, which always uses TLS 1.3). An unknown
// value makes New fail; "" means DefaultSecurity.
func WithSecurity(s string) Option { return func(c *config) { c.security = s } }

// securityOption maps a WithSecurity value to the libp2p option.
func securityOption(s string) (libp2p.Option, error) {
	switch s {
	case "", SecurityNoise:
		return libp2p.Security(noise.ID, noise.New), nil
	case SecurityTLS:
		return libp2p.Security(libp2ptls.ID, libp2ptls.New), nil
	default:
		return nil, fmt.Errorf("node: unknown security transport %q (want one of %s)", s, strings.Join(SecurityChoices, ", "))
	}
}

// WithListenUDP supplies the UDP sockets QUIC listens and dials on (go-libp2p's
// quicreuse.OverrideListenUDP). The simulation runner wraps them to add
// latency, jitter and loss in user space where kernel netem is missing. The
// wrapper must not embed *net.UDPConn, or quic-go's OOB path bypasses it.
func WithListenUDP(f func(network string, laddr *net.UDPAddr) (net.PacketConn, error)) Option {
	return func(c *config) { c.listenUDP = f }
}

// WithLogger sets the logger for host construction messages.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// New builds and starts a libp2p host listening on the configured addresses.
// The caller must Close it.
func New(opts ...Option) (host.Host, error) {
	cfg := config{low: DefaultConnLow, high: DefaultConnHigh}
	for _, o := range opts {
		o(&cfg)
	}
	if !cfg.listenIsSet {
		cfg.listen = DefaultListenAddrs
	}
	if cfg.log == nil {
		cfg.log = slog.New(slog.DiscardHandler)
	}
	security, err := securityOption(cfg.security)
	if err != nil {
		return nil, err
	}
	if cfg.identityDir != "" {
		if cfg.identity != nil {
			return nil, errors.New("node: WithIdentity and WithIdentityDir are exclusive")
		}
		sk, err := LoadOrCreateIdentity(cfg.identityDir)
		if err != nil {
			return nil, err
		}
		cfg.identity = sk
	}
	if cfg.low <= 0 || cfg.high < cfg.low {
		return nil, fmt.Errorf("node: invalid connection limits low=%d high=%d", cfg.low, cfg.high)
	}
	for _, a := range cfg.listen {
		if _, err := ma.NewMultiaddr(a); err != nil {
			return nil, fmt.Errorf("node: listen address %q: %w", a, err)
		}
	}

	rm, err := newResourceManager(cfg.high)
	if err != nil {
		return nil, fmt.Errorf("node: resource manager: %w", err)
	}
	cm, err := connmgr.NewConnManager(cfg.low, cfg.high, connmgr.WithGracePeriod(connGracePeriod))
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("node: connection manager: %w", err)
	}

	lopts := []libp2p.Option{
		libp2p.ListenAddrStrings(cfg.listen...),
		// QUIC first: go-libp2p's dial ranker tries QUIC before TCP anyway.
		libp2p.Transport(libp2pquic.NewTransport),
		libp2p.Transport(tcp.NewTCPTransport),
		// Security for TCP (QUIC brings its own TLS 1.3): the one chosen
		// transport. Giving libp2p a Security option replaces its defaults,
		// which would otherwise offer both.
		security,
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.DisableRelay(),
		libp2p.UserAgent("dfp2p"),
	}
	if cfg.identity != nil {
		lopts = append(lopts, libp2p.Identity(cfg.identity))
	}
	if len(cfg.listen) == 0 {
		lopts = append(lopts, libp2p.NoListenAddrs)
	}
	if cfg.listenUDP != nil {
		lopts = append(lopts, libp2p.QUICReuse(quicConnManager(cfg.listenUDP)))
	}
	h, err := libp2p.New(lopts...)
	if err != nil {
		// libp2p.New closes what it built on failure, except the managers
		// handed to it if it failed before taking ownership.
		cm.Close()
		rm.Close()
		return nil, fmt.Errorf("node: %w", err)
	}
	cfg.log.Debug("libp2p host started", "peer", h.ID(), "addrs", Addrs(h))
	return h, nil
}

// newResourceManager builds libp2p's resource manager with limits raised for
// bulk transfer.
//
// It starts from libp2p's defaults (plus its service defaults) scaled to the
// fixed rcmgrMemory budget and half the process's file-descriptor limit, then
// raises the limits that throttle piece transfer:
//   - per-peer memory to 512 MiB and per-connection memory to 64 MiB: QUIC and
//     yamux reserve receive-window growth against these, and a window that
//     cannot grow caps a stream at window/RTT (field notes: default limits
//     stall window growth);
//   - per-stream memory to 32 MiB (yamux windows go up to 16 MiB);
//   - streams per peer and per protocol per peer to 512/1024, because a
//     downloader may run many pipelined fetches to one parent and a parent
//     serves many children; applications bound their own concurrency
//     (exchange limits concurrent uploads itself);
//   - system connections to at least twice the connection manager's high
//     watermark, so the connection manager, not the resource manager, decides
//     which connections to drop.
func newResourceManager(connHigh int) (network.ResourceManager, error) {
	scaling := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&scaling)
	base := scaling.Scale(rcmgrMemory, numFDs()/2)

	conns := rcmgr.LimitVal(max(2*connHigh, 1024))
	over := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			Conns:           conns,
			ConnsInbound:    conns,
			ConnsOutbound:   conns,
			Streams:         16384,
			StreamsInbound:  8192,
			StreamsOutbound: 8192,
			Memory:          2 << 30,
		},
		Transient: rcmgr.ResourceLimits{
			Conns:         conns / 4,
			ConnsInbound:  conns / 4,
			ConnsOutbound: conns / 4,
		},
		PeerDefault: rcmgr.ResourceLimits{
			Streams:         2048,
			StreamsInbound:  1024,
			StreamsOutbound: 1024,
			Memory:          512 << 20,
		},
		ProtocolPeerDefault: rcmgr.ResourceLimits{
			Streams:         1024,
			StreamsInbound:  512,
			StreamsOutbound: 512,
			Memory:          512 << 20,
		},
		ProtocolDefault: rcmgr.ResourceLimits{
			Streams:         8192,
			StreamsInbound:  4096,
			StreamsOutbound: 4096,
			Memory:          1 << 30,
		},
		ServiceDefault: rcmgr.ResourceLimits{Memory: 1 << 30},
		Conn:           rcmgr.ResourceLimits{Memory: 64 << 20},
		Stream:         rcmgr.ResourceLimits{Memory: 32 << 20},
	}
	limits := over.Build(base)
	v4, v6 := clusterPrefixLimits()
	return rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits),
		rcmgr.WithNetworkPrefixLimit(v4, v6), rcmgr.WithConnRateLimiters(connRateLimiter()),
		rcmgr.WithLimitPerSubnet(
			[]rcmgr.ConnLimitPerSubnet{{PrefixLength: 32, ConnCount: publicConnsPerAddr}},
			[]rcmgr.ConnLimitPerSubnet{{PrefixLength: 56, ConnCount: publicConnsPerAddr}, {PrefixLength: 48, ConnCount: 8 * publicConnsPerAddr}}))
}

// clusterPrefixes are the address ranges a cluster's hosts use among
// themselves (loopback, RFC 1918, carrier-grade NAT, IPv6 unique local).
//
// libp2p limits every other /32 (IPv4) or /56 (IPv6) to 8 concurrent
// connections and new connections to 0.2/s after a burst of 16. That guards
// a public node against one attacker, but inside a cluster many hosts share
// one source address: a region's nodes behind one NAT gateway as seen from
// another region, pods behind their node's IP. With the default a ninth
// peer behind one address cannot connect at all. Addresses in these ranges
// are therefore limited only by the system-wide limits; membership (who may
// connect) is checked above the transport.
var clusterPrefixes = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("fc00::/7"),
}

// publicConnsPerAddr bounds concurrent connections from one public source
// address (/32, /56). It is higher than libp2p's 8 because other regions'
// nodes may reach this one through a single NAT address.
const publicConnsPerAddr = 64

func clusterPrefixLimits() (v4, v6 []rcmgr.NetworkPrefixLimit) {
	for _, p := range clusterPrefixes {
		l := rcmgr.NetworkPrefixLimit{Network: p, ConnCount: math.MaxInt}
		if p.Addr().Is4() {
			v4 = append(v4, l)
		} else {
			v6 = append(v6, l)
		}
	}
	return v4, v6
}

// connRateLimiter leaves cluster ranges unlimited and lets a public source
// address open a connection per second after a burst of
// publicConnsPerAddr.
func connRateLimiter() *rate.Limiter {
	var prefixes []rate.PrefixLimit
	for _, p := range clusterPrefixes {
		prefixes = append(prefixes, rate.PrefixLimit{Prefix: p, Limit: rate.Limit{}})
	}
	public := rate.Limit{RPS: 1, Burst: publicConnsPerAddr}
	return &rate.Limiter{
		NetworkPrefixLimits: prefixes,
		SubnetRateLimiter: rate.SubnetLimiter{
			IPv4SubnetLimits: []rate.SubnetLimit{{PrefixLength: 32, Limit: public}},
			IPv6SubnetLimits: []rate.SubnetLimit{{PrefixLength: 56, Limit: public}},
			GracePeriod:      time.Minute,
		},
	}
}

// quicConnManager is go-libp2p's default QUIC connection manager (inbound
// connections accounted by the resource manager, source addresses verified
// by it, closed with the host) with the UDP sockets from listen. Supplying
// a manager replaces libp2p's whole default, so all of it is rebuilt here.
func quicConnManager(listen func(string, *net.UDPAddr) (net.PacketConn, error)) any {
	return func(key quic.StatelessResetKey, tokens quic.TokenGeneratorKey, rm network.ResourceManager, lc fx.Lifecycle) (*quicreuse.ConnManager, error) {
		cm, err := quicreuse.NewConnManager(key, tokens,
			quicreuse.OverrideListenUDP(listen),
			quicreuse.ConnContext(func(ctx context.Context, ci *quic.ClientInfo) (context.Context, error) {
				addr, err := quicreuse.ToQuicMultiaddr(ci.RemoteAddr, quic.Version1)
				if err != nil {
					addr = nil
				}
				scope, err := rm.OpenConnection(network.DirInbound, false, addr)
				if err != nil {
					return ctx, err
				}
				ctx = network.WithConnManagementScope(ctx, scope)
				context.AfterFunc(ctx, scope.Done)
				return ctx, nil
			}),
			quicreuse.VerifySourceAddress(rm.VerifySourceAddress))
		if err != nil {
			return nil, err
		}
		lc.Append(fx.StopHook(cm.Close))
		return cm, nil
	}
}

// Protect marks p as in use for tag (for example a task ID) so the connection
// manager does not trim its connection during a transfer.
func Protect(h host.Host, p peer.ID, tag string) {
	h.ConnManager().Protect(p, tag)
}

// Unprotect removes the protection of p for tag. It reports whether p is still
// protected under another tag.
func Unprotect(h host.Host, p peer.ID, tag string) bool {
	return h.ConnManager().Unprotect(p, tag)
}

// Addrs returns the host's listen addresses as full multiaddr strings ending
// in /p2p/<peer ID>, suitable for dialing. QUIC addresses come first, so the
// first line of DIR/addrs is the preferred transport.
func Addrs(h host.Host) []string {
	suffix := "/p2p/" + h.ID().String()
	addrs := h.Addrs()
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.String()+suffix)
	}
	isQUIC := func(s string) bool { return strings.Contains(s, "/quic-v1") }
	sort.SliceStable(out, func(i, j int) bool { return isQUIC(out[i]) && !isQUIC(out[j]) })
	return out
}

// WriteAddrsFile writes Addrs(h), one per line, to path. The file is written
// to a temporary file in the same directory and renamed into place, so a
// reader (a test harness, a peer discovering this one) never sees a partial
// list.
func WriteAddrsFile(path string, h host.Host) error {
	addrs := Addrs(h)
	if len(addrs) == 0 {
		return errors.New("node: host has no listen addresses")
	}
	body := strings.Join(addrs, "\n") + "\n"
	if err := fsutil.WriteFileAtomic(path, []byte(body), 0o644); err != nil {
		return fmt.Errorf("node: write %s: %w", filepath.Base(path), err)
	}
	return nil
}
