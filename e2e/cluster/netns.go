package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// NetnsPrefix starts the name of every network namespace the harness
// creates. A namespace is named NetnsPrefix + "PID-SEQ-SITE": PID is the test
// process that made it, so NewNet can tell a crashed run's leftovers (PID
// gone) from another live run's namespaces and delete only the former.
const NetnsPrefix = "dfp2p-e2e-"

// The topology's addresses: site i (1..254) is 10.77.i.2/24 behind the core's
// 10.77.i.1; the core itself is also 10.77.0.1/32 on its loopback, which
// every site reaches through its default route.
const (
	coreIP     = "10.77.0.1"
	siteUplink = "uplink" // the site-side veth, in the site's namespace
)

var (
	netSeqMu sync.Mutex
	netSeq   int
	// liveBases holds the name stems of this process's open Nets; the sweep
	// leaves them alone.
	liveBases = map[string]bool{}
	siteName  = regexp.MustCompile(`^[a-z0-9][a-z0-9_]{0,15}$`)
)

// Net is a set of Linux network namespaces: one "core" that routes between
// sites (and can host the origin), and one namespace per site joined to the
// core by a veth pair whose two directions are rate-limited with tc tbf.
// The veths are created directly inside the namespaces, never in the host's,
// so deleting the namespaces removes them too. It needs root, ip and tc
// (Debian package iproute2). Close removes everything; register it with
// t.Cleanup right after NewNet.
type Net struct {
	base   string // NetnsPrefix + "PID-SEQ-"
	ipBin  string
	tcBin  string
	core   *Site
	mu     sync.Mutex
	sites  []*Site
	made   []string // namespaces created, in creation order
	closed bool
}

// Site is one namespace of a Net: the core or a site.
type Site struct {
	Name string
	NS   string // namespace name, for `ip netns exec NS`
	IP   string // the address other namespaces reach it at

	n      *Net
	index  int    // 1.. for sites, 0 for the core
	coreIf string // core-side veth of a site's link; "" for the core

	mu        sync.Mutex
	transport *http.Transport
	client    *http.Client
}

// NewNet creates the core namespace after deleting namespaces left by
// earlier runs that crashed. It fails clearly when not root or when ip or tc
// is missing.
func NewNet() (*Net, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("network namespaces need root (CI runs the e2e tests as root)")
	}
	ipBin, err := exec.LookPath("ip")
	if err != nil {
		return nil, fmt.Errorf("ip not found (install the Debian package iproute2; `make deps` does): %w", err)
	}
	tcBin, err := exec.LookPath("tc")
	if err != nil {
		return nil, fmt.Errorf("tc not found (install the Debian package iproute2; `make deps` does): %w", err)
	}
	netSeqMu.Lock()
	netSeq++
	n := &Net{base: fmt.Sprintf("%s%d-%d-", NetnsPrefix, os.Getpid(), netSeq), ipBin: ipBin, tcBin: tcBin}
	liveBases[n.base] = true
	netSeqMu.Unlock()
	if err := n.sweep(); err != nil {
		n.Close()
		return nil, err
	}
	n.core = &Site{Name: "core", NS: n.base + "core", IP: coreIP, n: n}
	if err := n.addNS(n.core.NS); err != nil {
		n.Close()
		return nil, err
	}
	err = n.ipIn(n.core.NS, "addr", "add", coreIP+"/32", "dev", "lo")
	if err == nil {
		err = n.core.Do(func() error {
			return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644)
		})
	}
	if err != nil {
		n.Close()
		return nil, fmt.Errorf("setting up the core namespace: %w", err)
	}
	return n, nil
}

// Core is the routing namespace; its IP (10.77.0.1) is reachable from every
// site. Traffic between the core and a site crosses that site's shaped link.
func (n *Net) Core() *Site { return n.core }

