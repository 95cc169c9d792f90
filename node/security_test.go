package node

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	ma "github.com/multiformats/go-multiaddr"
)

const tcpLoopback = "/ip4/127.0.0.1/tcp/0"

// Each choice connects over TCP with exactly the chosen security protocol.
func TestSecurityChoiceTCP(t *testing.T) {
	want := map[string]string{"": noise.ID, SecurityNoise: noise.ID, SecurityTLS: libp2ptls.ID}
	if len(SecurityChoices) != 2 {
		t.Fatalf("SecurityChoices = %v", SecurityChoices)
	}
	for _, choice := range append([]string{""}, SecurityChoices...) {
		t.Run("security="+choice, func(t *testing.T) {
			a := newHost(t, WithListenAddrs(tcpLoopback), WithSecurity(choice))
			b := newHost(t, WithListenAddrs(tcpLoopback), WithSecurity(choice))
			connectAndPing(t, a, b)
			for _, end := range [][2]host.Host{{a, b}, {b, a}} {
				conns := end[0].Network().ConnsToPeer(end[1].ID())
				if len(conns) == 0 {
					t.Fatal("no connection")
				}
				for _, c := range conns {
					if _, err := c.RemoteMultiaddr().ValueForProtocol(ma.P_TCP); err != nil {
						t.Fatalf("connection is not TCP: %s", c.RemoteMultiaddr())
					}
					if got := string(c.ConnState().Security); got != want[choice] {
						t.Fatalf("security %q, want %q", got, want[choice])
					}
				}
			}
		})
	}
}

// A noise-only host and a tls-only host share no TCP security protocol, so
// they cannot connect over TCP: the choice is what is offered, not a
// preference. Over QUIC (always TLS 1.3) they still connect.
func TestSecurityMismatchFailsOverTCP(t *testing.T) {
	for _, pair := range [][2]string{{SecurityNoise, SecurityTLS}, {SecurityTLS, SecurityNoise}} {
		t.Run(pair[0]+"->"+pair[1], func(t *testing.T) {
			a := newHost(t, WithListenAddrs(tcpLoopback), WithSecurity(pair[0]))
			b := newHost(t, WithListenAddrs(tcpLoopback), WithSecurity(pair[1]))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()})
			if err == nil {
				t.Fatalf("%s host connected to %s host over TCP (security %q)", pair[0], pair[1],
					a.Network().ConnsToPeer(b.ID())[0].ConnState().Security)
			}
			if !strings.Contains(err.Error(), "failed to negotiate security protocol") {
				t.Fatalf("dial failed, but not in security negotiation: %v", err)
			}
			if ctx.Err() != nil {
				t.Fatalf("dial ran into the test timeout instead of failing the negotiation: %v", err)
			}
			if n := len(a.Network().ConnsToPeer(b.ID())); n != 0 {
				t.Fatalf("%d connections after a failed dial", n)
			}
			t.Logf("mismatch error: %v", err)
		})
	}
	quic := "/ip4/127.0.0.1/udp/0/quic-v1"
	a := newHost(t, WithListenAddrs(quic), WithSecurity(SecurityNoise))
	b := newHost(t, WithListenAddrs(quic), WithSecurity(SecurityTLS))
	connectAndPing(t, a, b)
}

func TestSecurityUnknownRejected(t *testing.T) {
	dir := t.TempDir()
	for _, bad := range []string{"plaintext", "insecure", "none", "Noise", "TLS", "noise,tls", " tls"} {
		h, err := New(WithSecurity(bad), WithIdentityDir(dir))
		if err == nil {
			h.Close()
			t.Fatalf("security %q accepted", bad)
		}
		if !strings.Contains(err.Error(), "noise, tls") {
			t.Errorf("error for %q does not list the choices: %v", bad, err)
		}
	}
	// The value is checked before anything is created.
	if _, err := os.Stat(filepath.Join(dir, IdentityFile)); err == nil {
		t.Fatal("a rejected configuration created an identity key")
	}
}
