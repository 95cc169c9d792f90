package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/dfp2p/dfp2p/crypto"
	"github.com/dfp2p/dfp2p/daemon"
	"github.com/dfp2p/dfp2p/dht"
	"github.com/dfp2p/dfp2p/internal/limit"
	"github.com/dfp2p/dfp2p/node"
	"github.com/dfp2p/dfp2p/proxy"
	"github.com/dfp2p/dfp2p/store"
	"github.com/dfp2p/dfp2p/tracker"
)

func newTrackerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tracker",
		Short: "Run the tracker: peer registry, piece scheduler and CDN seed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, log, dir, c, err := serverSetup(cmd)
			if err != nil {
				return err
			}
			regs, err := registryMap(v.GetStringSlice("preheat-registry"), "--preheat-registry")
			if err != nil {
				return err
			}
			t, err := tracker.New(tracker.Config{DataDir: dir, Listen: v.GetStringSlice("listen"), API: v.GetString("api"),
				Logger: log, OriginParallel: v.GetInt("origin-parallel"), GCInterval: v.GetDuration("gc-interval"),
				TaskTTL: v.GetDuration("gc-ttl"), HighWatermark: c.high, LowWatermark: c.low,
				Region: c.dht.region, Zone: c.dht.zone, Bootstrap: c.dht.bootstrap, NoDHT: !c.dht.on,
				Open: v.GetBool("open"), CAKeyFile: v.GetString("ca"), CertTTL: v.GetDuration("cert-ttl"),
				APICertFile: v.GetString("api-tls-cert"), APIKeyFile: v.GetString("api-tls-key"),
				EncryptKey: c.key, EncryptCipher: c.cipher, Security: c.security, Limits: c.limits,
				PreheatRegistries: regs, PreheatAuthFile: v.GetString("preheat-auth-file")})
			if err != nil {
				return err
			}
			if tok := t.JoinToken(); tok != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "\nJoin daemons to this cluster with:\n\n  dfp2p daemon --join %s\n\n(also in %s)\n\n",
					tok, filepath.Join(dir, tracker.JoinTokenFile))
			} else {
				fmt.Fprintln(cmd.ErrOrStderr(), "WARNING: open cluster (--open): any peer may fetch, register and make this tracker read origins. For demos only.")
			}
			return runUntilDone(cmd, log, t.Close)
		},
	}
	f := cmd.Flags()
	f.String("data-dir", defaultDataDir("tracker"), "directory for the identity key, metadata and the seed's pieces")
	f.StringSlice("listen", []string{"/ip4/127.0.0.1/udp/4010/quic-v1", "/ip4/127.0.0.1/tcp/4010"}, "libp2p listen multiaddrs (repeatable)")
	f.String("api", "127.0.0.1:65010", "HTTP API address (health, tasks, peers, metrics); empty to disable")
	f.Int("origin-parallel", 4, "concurrent range requests per origin fetch")
	addGCFlags(f)
	addDHTFlags(f, "other regions' trackers")
	addEncryptFlags(f)
	addSecurityFlag(f)
	f.Bool("open", false, "run an OPEN cluster: no membership, any peer may fetch and register (demos only)")
	f.String("ca", "", "cluster CA key file shared by the trackers of a group or of several regions (default DIR/cluster-ca.key, created on first start)")
	f.Duration("cert-ttl", tracker.DefaultCertTTL, "lifetime of the membership certificates this tracker issues")
	addAPITLSFlags(f)
	addLimitFlags(f, "bytes the seed reads from origins and copies from other seeds")
	addPreheatFlags(f)
	return cmd
}

// serverSetup is the common start of the long-running commands: config,
// logger, data dir (0700), the UDP buffer check and the flags both share.
func serverSetup(cmd *cobra.Command) (*viper.Viper, *slog.Logger, string, common, error) {
	v, err := loadConfig(cmd)
	if err != nil {
		return nil, nil, "", common{}, err
	}
	if err := checkSettings(cmd.Name(), v); err != nil {
		return nil, nil, "", common{}, err
	}
	log, err := newLogger(v)
	if err != nil {
		return nil, nil, "", common{}, err
	}
	c, err := commonFlags(v)
	if err != nil {
		return nil, nil, "", common{}, err
	}
	dir := v.GetString("data-dir")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, "", common{}, err
	}
	node.CheckUDPBuffers(log)
	return v, log, dir, c, nil
}

// runUntilDone blocks until SIGINT or SIGTERM, then closes the component.
func runUntilDone(cmd *cobra.Command, log *slog.Logger, closeFn func() error) error {
	<-cmd.Context().Done()
	log.Info("shutting down")
	return closeFn()
}

