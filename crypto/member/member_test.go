package member

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"

	"github.com/dfp2p/dfp2p/crypto"
	"github.com/dfp2p/dfp2p/internal/nodetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreTopFunction("github.com/libp2p/go-libp2p/p2p/transport/quicreuse.(*reuse).gc"))
}

func newMembers(t *testing.T, h host.Host, ca *crypto.CA) *Members {
	t.Helper()
	var pub []byte
	if ca != nil {
		pub = ca.Public()
	}
	m, err := New(h, pub)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

const echo = "/test/echo/1.0.0"

// serveEcho registers a gated echo handler on m's host.
func serveEcho(m *Members) {
	m.Host().SetStreamHandler(echo, func(s network.Stream) {
		defer s.Close()
		_, _ = io.Copy(s, io.LimitReader(s, 4))
	})
}

// ask opens an echo stream from h to p and reports whether it was served.
func ask(t *testing.T, h host.Host, p peer.ID) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := h.NewStream(ctx, p, echo)
	if err != nil {
		return false
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := s.Write([]byte("ping")); err != nil {
		return false
	}
	_ = s.CloseWrite()
	b, _ := io.ReadAll(s)
	return string(b) == "ping"
}

func connect(t *testing.T, a, b host.Host) {
	t.Helper()
	if err := a.Connect(context.Background(), peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

// Members with certificates from the CA serve each other; a host without
// one, or with one from another CA, is refused; a revoked member is
// disconnected and refused.
func TestGate(t *testing.T) {
	ca, _ := crypto.NewCA()
	other, _ := crypto.NewCA()
	hs, ha, hn, hf := nodetest.Host(t), nodetest.Host(t), nodetest.Host(t), nodetest.Host(t)
	srv := newMembers(t, hs, ca)
	a := newMembers(t, ha, ca)
	newMembers(t, hn, nil) // open: presents nothing
	f := newMembers(t, hf, other)
	now := time.Now()
	for _, x := range []struct {
		m  *Members
		ca *crypto.CA
	}{{srv, ca}, {a, ca}, {f, other}} {
		c, err := x.ca.Issue(x.m.h.ID(), crypto.RolePeer, time.Hour, now)
		if err != nil {
			t.Fatal(err)
		}
		if err := x.m.SetCertificate(c); err != nil {
			t.Fatal(err)
		}
	}
	serveEcho(srv)
	for _, h := range []host.Host{ha, hn, hf} {
		connect(t, h, hs)
	}
	if !ask(t, ha, hs.ID()) {
		t.Fatal("a member was refused")
	}
	if ask(t, hn, hs.ID()) {
		t.Fatal("a host without a certificate was served")
	}
	if ask(t, hf, hs.ID()) {
		t.Fatal("a host with another CA's certificate was served")
	}
	if role, ok := srv.Role(ha.ID()); !ok || role != crypto.RolePeer {
		t.Fatalf("role of the member: %q %v", role, ok)
	}
	if srv.Refused() < 2 {
		t.Fatalf("refused %d streams, want 2", srv.Refused())
	}

	rl, err := ca.SignRevocations([]peer.ID{ha.ID()}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.SetRevocations(rl); err != nil {
		t.Fatal(err)
	}
	if ask(t, ha, hs.ID()) {
		t.Fatal("a revoked member was served")
	}
	forged, _ := other.SignRevocations(nil, time.Now())
	if err := srv.SetRevocations(forged); err == nil {
		t.Fatal("a revocation list from another CA was accepted")
	}
}

// A daemon joins with the secret, renews with its certificate, and fetches
// the revocation list; a wrong secret is refused.
func TestJoinRenew(t *testing.T) {
	ca, _ := crypto.NewCA()
	ht, hd, hx := nodetest.Host(t), nodetest.Host(t), nodetest.Host(t)
	tm := newMembers(t, ht, ca)
	secret := make([]byte, 32)
	secret[0] = 7
	self := &Self{CA: ca, ID: ht.ID(), Role: crypto.RoleTracker, TTL: time.Hour}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tk, err := StartKeeper(ctx, tm, self, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tk.Close)
	rl, _ := ca.SignRevocations([]peer.ID{hx.ID()}, time.Now())
	is := ServeJoin(tm, ca, secret, 3*time.Second, func() *crypto.RevocationList { return rl })
	t.Cleanup(is.Close)

	for _, h := range []host.Host{hd, hx} {
		h.Peerstore().AddAddrs(ht.ID(), ht.Addrs(), time.Hour)
	}
	dm := newMembers(t, hd, ca)
	var saved []*crypto.Certificate
	dk, err := StartKeeper(ctx, dm, &Trackers{M: dm, Trackers: []peer.ID{ht.ID()}, Secret: secret}, nil,
		func(c *crypto.Certificate) error { saved = append(saved, c); return nil })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dk.Close)
	first := dm.Certificate()
	if first == nil || first.Role != crypto.RolePeer || len(saved) != 1 {
		t.Fatalf("joined with %+v (%d saved)", first, len(saved))
	}
	if dm.Revocations() == nil || !dm.Revocations().Has(hx.ID()) {
		t.Fatal("the daemon did not get the revocation list")
	}
	// The 3 s certificate is renewed at 2 s.
	deadline := time.Now().Add(10 * time.Second)
	for dm.Certificate().Serial == first.Serial {
		if time.Now().After(deadline) {
			t.Fatal("certificate not renewed")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A wrong secret, and a revoked peer with the right one, are refused.
	xm := newMembers(t, hx, ca)
	bad := append([]byte(nil), secret...)
	bad[0] = 8
	if _, err := StartKeeper(ctx, xm, &Trackers{M: xm, Trackers: []peer.ID{ht.ID()}, Secret: bad}, nil, nil); err == nil {
		t.Fatal("joined with a wrong secret")
	}
	tm.SetRevocations(rl)
	if _, err := StartKeeper(ctx, xm, &Trackers{M: xm, Trackers: []peer.ID{ht.ID()}, Secret: secret}, nil, nil); err == nil {
		t.Fatal("a revoked peer joined")
	}
}
