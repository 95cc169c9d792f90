package sim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/libp2p/go-libp2p/x/simlibp2p"
	"github.com/marcopolo/simnet"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/daemon"
	"github.com/dfp2p/dfp2p/tracker"
)

// memOrigin is the origin as an http.RoundTripper: it serves one file from
// memory (Range requests included, through http.ServeContent), so nothing
// inside the synctest bubble touches a real socket.
type memOrigin struct {
	data   []byte
	served atomic.Int64 // response body bytes handed out
}

func (o *memOrigin) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_ = r.Body.Close()
	}
	rec := httptest.NewRecorder()
	http.ServeContent(rec, r, "file.bin", time.Unix(0, 0), bytes.NewReader(o.data))
	resp := rec.Result()
	resp.Request = r
	if r.Method != http.MethodHead {
		o.served.Add(int64(rec.Body.Len()))
	}
	return resp, nil
}

// scenario is one simulated swarm: a tracker (open cluster, with its seed)
// and daemons, every node on its own simulated link.
type scenario struct {
	daemons   int
	size      int64
	bandwidth int           // bits per second, each direction, every node
	latency   time.Duration // one way, every packet
	// killAt, when > 0, closes the first killCount daemons (host first, as
	// a crash would) once the swarm holds this fraction of all its pieces.
	killAt    float64
	killCount int
}

type result struct {
	last               time.Duration // virtual time until the last survivor finished
	originServed       int64
	seedB, peerB, orgB int64 // summed over the survivors' streams
}

const mbps = simlibp2p.OneMbps

