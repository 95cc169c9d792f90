package dht

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/internal/nodetest"
	"github.com/dfp2p/dfp2p/node"
)

var leakIgnores = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
	goleak.IgnoreTopFunction("github.com/libp2p/go-libp2p/p2p/transport/quicreuse.(*reuse).gc"),
	goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, leakIgnores...)
}

// newDHT starts a DHT on h bootstrapped to the given hosts. Cleanup closes
// it before the host (cleanups run last-registered first).
func newDHT(t testing.TB, h host.Host, boot []host.Host, opts ...Option) *DHT {
	t.Helper()
	var addrs []string
	for _, b := range boot {
		addrs = append(addrs, node.Addrs(b)...)
	}
	opts = append([]Option{WithBootstrap(addrs...), WithQueryTimeout(5 * time.Second)}, opts...)
	d, err := New(context.Background(), h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return d
}

// waitRT waits until every DHT routes through at least n peers.
func waitRT(t testing.TB, n int, timeout time.Duration, ds ...*DHT) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for _, d := range ds {
		for d.RoutingTableSize() < n {
			if time.Now().After(deadline) {
				t.Fatalf("routing table of %s has %d peers, want %d", d.h.ID(), d.RoutingTableSize(), n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func taskID(i int) content.TaskID {
	sum := sha256.Sum256([]byte(fmt.Sprintf("task-%d", i)))
	return content.TaskID(hex.EncodeToString(sum[:]))
}

func has(ais []peer.AddrInfo, id peer.ID) bool {
	for _, ai := range ais {
		if ai.ID == id && len(ai.Addrs) > 0 {
			return true
		}
	}
	return false
}

func TestTaskKey(t *testing.T) {
	task := taskID(1)
	k, err := TaskKey(task)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("dfp2p-task:" + string(task)))
	want, _ := content.CIDFromSHA256(sum[:])
	if !k.Equals(want) {
		t.Fatalf("key %s, want %s", k, want)
	}
	// A task named by a digest must not share its key with the CID of the
	// content with that digest (its single piece).
	digest, _ := hex.DecodeString(string(task))
	if c, _ := content.CIDFromSHA256(digest); c.Equals(k) {
		t.Fatal("task key equals a content CID")
	}
	if _, err := TaskKey("nope"); err == nil {
		t.Fatal("invalid task accepted")
	}
}

func TestProvideFindThreeNodes(t *testing.T) {
	ha, hb, hc := nodetest.Host(t), nodetest.Host(t), nodetest.Host(t)
	b := newDHT(t, hb, nil)
	a := newDHT(t, ha, []host.Host{hb})
	c := newDHT(t, hc, []host.Host{hb})
	waitRT(t, 1, 10*time.Second, a, b, c)

	ctx := context.Background()
	task := taskID(1)
	if err := a.Provide(ctx, task); err != nil {
		t.Fatal(err)
	}
	if a.Provided() != 1 {
		t.Fatalf("provided = %d", a.Provided())
	}
	got, err := c.FindProviders(ctx, task, 5)
	if err != nil || !has(got, ha.ID()) {
		t.Fatalf("C found %v, %v; want A %s", got, err, ha.ID())
	}
	// The addresses found are good enough to dial.
	for _, ai := range got {
		if ai.ID == ha.ID() {
			if err := hc.Connect(ctx, ai); err != nil {
				t.Fatalf("dial found provider: %v", err)
			}
		}
	}
	// The provider does not find itself.
	if got, err := a.FindProviders(ctx, task, 5); err != nil || len(got) != 0 {
		t.Fatalf("A found %v, %v", got, err)
	}

	// A task nobody provides: nothing, no error, within the timeout.
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	start := time.Now()
	got, err = c.FindProviders(sctx, taskID(2), 5)
	cancel()
	if len(got) != 0 || (err != nil && !errors.Is(err, context.DeadlineExceeded)) {
		t.Fatalf("unprovided task: %v, %v", got, err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("unprovided lookup took %s", d)
	}

	// Manifest root.
	root := content.PieceCID([]byte("manifest bytes"))
	if err := a.ProvideRoot(ctx, root); err != nil {
		t.Fatal(err)
	}
	got, err = c.FindRootProviders(ctx, root, 1)
	if err != nil || len(got) != 1 || got[0].ID != ha.ID() {
		t.Fatalf("root providers %v, %v", got, err)
	}
	// The task key and the root are different keys.
	if got, _ := c.FindRootProviders(ctx, content.PieceCID([]byte("other")), 1); len(got) != 0 {
		t.Fatalf("unknown root found %v", got)
	}

	a.Unprovide(task)
	a.UnprovideRoot(root)
	if a.Provided() != 0 {
		t.Fatalf("provided after unprovide = %d", a.Provided())
	}
	if err := a.ProvideRoot(ctx, cid.NewCidV0(content.PieceCID(nil).Hash())); err == nil {
		t.Fatal("CIDv0 root accepted")
	}
}

// Records expire after the TTL unless the reprovider renews them.
func TestReprovideAndExpiry(t *testing.T) {
	ha, hb := nodetest.Host(t), nodetest.Host(t)
	opts := []Option{WithReprovideInterval(300 * time.Millisecond), WithProvideTTL(1200 * time.Millisecond)}
	b := newDHT(t, hb, nil, opts...)
	a := newDHT(t, ha, []host.Host{hb}, opts...)
	waitRT(t, 1, 10*time.Second, a, b)

	ctx := context.Background()
	task := taskID(3)
	if err := a.Provide(ctx, task); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // past the TTL of the first record
	if got, err := b.FindProviders(ctx, task, 1); err != nil || !has(got, ha.ID()) {
		t.Fatalf("after TTL with reprovider: %v, %v", got, err)
	}
	a.Unprovide(task)
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := b.FindProviders(ctx, task, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("record did not expire after Unprovide")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A key provided before the node joined is announced once it joins.
func TestProvideBeforeJoin(t *testing.T) {
	ha, hb := nodetest.Host(t), nodetest.Host(t)
	a := newDHT(t, ha, nil)
	ctx := context.Background()
	task := taskID(4)
	if err := a.Provide(ctx, task); err == nil {
		t.Fatal("provide with no peers succeeded")
	}
	if got, err := a.FindProviders(ctx, task, 1); !errors.Is(err, ErrNoPeers) {
		t.Fatalf("find with no peers: %v, %v", got, err)
	}
	b := newDHT(t, hb, []host.Host{ha})
	waitRT(t, 1, 10*time.Second, a, b)
	// A pushes the record to B once it notices it joined (B's own store
	// holds it; a lookup could also be answered by A from its local store).
	key, _ := TaskKey(task)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ps, _ := b.kad.ProviderStore().GetProviders(ctx, key.Hash())
		if len(ps) == 1 && ps[0].ID == ha.ID() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("late provide never announced: B holds %v", ps)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got, err := b.FindProviders(ctx, task, 1); err != nil || !has(got, ha.ID()) {
		t.Fatalf("B found %v, %v", got, err)
	}
}

func TestBadBootstrap(t *testing.T) {
	h := nodetest.Host(t)
	other := nodetest.Host(t)
	for _, bad := range []string{
		"",
		"not a multiaddr",
		"/ip4/127.0.0.1/udp/4001/quic-v1", // no /p2p
		"/ip4/127.0.0.1/tcp/1/p2p/notapeerid",
		"/p2p/" + other.ID().String(), // no transport address
	} {
		d, err := New(context.Background(), h, WithBootstrap(bad))
		if err == nil {
			d.Close()
			t.Errorf("bootstrap %q accepted", bad)
			continue
		}
		if !strings.HasPrefix(err.Error(), "dht: ") {
			t.Errorf("bootstrap %q: unclear error %v", bad, err)
		}
	}
	if _, err := New(context.Background(), h, WithReprovideInterval(time.Hour), WithProvideTTL(time.Minute)); err == nil {
		t.Error("TTL shorter than the reprovide interval accepted")
	}
	// Own addresses are skipped, so a shared cluster-wide list is fine.
	infos, err := ParseBootstrap(h.ID(), append(node.Addrs(h), node.Addrs(other)...))
	if err != nil || len(infos) != 1 || infos[0].ID != other.ID() {
		t.Fatalf("ParseBootstrap = %v, %v", infos, err)
	}
}

// Close stops every goroutine the package started, even with a bootstrap
// peer that never answers and keys waiting to be announced; the host stays
// usable.
func TestCloseNoLeaks(t *testing.T) {
	defer goleak.VerifyNone(t, append(leakIgnores, goleak.IgnoreCurrent())...)
	h, err := node.New(node.WithListenAddrs("/ip4/127.0.0.1/udp/0/quic-v1"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	dead := nodetest.Host(t) // a peer that speaks no DHT
	d, err := New(context.Background(), h, WithBootstrap(node.Addrs(dead)...), WithQueryTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	_ = d.Provide(context.Background(), taskID(5))
	time.Sleep(300 * time.Millisecond)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal("second close:", err)
	}
	if err := d.Provide(context.Background(), taskID(5)); !errors.Is(err, ErrClosed) {
		t.Fatalf("provide after close: %v", err)
	}
	if _, err := d.FindProviders(context.Background(), taskID(5), 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("find after close: %v", err)
	}
	h.Close()
	dead.Close()
}

// Advertise returns at once; the reprovider announces the key moments later.
// Withdraw drops the task and its root.
func TestAdvertiseWithdraw(t *testing.T) {
	ha, hb := nodetest.Host(t), nodetest.Host(t)
	b := newDHT(t, hb, nil)
	a := newDHT(t, ha, []host.Host{hb})
	waitRT(t, 1, 10*time.Second, a, b)

	task := taskID(7)
	root := content.PieceCID([]byte("a manifest"))
	start := time.Now()
	a.Advertise(task)
	a.Advertise(task) // idempotent
	a.AdvertiseRoot(task, root)
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("Advertise blocked for %s", d)
	}
	if a.Provided() != 2 {
		t.Fatalf("provided = %d, want 2", a.Provided())
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ := b.FindProviders(context.Background(), task, 1)
		roots, _ := b.FindRootProviders(context.Background(), root, 1)
		if has(got, ha.ID()) && len(roots) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("advertised task not found: %v %v", got, roots)
		}
		time.Sleep(50 * time.Millisecond)
	}
	a.Withdraw(task)
	if a.Provided() != 0 {
		t.Fatalf("provided after withdraw = %d", a.Provided())
	}
}

// Nodes find the other nodes of a role; a node does not find itself.
func TestRoles(t *testing.T) {
	ha, hb, hc := nodetest.Host(t), nodetest.Host(t), nodetest.Host(t)
	b := newDHT(t, hb, nil)
	a := newDHT(t, ha, []host.Host{hb})
	c := newDHT(t, hc, []host.Host{hb})
	waitRT(t, 1, 10*time.Second, a, b, c)
	a.AdvertiseRole("tracker")
	c.AdvertiseRole("tracker")
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ := a.FindRole(context.Background(), "tracker", 5)
		if len(got) == 1 && got[0].ID == hc.ID() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("A found trackers %v, want only C", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if RoleKey("tracker").Equals(RoleKey("seed")) {
		t.Fatal("role keys collide")
	}
}

// A bootstrap address may name its host by DNS (/dns4/NAME/...): libp2p
// resolves it when dialling.
func TestBootstrapDNS(t *testing.T) {
	ha, hb := nodetest.Host(t), nodetest.Host(t)
	a := newDHT(t, ha, nil)
	var dns []string
	for _, s := range node.Addrs(ha) {
		if strings.HasPrefix(s, "/ip4/127.0.0.1/") {
			dns = append(dns, strings.Replace(s, "/ip4/127.0.0.1/", "/dns4/localhost/", 1))
		}
	}
	if len(dns) == 0 {
		t.Fatal("no loopback address to rewrite")
	}
	b, err := New(context.Background(), hb, WithBootstrap(dns...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	waitRT(t, 1, 10*time.Second, a, b)
}