// AddSite creates a namespace for a site, links it to the core and shapes
// the link to rate in both directions (a tc rate such as "200mbit"; "" leaves
// it unshaped). name is 1-16 of [a-z0-9_], unique within the Net.
func (n *Net) AddSite(name, rate string) (*Site, error) {
	if !siteName.MatchString(name) || name == "core" {
		return nil, fmt.Errorf("site name %q: want 1-16 of [a-z0-9_], not \"core\"", name)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, errors.New("net is closed")
	}
	for _, s := range n.sites {
		if s.Name == name {
			return nil, fmt.Errorf("site %q exists", name)
		}
	}
	idx := len(n.sites) + 1
	if idx > 254 {
		return nil, errors.New("at most 254 sites")
	}
	s := &Site{Name: name, NS: n.base + name, IP: fmt.Sprintf("10.77.%d.2", idx), n: n, index: idx, coreIf: fmt.Sprintf("s%d", idx)}
	if err := n.addNS(s.NS); err != nil {
		return nil, err
	}
	gw := fmt.Sprintf("10.77.%d.1", idx)
	steps := [][]string{
		{n.core.NS, "link", "add", s.coreIf, "type", "veth", "peer", "name", siteUplink, "netns", s.NS},
		{n.core.NS, "addr", "add", gw + "/24", "dev", s.coreIf},
		{n.core.NS, "link", "set", s.coreIf, "up"},
		{s.NS, "addr", "add", s.IP + "/24", "dev", siteUplink},
		{s.NS, "link", "set", siteUplink, "up"},
		{s.NS, "route", "add", "default", "via", gw},
	}
	var err error
	for _, st := range steps {
		if err = n.ipIn(st[0], st[1:]...); err != nil {
			err = fmt.Errorf("site %s: %w", name, err)
			break
		}
	}
	if err == nil && rate != "" {
		err = s.setRate(rate)
	}
	if err != nil {
		// Deleting the namespace deletes the veth pair with it.
		if derr := n.delNS(s.NS); derr == nil {
			n.made = n.made[:len(n.made)-1]
		}
		return nil, err
	}
	n.sites = append(n.sites, s)
	return s, nil
}

// SetRate reshapes a site's link (both directions) to rate, a tc rate such
// as "50mbit"; "" removes the shaping.
//
// Shaping is a tbf qdisc at the root of each veth's egress: the core-side
// veth limits what enters the site, the site-side one what leaves it. (netem
// may be missing from the kernel; tbf is always there.) burst is 10 ms of
// traffic at the rate, at least 32 KiB so a rate of a few mbit still passes
// full-size and GSO packets without stalling; latency 50ms bounds the queue,
// so a saturated link drops rather than buffering seconds of data.
func (s *Site) SetRate(rate string) error {
	if s.coreIf == "" {
		return errors.New("the core has no link of its own to shape")
	}
	s.n.mu.Lock()
	defer s.n.mu.Unlock()
	if s.n.closed {
		return errors.New("net is closed")
	}
	return s.setRate(rate)
}

func (s *Site) setRate(rate string) error {
	n := s.n
	var burst int64
	if rate != "" {
		bits, err := parseRate(rate)
		if err != nil {
			return err
		}
		burst = max(int64(bits/8/100), 32<<10)
	}
	for _, l := range [][2]string{{n.core.NS, s.coreIf}, {s.NS, siteUplink}} {
		if rate == "" {
			// Deleting a root qdisc that is not there fails; ignore that.
			_ = n.run(n.tcBin, "-n", l[0], "qdisc", "del", "dev", l[1], "root")
			continue
		}
		if err := n.run(n.tcBin, "-n", l[0], "qdisc", "replace", "dev", l[1], "root", "tbf",
			"rate", rate, "burst", strconv.FormatInt(burst, 10), "latency", "50ms"); err != nil {
			return fmt.Errorf("site %s: shaping: %w", s.Name, err)
		}
	}
	return nil
}

