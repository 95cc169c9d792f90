package dht

import (
	"context"
	"math/rand"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/internal/nodetest"
)

// swarm is n in-process DHT nodes on loopback QUIC. Nodes below servers run
// in server mode, the rest in auto mode (clients on loopback). Node 0
// bootstraps to nobody; node i > 0 bootstraps to 2 or 3 random earlier
// server nodes.
type swarm struct {
	hosts []host.Host
	dhts  []*DHT
}

func newSwarm(tb testing.TB, n, servers int, seed int64) *swarm {
	tb.Helper()
	rng := rand.New(rand.NewSource(seed))
	s := &swarm{}
	for i := range n {
		h := nodetest.Host(tb)
		var boot []host.Host
		earlier := min(i, servers)
		for _, j := range rng.Perm(earlier)[:min(earlier, 2+rng.Intn(2))] {
			boot = append(boot, s.hosts[j])
		}
		s.hosts = append(s.hosts, h)
		s.dhts = append(s.dhts, newDHT(tb, h, boot, WithServerMode(i < servers)))
	}
	// Every node has joined and refreshed: its table holds a good part of
	// the servers, not only its bootstrap peers.
	waitRT(tb, min(servers-1, 4), 30*time.Second, s.dhts...)
	return s
}

func (s *swarm) rtSizes() []int {
	var out []int
	for _, d := range s.dhts {
		out = append(out, d.RoutingTableSize())
	}
	return out
}

// provide makes nodes 0..providers-1 (spread over the swarm by the
// bootstrap order) announce tasks: task j by provider j%providers.
func (s *swarm) provide(tb testing.TB, providers, tasks int) (ids []content.TaskID, owner map[content.TaskID]peer.ID) {
	tb.Helper()
	owner = map[content.TaskID]peer.ID{}
	step := len(s.dhts) / providers
	for j := range tasks {
		id := taskID(1000 + j)
		p := (j % providers) * step
		if err := s.dhts[p].Provide(context.Background(), id); err != nil {
			tb.Fatalf("node %d provide: %v", p, err)
		}
		ids = append(ids, id)
		owner[id] = s.hosts[p].ID()
	}
	return ids, owner
}

// sample is one lookup: the latency to the first provider found, and
// whether the searcher held the record itself (it is one of the ~20 server
// peers closest to the key, which store it) so no query left the node.
type sample struct {
	lat   time.Duration
	local bool
}

// lookup has every non-provider node look up every task, one lookup at a
// time.
func (s *swarm) lookup(tb testing.TB, ids []content.TaskID, owner map[content.TaskID]peer.ID) []sample {
	tb.Helper()
	var out []sample
	isProvider := map[peer.ID]bool{}
	for _, p := range owner {
		isProvider[p] = true
	}
	for i, d := range s.dhts {
		if isProvider[s.hosts[i].ID()] {
			continue
		}
		for _, id := range ids {
			key, _ := TaskKey(id)
			ps, _ := d.kad.ProviderStore().GetProviders(context.Background(), key.Hash())
			start := time.Now()
			got, err := d.FindProviders(context.Background(), id, 1)
			el := time.Since(start)
			if err != nil || len(got) != 1 || got[0].ID != owner[id] || len(got[0].Addrs) == 0 {
				tb.Fatalf("node %d lookup %s: %v, %v (want %s)", i, id.Short(), got, err, owner[id])
			}
			out = append(out, sample{el, len(ps) > 0})
		}
	}
	return out
}

// stats returns the sorted latencies of all samples and of the remote ones.
func stats(ss []sample) (all, remote []time.Duration) {
	for _, s := range ss {
		all = append(all, s.lat)
		if !s.local {
			remote = append(remote, s.lat)
		}
	}
	slices.Sort(all)
	slices.Sort(remote)
	return all, remote
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// Ten nodes: six servers and four auto-mode daemons (clients on loopback,
// so they hold no records and every lookup they make goes over the
// network). Providers are nodes 0, 3 (servers) and 6 (a client).
func TestSwarm10EveryLookupSucceeds(t *testing.T) {
	s := newSwarm(t, 10, 6, 1)
	ids, owner := s.provide(t, 3, 10)
	all, remote := stats(s.lookup(t, ids, owner))
	if len(remote) == 0 {
		t.Fatal("no lookup went over the network")
	}
	t.Logf("routing tables %v; %d lookups: p50 %s p99 %s; %d remote: p50 %s p99 %s",
		s.rtSizes(), len(all), percentile(all, .5), percentile(all, .99),
		len(remote), percentile(remote, .5), percentile(remote, .99))
}

// BenchmarkProviderLookup30: 30 nodes, 5 providers, 20 tasks (one provider
// each); the 25 other nodes each look up all 20. Reports the latency to the
// first provider found.
//
//	go test -run '^$' -bench ProviderLookup30 -benchtime 1x ./dht/
func BenchmarkProviderLookup30(b *testing.B) {
	s := newSwarm(b, 30, 30, 1)
	ids, owner := s.provide(b, 5, 20)
	var samples []sample
	b.ResetTimer()
	for range b.N {
		samples = append(samples, s.lookup(b, ids, owner)...)
	}
	b.StopTimer()
	lat, remote := stats(samples)
	b.Logf("routing tables %v", s.rtSizes())
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(percentile(lat, .5)), "p50_ms")
	b.ReportMetric(ms(percentile(lat, .99)), "p99_ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max_ms")
	b.ReportMetric(float64(len(lat)), "lookups")
	b.ReportMetric(1-float64(len(remote))/float64(len(lat)), "local_frac")
	b.ReportMetric(ms(percentile(remote, .5)), "remote_p50_ms")
	b.ReportMetric(ms(percentile(remote, .99)), "remote_p99_ms")
}