// run builds the network and every component inside the caller's synctest
// bubble, has every daemon download the same file at once, checks each
// survivor's bytes, and closes everything before returning.
func (sc scenario) run(t *testing.T) result {
	t.Helper()
	data := make([]byte, sc.size)
	rand.NewChaCha8([32]byte{1}).Read(data)
	want := sha256.Sum256(data)
	origin := &memOrigin{data: data}
	oc := &http.Client{Transport: origin}
	log := slog.New(slog.DiscardHandler)

	link := simnet.NodeBiDiLinkSettings{
		Downlink: simnet.LinkSettings{BitsPerSecond: sc.bandwidth},
		Uplink:   simnet.LinkSettings{BitsPerSecond: sc.bandwidth},
	}
	// Blank hosts (QUIC over simnet, identify, a connection manager) are all
	// dfp2p needs and are cheaper per node than full libp2p.New hosts.
	nw, meta, err := simlibp2p.SimpleLibp2pNetwork([]simlibp2p.NodeLinkSettingsAndCount{
		{LinkSettings: link, Count: sc.daemons + 1},
	}, simnet.StaticLatency(sc.latency), simlibp2p.NetworkSettings{UseBlankHost: true})
	if err != nil {
		t.Fatal(err)
	}
	nw.Start()
	defer nw.Close()
	// Deferred calls run last-in first-out: daemons, then the tracker, then
	// the hosts (which the components do not own), then the network. A
	// simulated host's Close is not idempotent: crashed ones are skipped.
	closed := make([]bool, sc.daemons) // daemon i and its host meta.Nodes[i+1]
	defer func() {
		for i, h := range meta.Nodes {
			if i == 0 || !closed[i-1] {
				_ = h.Close()
			}
		}
	}()

	tr, err := tracker.New(tracker.Config{
		DataDir: t.TempDir(), Host: meta.Nodes[0], Open: true, NoDHT: true,
		OriginClient: oc, GCInterval: -1, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()

	ds := make([]*daemon.Daemon, sc.daemons)
	defer func() {
		for i, d := range ds {
			if d != nil && !closed[i] {
				_ = d.Close()
			}
		}
	}()
	for i := range ds {
		ds[i], err = daemon.New(daemon.Config{
			DataDir: t.TempDir(), Host: meta.Nodes[i+1], Trackers: tr.Addrs(), NoDHT: true,
			NoAddrsFile: true, GCInterval: -1, OriginClient: oc, Logger: log,
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	const url = "http://origin.sim/file.bin"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // virtual
	defer cancel()
	start := time.Now()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		res     result
		streams = make([]*daemon.Stream, sc.daemons)
		errs    = make([]error, sc.daemons)
		killed  atomic.Bool
	)
	for i, d := range ds {
		wg.Go(func() {
			s, err := d.Open(ctx, daemon.Request{URL: url})
			if err != nil {
				errs[i] = err
				return
			}
			mu.Lock()
			streams[i] = s
			mu.Unlock()
			h := sha256.New()
			_, err = io.Copy(h, s)
			switch {
			case err != nil:
				errs[i] = err
			case !bytes.Equal(h.Sum(nil), want[:]):
				errs[i] = errors.New("sha256 of the stream does not match the file")
			case s.SHA256() != hex.EncodeToString(want[:]):
				errs[i] = fmt.Errorf("manifest sha256 %q does not match the file", s.SHA256())
			}
			st := s.Stats()
			_ = s.Close()
			if errs[i] != nil || (killed.Load() && i < sc.killCount) {
				return
			}
			mu.Lock()
			res.last = max(res.last, time.Since(start))
			res.seedB += st.SeedBytes
			res.peerB += st.PeerBytes
			res.orgB += st.OriginBytes
			mu.Unlock()
		})
	}

	if sc.killAt > 0 {
		ps := content.PieceSize(sc.size)
		total := int((sc.size+ps-1)/ps) * sc.daemons
		for {
			time.Sleep(50 * time.Millisecond)
			held := 0
			mu.Lock()
			for _, s := range streams {
				if s != nil {
					h, _ := s.Progress()
					held += h
				}
			}
			mu.Unlock()
			if float64(held) >= sc.killAt*float64(total) {
				t.Logf("killing %d of %d daemons at %v virtual, swarm holds %d/%d pieces",
					sc.killCount, sc.daemons, time.Since(start), held, total)
				break
			}
		}
		killed.Store(true)
		for i := range sc.killCount {
			_ = meta.Nodes[i+1].Close()
			_ = ds[i].Close()
			closed[i] = true
		}
	}
	wg.Wait()
	for i, err := range errs {
		if i < sc.killCount && killed.Load() {
			continue
		}
		if err != nil {
			t.Errorf("daemon %d: %v", i, err)
		}
	}
	res.originServed = origin.served.Load()
	return res
}

func (sc scenario) report(t *testing.T, r result) {
	t.Helper()
	lower := time.Duration(float64(sc.size*8) / float64(sc.bandwidth) * float64(time.Second))
	t.Logf("%d daemons, %d MiB at %d Mbit/s, %v one-way latency: last survivor done after %v virtual (lower bound size/bandwidth %v, %.1fx); "+
		"origin served %.2f copies; survivors got %d MiB from the seed, %d MiB from peers, %d B from the origin",
		sc.daemons, sc.size>>20, sc.bandwidth/mbps, sc.latency, r.last.Round(time.Millisecond), lower,
		float64(r.last)/float64(lower), float64(r.originServed)/float64(sc.size), r.seedB>>20, r.peerB>>20, r.orgB)
	if float64(r.originServed) > 1.1*float64(sc.size) {
		t.Errorf("origin served %d bytes, more than 1.1 copies of %d", r.originServed, sc.size)
	}
	if r.peerB == 0 {
		t.Error("no peer bytes: daemons did not serve each other")
	}
}

// TestSwarm50: 50 daemons fetch one file at once through one tracker seed.
func TestSwarm50(t *testing.T) {
	sc := scenario{daemons: 50, size: 8 << 20, bandwidth: 20 * mbps, latency: 10 * time.Millisecond}
	if raceEnabled {
		sc.size = 2 << 20 // one piece: the whole swarm still serves itself
	}
	synctest.Test(t, func(t *testing.T) { sc.report(t, sc.run(t)) })
}

// TestChurn50: 30% of 50 daemons crash mid-download; the rest complete.
func TestChurn50(t *testing.T) {
	if raceEnabled {
		t.Skip("too slow under the race detector; run without -race")
	}
	sc := scenario{daemons: 50, size: 8 << 20, bandwidth: 20 * mbps, latency: 10 * time.Millisecond,
		killAt: 0.4, killCount: 15}
	synctest.Test(t, func(t *testing.T) { sc.report(t, sc.run(t)) })
}