// parseRate turns a tc rate ("50mbit", "1gbit", "10mbps") into bits per
// second. As in tc, "bps" means bytes per second and a bare number bits.
func parseRate(r string) (float64, error) {
	r = strings.ToLower(strings.TrimSpace(r))
	i := strings.IndexFunc(r, func(c rune) bool { return (c < '0' || c > '9') && c != '.' })
	num, unit := r, ""
	if i >= 0 {
		num, unit = r[:i], r[i:]
	}
	v, err := strconv.ParseFloat(num, 64)
	mult, ok := map[string]float64{"": 1, "bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9, "tbit": 1e12,
		"bps": 8, "kbps": 8e3, "mbps": 8e6, "gbps": 8e9, "tbps": 8e12}[unit]
	if err != nil || !ok || v <= 0 {
		return 0, fmt.Errorf("rate %q: want a tc rate such as 200mbit", r)
	}
	return v * mult, nil
}

// LinkBytes reports the bytes that crossed a site's link: in entered the
// site from the core (the core-side veth's tx_bytes), out left it (its
// rx_bytes). Packets the shaper dropped are not counted.
func (n *Net) LinkBytes(s *Site) (in, out uint64, err error) {
	if s == nil || s.n != n || s.coreIf == "" {
		return 0, 0, errors.New("LinkBytes: not a site of this net")
	}
	cmd := exec.Command(n.ipBin, "-n", n.core.NS, "-s", "-j", "link", "show", "dev", s.coreIf)
	b, err := cmd.Output()
	if err != nil {
		return 0, 0, fmt.Errorf("ip link show %s in %s: %w", s.coreIf, n.core.NS, exitDetail(err))
	}
	var links []struct {
		Stats struct {
			RX struct {
				Bytes uint64 `json:"bytes"`
			} `json:"rx"`
			TX struct {
				Bytes uint64 `json:"bytes"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(b, &links); err != nil || len(links) != 1 {
		return 0, 0, fmt.Errorf("ip -j -s link show: unexpected output %q (%v)", b, err)
	}
	return links[0].Stats.TX.Bytes, links[0].Stats.RX.Bytes, nil
}

// Close kills any process still inside the Net's namespaces, deletes the
// namespaces (and with them every veth and qdisc) and closes the sites' idle
// HTTP connections. It is safe to call more than once.
func (n *Net) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	made := n.made
	sites := append([]*Site{n.core}, n.sites...)
	n.mu.Unlock()
	for _, s := range sites {
		if s == nil {
			continue
		}
		s.mu.Lock()
		if s.transport != nil {
			s.transport.CloseIdleConnections()
		}
		s.mu.Unlock()
	}
	var errs []error
	for i := len(made) - 1; i >= 0; i-- {
		if err := n.delNS(made[i]); err != nil {
			errs = append(errs, err)
		}
	}
	netSeqMu.Lock()
	delete(liveBases, n.base)
	netSeqMu.Unlock()
	return errors.Join(errs...)
}

// sweep deletes namespaces with the harness's prefix whose creating process
// is gone (or that this process made but no longer has open).
func (n *Net) sweep() error {
	out, err := exec.Command(n.ipBin, "netns", "list").Output()
	if err != nil {
		return fmt.Errorf("ip netns list: %w", exitDetail(err))
	}
	var errs []error
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], NetnsPrefix) {
			continue
		}
		name := f[0]
		rest := strings.TrimPrefix(name, NetnsPrefix)
		pidStr, _, _ := strings.Cut(rest, "-")
		if pid, err := strconv.Atoi(pidStr); err == nil {
			if pid == os.Getpid() {
				netSeqMu.Lock()
				live := false
				for b := range liveBases {
					live = live || strings.HasPrefix(name, b)
				}
				netSeqMu.Unlock()
				if live {
					continue
				}
			} else if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
				continue // another run, still going
			}
		}
		if err := n.delNS(name); err != nil {
			errs = append(errs, fmt.Errorf("removing leftover namespace: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (n *Net) addNS(name string) error {
	if err := n.run(n.ipBin, "netns", "add", name); err != nil {
		return err
	}
	n.made = append(n.made, name)
	return n.ipIn(name, "link", "set", "lo", "up")
}

// delNS kills the processes inside a namespace, then deletes it.
func (n *Net) delNS(name string) error {
	for range 50 {
		out, err := exec.Command(n.ipBin, "netns", "pids", name).Output()
		if err != nil || len(strings.Fields(string(out))) == 0 {
			break
		}
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return n.run(n.ipBin, "netns", "del", name)
}

func (n *Net) ipIn(ns string, args ...string) error {
	return n.run(n.ipBin, append([]string{"-n", ns}, args...)...)
}

func (n *Net) run(bin string, args ...string) error {
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", filepath.Base(bin), strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func exitDetail(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
	}
	return err
}

// Do runs fn on an OS thread that has joined the site's network namespace,
// so sockets fn creates live there (and stay there wherever they are used
// later). fn must not start goroutines that create sockets: they would run
// on other threads, in the host's namespace. If the thread cannot return to
// its original namespace it is thrown away, never reused.
func (s *Site) Do(fn func() error) error {
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		err = s.do(fn)
	}()
	<-done
	return err
}

func (s *Site) do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	target, err := os.Open(filepath.Join("/run/netns", s.NS))
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("site %s: %w", s.Name, err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns into %s: %w", s.NS, err)
	}
	ferr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Stay locked: the runtime ends the thread when this goroutine exits.
		return errors.Join(ferr, fmt.Errorf("setns back from %s: %w", s.NS, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// Listen is net.Listen inside the site's namespace.
func (s *Site) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := s.Do(func() (err error) {
		ln, err = net.Listen(network, addr)
		return err
	})
	if err != nil && ln != nil {
		ln.Close()
		ln = nil
	}
	return ln, err
}

// ListenPacket is net.ListenPacket inside the site's namespace.
func (s *Site) ListenPacket(network, addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := s.Do(func() (err error) {
		pc, err = net.ListenPacket(network, addr)
		return err
	})
	if err != nil && pc != nil {
		pc.Close()
		pc = nil
	}
	return pc, err
}

// DialContext dials from inside the site's namespace. A host name is
// resolved first, in the host's namespace (the sites have no DNS), and the
// first address is dialled.
func (s *Site) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if host, port, err := net.SplitHostPort(addr); err == nil && host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
			if err != nil {
				return nil, err
			}
			if len(ips) == 0 {
				return nil, fmt.Errorf("%s: no IPv4 address", host)
			}
			addr = net.JoinHostPort(ips[0].String(), port)
		}
	}
	var c net.Conn
	err := s.Do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	if err != nil && c != nil {
		c.Close()
		c = nil
	}
	return c, err
}

// HTTPClient is an HTTP client whose connections start in the site's
// namespace (no proxy from the environment). It is shared; Net.Close closes
// its idle connections.
func (s *Site) HTTPClient() *http.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		s.transport = &http.Transport{
			Proxy:                 nil,
			DialContext:           s.DialContext,
			MaxIdleConnsPerHost:   16,
			IdleConnTimeout:       30 * time.Second,
			ResponseHeaderTimeout: time.Minute,
		}
		s.client = &http.Client{Transport: s.transport}
	}
	return s.client
}

// command is exec.CommandContext(ctx, bin, args...) run inside the site's
// namespace through `ip netns exec`, which execs bin: the command's PID is
// bin's, so signals reach it directly. A nil site runs on the host.
func (s *Site) command(ctx context.Context, bin string, args ...string) *exec.Cmd {
	if s == nil {
		return exec.CommandContext(ctx, bin, args...)
	}
	return exec.CommandContext(ctx, s.n.ipBin, append([]string{"netns", "exec", s.NS, bin}, args...)...)
}
