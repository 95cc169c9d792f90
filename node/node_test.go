package node

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestIdentityCreatedAndReused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	sk1, err := LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, IdentityFile))
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Fatalf("key file mode %04o, want 0600", perm)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("data dir holds %d entries, want only the key (temp file left behind?)", len(ents))
	}
	sk2, err := LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !sk1.Equals(sk2) {
		t.Fatal("second call returned a different key")
	}
	id1, _ := peer.IDFromPrivateKey(sk1)
	id2, _ := peer.IDFromPrivateKey(sk2)
	if id1 != id2 {
		t.Fatal("peer IDs differ")
	}
}

func TestIdentityRefusedWhenReadableByOthers(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadOrCreateIdentity(dir); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, IdentityFile)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadOrCreateIdentity(dir)
	if err == nil {
		t.Fatal("expected an error for a 0644 key file")
	}
	msg := err.Error()
	if !strings.Contains(msg, path) || !strings.Contains(msg, "chmod 600 "+path) {
		t.Fatalf("error should name the file and the fix: %v", err)
	}
}

func TestIdentityGarbageRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, IdentityFile), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateIdentity(dir); err == nil {
		t.Fatal("expected an error for a corrupt key file")
	}
}

func newHost(t *testing.T, opts ...Option) host.Host {
	t.Helper()
	h, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func connectAndPing(t *testing.T, a, b host.Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
	// A round trip over a stream proves security and muxing work.
	b.SetStreamHandler("/test/echo", func(s network.Stream) {
		defer s.Close()
		buf := make([]byte, 5)
		if _, err := io.ReadFull(s, buf); err == nil {
			s.Write(buf)
		}
	})
	s, err := a.NewStream(ctx, b.ID(), "/test/echo")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := s.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("echo: %q %v", buf, err)
	}
}

func TestConnectQUIC(t *testing.T) {
	a := newHost(t, WithListenAddrs("/ip4/127.0.0.1/udp/0/quic-v1"))
	b := newHost(t, WithListenAddrs("/ip4/127.0.0.1/udp/0/quic-v1"))
	connectAndPing(t, a, b)
	conns := a.Network().ConnsToPeer(b.ID())
	if len(conns) == 0 {
		t.Fatal("no connection")
	}
	if _, err := conns[0].RemoteMultiaddr().ValueForProtocol(ma.P_QUIC_V1); err != nil {
		t.Fatalf("connection is not QUIC: %s", conns[0].RemoteMultiaddr())
	}
}

func TestConnectTCPOnly(t *testing.T) {
	a := newHost(t, WithListenAddrs("/ip4/127.0.0.1/tcp/0"))
	b := newHost(t, WithListenAddrs("/ip4/127.0.0.1/tcp/0"))
	connectAndPing(t, a, b)
	conns := a.Network().ConnsToPeer(b.ID())
	if len(conns) == 0 {
		t.Fatal("no connection")
	}
	c := conns[0]
	if _, err := c.RemoteMultiaddr().ValueForProtocol(ma.P_TCP); err != nil {
		t.Fatalf("connection is not TCP: %s", c.RemoteMultiaddr())
	}
	st := c.ConnState()
	if st.Security == "" || st.StreamMultiplexer == "" {
		t.Fatalf("connection state: %+v", st)
	}
	t.Logf("TCP security=%s muxer=%s", st.Security, st.StreamMultiplexer)
}