// proxyConfig builds the registry mirror's configuration from the flags.
func proxyConfig(v *viper.Viper) (*proxy.Config, error) {
	regs := map[string]string{}
	for _, kv := range v.GetStringSlice("proxy-registry") {
		name, u, ok := strings.Cut(kv, "=")
		if !ok || name == "" || u == "" {
			return nil, usagef("--proxy-registry %q: want NAME=URL", kv)
		}
		regs[name] = u
	}
	return &proxy.Config{
		Addr:            v.GetString("proxy"),
		DefaultRegistry: v.GetString("proxy-default-registry"),
		Registries:      regs,
		Rules:           v.GetStringSlice("proxy-rule"),
		AllowCIDRs:      v.GetStringSlice("proxy-allow"),
		CACert:          v.GetString("proxy-ca-cert"),
		CAKey:           v.GetString("proxy-ca-key"),
		InterceptHosts:  v.GetStringSlice("proxy-intercept"),
	}, nil
}

// addGCFlags adds the cache garbage-collection flags the tracker (seed cache)
// and the daemon share.
func addGCFlags(f *pflag.FlagSet) {
	f.Duration("gc-interval", 15*time.Minute, "how often garbage collection runs")
	f.Duration("gc-ttl", 24*time.Hour, "unused tasks older than this are removed")
	f.Float64("gc-high-watermark", 0.8, "disk-use fraction that starts collection")
	f.Float64("gc-low-watermark", 0.6, "disk-use fraction collection stops at")
}

// addDHTFlags adds the locality labels and DHT flags the tracker and the
// daemon share.
func addDHTFlags(f *pflag.FlagSet, bootstrapNote string) {
	f.String("region", "", "region label (e.g. eu-west-1): the scheduler prefers parents in the same region")
	f.String("zone", "", "zone label within the region (e.g. eu-west-1a): parents in the same zone come first")
	f.StringSlice("bootstrap", nil, "DHT bootstrap multiaddr ending in /p2p/ID, "+bootstrapNote+"; /dns4/NAME/... works (repeatable)")
	f.Bool("dht", true, "run the DHT (cross-region seeds, trackerless mode); --dht=false turns it off")
}

// addEncryptFlags adds the at-rest encryption flags of the piece cache.
func addEncryptFlags(f *pflag.FlagSet) {
	f.String("encrypt-key-file", "", "encrypt cached pieces at rest with the 32-byte key in this file (raw, hex or base64; mode 0600)")
	f.String("encrypt-cipher", "", "at-rest cipher: "+strings.Join(store.Ciphers, " or ")+" (default "+store.CipherAES256GCM+" when a key is given)")
}

// encryption reads and checks --encrypt-key-file and --encrypt-cipher
// (nil key: encryption off).
func encryption(v *viper.Viper) (key []byte, cipher string, err error) {
	path, cipher := v.GetString("encrypt-key-file"), v.GetString("encrypt-cipher")
	if cipher != "" && !slices.ContainsFunc(store.Ciphers, func(c string) bool { return strings.EqualFold(c, cipher) }) {
		return nil, "", usagef("--encrypt-cipher %q: want one of %s", cipher, strings.Join(store.Ciphers, ", "))
	}
	if path == "" {
		if cipher != "" {
			return nil, "", usagef("--encrypt-cipher needs --encrypt-key-file")
		}
		return nil, "", nil
	}
	if key, err = store.LoadKeyFile(path); err != nil {
		return nil, "", usagef("--encrypt-key-file: %v", err)
	}
	return key, cipher, nil
}

// addSecurityFlag adds --security, the TCP security transport.
func addSecurityFlag(f *pflag.FlagSet) {
	f.String("security", node.DefaultSecurity, "TCP connection security: "+strings.Join(node.SecurityChoices, " or ")+" (QUIC always uses TLS 1.3; there is no plaintext mode)")
}

// securityFlag reads --security; a value outside node.SecurityChoices is a
// usage error.
func securityFlag(v *viper.Viper) (string, error) {
	s := v.GetString("security")
	if !slices.Contains(node.SecurityChoices, s) {
		return "", usagef("--security %q: want one of %s", s, strings.Join(node.SecurityChoices, ", "))
	}
	return s, nil
}

// addAPITLSFlags adds the HTTPS flags of the HTTP APIs.
func addAPITLSFlags(f *pflag.FlagSet) {
	f.String("api-tls-cert", "", "PEM certificate: serve the HTTP API over TLS")
	f.String("api-tls-key", "", "PEM private key for --api-tls-cert")
}

// common is what the tracker and the daemon read from the same flags.
type common struct {
	high, low float64
	dht       dhtSettings
	key       []byte
	cipher    string
	security  string
	limits    limit.Rates
}

// commonFlags reads and checks the flags both long-running commands share.
func commonFlags(v *viper.Viper) (c common, err error) {
	if c.high, c.low, err = watermarks(v); err != nil {
		return c, err
	}
	if c.dht, err = dhtFlags(v); err != nil {
		return c, err
	}
	if c.key, c.cipher, err = encryption(v); err != nil {
		return c, err
	}
	if c.limits, err = limitFlags(v); err != nil {
		return c, err
	}
	c.security, err = securityFlag(v)
	return c, err
}

