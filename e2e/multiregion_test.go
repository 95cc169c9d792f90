package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/daemon"
	"github.com/dfp2p/dfp2p/e2e/cluster"
)

// region is one site of the multi-region topology: its namespace, tracker
// (with its seed) and daemons.
type region struct {
	name    string
	site    *cluster.Site
	tracker *cluster.Proc
	daemons []*cluster.Proc
}

// Three regions in network namespaces, joined through a core router whose
// links are shaped with tc tbf, each with a tracker and three daemons. A
// 64 MiB file asked for in every region at once is read from the origin
// about once, each region receives about one copy over its inter-region
// link, and every output is correct.
func TestMultiRegion(t *testing.T) {
	n, err := cluster.NewNet()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	dir := t.TempDir()
	ln, err := n.Core().Listen("tcp", n.Core().IP+":0")
	if err != nil {
		t.Fatal(err)
	}
	o, err := cluster.NewOriginOn(filepath.Join(dir, "origin"), ln)
	if err != nil {
		t.Fatal(err)
	}
	c := cluster.New(bin, filepath.Join(dir, "cluster"))
	c.Log = t.Logf
	t.Cleanup(func() {
		c.Close()
		o.Close()
		if t.Failed() {
			dumpLogs(t, filepath.Join(dir, "cluster"))
		}
	})
	const size = 64 << 20
	// 200 Mbit/s between regions: a copy takes about 2.7 s, slow next to
	// the namespaces' own loopback, as an inter-region link is next to a
	// rack's.
	const rate = "200mbit"
	f, err := o.Generate("region.bin", size, 2024)
	if err != nil {
		t.Fatal(err)
	}
	url := o.FileURL(f.Name)

	var regions []*region
	var bootstrap []string
	for _, name := range []string{"eu", "us", "ap"} {
		s, err := n.AddSite(name, rate)
		if err != nil {
			t.Fatal(err)
		}
		args := []string{"--region", name}
		for _, b := range bootstrap {
			args = append(args, "--bootstrap", b)
		}
		tr, err := c.StartTrackerIn(s, args...)
		if err != nil {
			t.Fatal(err)
		}
		bootstrap = append(bootstrap, tr.Addrs[0])
		r := &region{name: name, site: s, tracker: tr}
		for i := range 3 {
			d, err := c.StartDaemonIn(s, []*cluster.Proc{tr}, "--region", name, "--zone", fmt.Sprintf("%s-%c", name, 'a'+i%2))
			if err != nil {
				t.Fatal(err)
			}
			r.daemons = append(r.daemons, d)
		}
		regions = append(regions, r)
	}
	// The trackers find each other through the DHT before anyone asks.
	waitFor(t, 30*time.Second, "trackers joined the DHT", func() bool {
		for _, r := range regions {
			if metric(t, r.tracker, "dfp2p_dht_peers") < 2 {
				return false
			}
		}
		return true
	})

	in0 := map[string]uint64{}
	for _, r := range regions {
		in0[r.name], _ = linkBytes(t, n, r.site)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	type result struct {
		r   *region
		i   int
		res cluster.GetResult
		out string
	}
	var mu sync.Mutex
	var results []result
	var wg sync.WaitGroup
	start := time.Now()
	for _, r := range regions {
		for i, d := range r.daemons {
			out := filepath.Join(dir, fmt.Sprintf("out-%s-%d", r.name, i))
			wg.Go(func() {
				res := c.GetIn(ctx, r.site, url, out, "--daemon", d.URL())
				mu.Lock()
				results = append(results, result{r, i, res, out})
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	t.Logf("9 daemons in 3 regions got 64 MiB in %s", time.Since(start).Round(time.Millisecond))
	for _, res := range results {
		if res.res.ExitCode != 0 {
			t.Fatalf("get in %s on daemon %d: exit %d: %s", res.r.name, res.i, res.res.ExitCode, strings.TrimSpace(res.res.Stderr))
		}
		if got := sha256File(t, res.out); got != f.SHA256 {
			t.Fatalf("output of %s daemon %d is corrupt", res.r.name, res.i)
		}
	}

	// The origin served the file about once for the whole world.
	sent := o.BytesSent()
	t.Logf("origin served %d bytes (%.2f copies)", sent, float64(sent)/size)
	if sent < size || sent > size*23/20 {
		t.Errorf("origin served %.2f copies of the file, want about 1", float64(sent)/size)
	}
	// Each region received about one copy over its link: the elected seed's
	// from the origin, the others' from other regions. Protocol and DHT
	// traffic add a little.
	task, _ := content.TaskIDFor(url, "", "", content.DefaultQueryFilter)
	for _, r := range regions {
		in, _ := linkBytes(t, n, r.site)
		in -= in0[r.name]
		seedPeer := metric(t, r.tracker, "dfp2p_download_bytes_total{source=\"peer\"}")
		seedOrigin := metric(t, r.tracker, "dfp2p_download_bytes_total{source=\"origin\"}")
		t.Logf("region %s: %d bytes in (%.2f copies); its seed copied %.0f bytes from other regions, %.0f from the origin",
			r.name, in, float64(in)/size, seedPeer, seedOrigin)
		if in > size*13/10 {
			t.Errorf("region %s received %.2f copies over its inter-region link, want about 1", r.name, float64(in)/size)
		}
		// Inside the region, daemons fetched from their seed and each
		// other, never from the origin or another region.
		for i, d := range r.daemons {
			var st daemon.TaskStatus
			getJSONWith(t, d.HTTPClient(), d.URL()+"/api/v1/tasks/"+string(task), &st)
			if st.Stats == nil || st.Stats.OriginBytes != 0 {
				t.Errorf("region %s daemon %d read the origin (%+v)", r.name, i, st.Stats)
			}
		}
	}
}

// waitFor polls cond every 100 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