func TestDefaultsAndIdentity(t *testing.T) {
	sk, err := LoadOrCreateIdentity(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h := newHost(t, WithIdentity(sk), WithConnLimits(10, 20), WithLogger(slog.New(slog.DiscardHandler)))
	want, _ := peer.IDFromPrivateKey(sk)
	if h.ID() != want {
		t.Fatal("host does not use the given identity")
	}
	var quic, tcp bool
	for _, a := range h.Addrs() {
		if _, err := a.ValueForProtocol(ma.P_QUIC_V1); err == nil {
			quic = true
		} else if _, err := a.ValueForProtocol(ma.P_TCP); err == nil {
			tcp = true
		}
	}
	if !quic || !tcp {
		t.Fatalf("default listen addrs: %v", h.Addrs())
	}
	Protect(h, want, "t1")
	Protect(h, want, "t2")
	if !Unprotect(h, want, "t1") {
		t.Fatal("still protected by t2")
	}
	if Unprotect(h, want, "t2") {
		t.Fatal("no longer protected")
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	if _, err := New(WithListenAddrs("not-a-multiaddr")); err == nil {
		t.Fatal("expected error for bad listen address")
	}
	if _, err := New(WithConnLimits(10, 5)); err == nil {
		t.Fatal("expected error for high < low")
	}
}

func TestWriteAddrsFile(t *testing.T) {
	h := newHost(t)
	path := filepath.Join(t.TempDir(), "addrs")
	if err := WriteAddrsFile(path, h); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != len(h.Addrs()) || len(lines) != 2 {
		t.Fatalf("got %d lines for %d addrs: %q", len(lines), len(h.Addrs()), b)
	}
	if strings.Join(lines, ",") != strings.Join(Addrs(h), ",") {
		t.Fatalf("file %q differs from Addrs %q", lines, Addrs(h))
	}
	for _, l := range lines {
		ai, err := peer.AddrInfoFromString(l)
		if err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if ai.ID != h.ID() {
			t.Fatalf("line %q names %s, want %s", l, ai.ID, h.ID())
		}
	}
	// A second host can dial using the file's first line.
	other := newHost(t)
	ai, _ := peer.AddrInfoFromString(lines[0])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := other.Connect(ctx, *ai); err != nil {
		t.Fatal(err)
	}
}

func TestCheckUDPBuffers(t *testing.T) {
	t.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "")
	dir := t.TempDir()
	write := func(r, w string) {
		os.WriteFile(filepath.Join(dir, "rmem_max"), []byte(r+"\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "wmem_max"), []byte(w+"\n"), 0o644)
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))

	write("4194304", "4194304")
	checkUDPBuffers(log, dir)
	out := buf.String()
	if strings.Count(out, "\n") != 1 {
		t.Fatalf("want exactly one log line, got %q", out)
	}
	if !strings.Contains(out, UDPBufferSysctl) || !strings.Contains(out, "level=WARN") {
		t.Fatalf("warning lacks the sysctl command: %q", out)
	}
	if os.Getenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING") != "true" {
		t.Fatal("quic-go warning not disabled")
	}

	buf.Reset()
	write("7500000", "8000000")
	checkUDPBuffers(log, dir)
	if buf.Len() != 0 {
		t.Fatalf("unexpected log: %q", buf.String())
	}

	buf.Reset()
	checkUDPBuffers(log, filepath.Join(dir, "missing"))
	if buf.Len() != 0 {
		t.Fatalf("unexpected log without /proc: %q", buf.String())
	}
	CheckUDPBuffers(slog.New(slog.DiscardHandler)) // the real /proc, must not panic
}

func TestWithIdentityDirKeepsPeerID(t *testing.T) {
	dir := t.TempDir()
	var ids []string
	for i := 0; i < 2; i++ {
		h, err := New(WithIdentityDir(dir), WithListenAddrs("/ip4/127.0.0.1/udp/0/quic-v1"))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, h.ID().String())
		h.Close()
	}
	if ids[0] != ids[1] {
		t.Fatalf("peer ID changed across restarts: %v", ids)
	}
	sk, err := LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(WithIdentity(sk), WithIdentityDir(dir)); err == nil {
		t.Fatal("WithIdentity and WithIdentityDir together accepted")
	}
}

// Many peers behind one cluster-internal address (a NAT gateway, a node's
// pods) all get connections; one public address gets publicConnsPerAddr.
func TestConnLimitsPerAddress(t *testing.T) {
	rm, err := newResourceManager(192)
	if err != nil {
		t.Fatal(err)
	}
	defer rm.Close()
	open := func(addr string, n int) int {
		ok := 0
		for range n {
			s, err := rm.OpenConnection(network.DirInbound, false, ma.StringCast(addr))
			if err == nil {
				ok++
				defer s.Done()
			}
		}
		return ok
	}
	if got := open("/ip4/10.20.30.40/udp/4001/quic-v1", 100); got != 100 {
		t.Fatalf("cluster address: %d of 100 connections accepted", got)
	}
	if got := open("/ip4/203.0.113.7/udp/4001/quic-v1", publicConnsPerAddr+10); got != publicConnsPerAddr {
		t.Fatalf("public address: %d connections accepted, want %d", got, publicConnsPerAddr)
	}
}

// countingConn counts the datagrams QUIC sends through a supplied socket.
type countingConn struct {
	net.PacketConn
	sent *atomic.Int64
}

func (c countingConn) WriteTo(b []byte, a net.Addr) (int, error) {
	c.sent.Add(1)
	return c.PacketConn.WriteTo(b, a)
}

// WithListenUDP hands QUIC the caller's sockets: traffic goes through them.
func TestListenUDPOverride(t *testing.T) {
	var sent atomic.Int64
	h1, err := New(WithListenAddrs("/ip4/127.0.0.1/udp/0/quic-v1"), WithListenUDP(func(network string, laddr *net.UDPAddr) (net.PacketConn, error) {
		c, err := net.ListenUDP(network, laddr)
		if err != nil {
			return nil, err
		}
		return countingConn{c, &sent}, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer h1.Close()
	h2, err := New(WithListenAddrs("/ip4/127.0.0.1/udp/0/quic-v1"))
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	if err := h1.Connect(context.Background(), peer.AddrInfo{ID: h2.ID(), Addrs: h2.Addrs()}); err != nil {
		t.Fatal(err)
	}
	if sent.Load() == 0 {
		t.Fatal("no datagram went through the supplied socket")
	}
}