type dhtSettings struct {
	region, zone string
	bootstrap    []string
	on           bool
}

// maxLabel bounds --region and --zone (the tracker truncates longer ones).
const maxLabel = 64

// dhtFlags reads and checks the flags addDHTFlags adds: a bad bootstrap
// address or label is a usage error, caught before anything starts.
func dhtFlags(v *viper.Viper) (dhtSettings, error) {
	s := dhtSettings{region: v.GetString("region"), zone: v.GetString("zone"),
		bootstrap: v.GetStringSlice("bootstrap"), on: v.GetBool("dht")}
	for name, l := range map[string]string{"region": s.region, "zone": s.zone} {
		if len(l) > maxLabel || strings.ContainsAny(l, " \t\n") {
			return s, usagef("--%s %q: at most %d characters, no spaces", name, l, maxLabel)
		}
	}
	if _, err := dht.ParseBootstrap("", s.bootstrap); err != nil {
		return s, usageError{err}
	}
	return s, nil
}

func watermarks(v *viper.Viper) (high, low float64, err error) {
	high, low = v.GetFloat64("gc-high-watermark"), v.GetFloat64("gc-low-watermark")
	if high <= 0 || high > 1 || low <= 0 || low >= high {
		return 0, 0, usagef("watermarks must satisfy 0 < low < high <= 1 (got low %v, high %v)", low, high)
	}
	return high, low, nil
}

func newDaemonCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run the peer daemon on this host",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, log, dir, c, err := serverSetup(cmd)
			if err != nil {
				return err
			}
			pc, err := proxyConfig(v)
			if err != nil {
				return err
			}
			var join *crypto.JoinToken
			if s := v.GetString("join"); s != "" {
				if join, err = crypto.ParseJoinToken(s); err != nil {
					return usagef("--join: %v", err)
				}
			}
			d, err := daemon.New(daemon.Config{DataDir: dir, Listen: v.GetStringSlice("listen"), API: v.GetString("api"),
				Trackers: v.GetStringSlice("tracker"), Logger: log, GCInterval: v.GetDuration("gc-interval"),
				TaskTTL: v.GetDuration("gc-ttl"), HighWatermark: c.high, LowWatermark: c.low,
				MaxConcurrentPieces: v.GetInt("max-concurrent-pieces"), MaxUploads: v.GetInt("max-uploads"),
				Proxy: pc, Region: c.dht.region, Zone: c.dht.zone, Bootstrap: c.dht.bootstrap, NoDHT: !c.dht.on, Join: join,
				APICertFile: v.GetString("api-tls-cert"), APIKeyFile: v.GetString("api-tls-key"),
				EncryptKey: c.key, EncryptCipher: c.cipher, Security: c.security, Limits: c.limits})
			if err != nil {
				return err
			}
			return runUntilDone(cmd, log, d.Close)
		},
	}
	f := cmd.Flags()
	f.String("data-dir", defaultDataDir("daemon"), "directory for the identity key, metadata and pieces")
	f.StringSlice("listen", []string{"/ip4/127.0.0.1/udp/4001/quic-v1", "/ip4/127.0.0.1/tcp/4001"}, "libp2p listen multiaddrs (repeatable)")
	f.String("api", "127.0.0.1:65000", "local HTTP API address used by `dfp2p get`; empty to disable")
	f.StringSlice("tracker", nil, "tracker multiaddr ending in /p2p/ID (repeatable; tasks are spread over them); none = find peers through the DHT")
	addGCFlags(f)
	addDHTFlags(f, "besides the trackers")
	addEncryptFlags(f)
	addSecurityFlag(f)
	f.String("join", "", "join token printed by the tracker (DIR/join-token): membership of a closed cluster (env DFP2P_JOIN)")
	addAPITLSFlags(f)
	addLimitFlags(f, "piece bytes received from peers, seeds and origins")
	f.Int("max-concurrent-pieces", 16, "pieces in flight per download")
	f.Int("max-uploads", 32, "concurrent piece uploads to other peers")
	f.String("proxy", "127.0.0.1:65001", "registry mirror and HTTP proxy address; empty to disable")
	f.StringSlice("proxy-registry", nil, "NAME=URL: upstream of a registry, e.g. registry.local:5000=http://registry.local:5000 (repeatable)")
	f.String("proxy-default-registry", "docker.io", "registry for mirror requests that name none (no ?ns=)")
	f.StringSlice("proxy-rule", nil, "regex on URLs the forward proxy sends through the swarm (repeatable; default: OCI blob URLs)")
	f.StringSlice("proxy-allow", nil, "client CIDR allowed besides loopback (repeatable; the proxy is never open by default)")
	f.String("proxy-ca-cert", "", "CA certificate (PEM) for opt-in TLS interception")
	f.String("proxy-ca-key", "", "CA private key (PEM) for opt-in TLS interception")
	f.StringSlice("proxy-intercept", nil, "host whose HTTPS CONNECT is intercepted with the CA (repeatable)")
	return cmd
}
