package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dfp2p/dfp2p/e2e/cluster"
)

// The network-namespace harness: two shaped sites behind a core carry a body
// intact, the link counters see it cross out of one site and into the other,
// real dfp2p processes run inside sites, and Close leaves no namespace.
func TestNetnsTopology(t *testing.T) {
	n, err := cluster.NewNet()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	const rate, rateMbit = "50mbit", 50.0
	a, err := n.AddSite("a", rate)
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.AddSite("b", rate)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ln, err := a.Listen("tcp", a.IP+":0")
	if err != nil {
		t.Fatal(err)
	}
	o, err := cluster.NewOriginOn(filepath.Join(dir, "origin"), ln)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	const size = 16 << 20
	f, err := o.Generate("body.bin", size, 7)
	if err != nil {
		t.Fatal(err)
	}

	// Site b downloads from site a: out of a, through the core, into b.
	inA0, outA0 := linkBytes(t, n, a)
	inB0, outB0 := linkBytes(t, n, b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, o.FileURL(f.Name), nil)
	resp, err := b.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	got, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	elapsed := time.Since(start)
	if err != nil || resp.StatusCode != http.StatusOK || got != size || hex.EncodeToString(h.Sum(nil)) != f.SHA256 {
		t.Fatalf("download: status %d, %d bytes, err %v; sha256 match %v", resp.StatusCode, got, err, hex.EncodeToString(h.Sum(nil)) == f.SHA256)
	}
	inA, outA := linkBytes(t, n, a)
	inB, outB := linkBytes(t, n, b)
	inA, outA, inB, outB = inA-inA0, outA-outA0, inB-inB0, outB-outB0
	mbit := float64(size) * 8 / elapsed.Seconds() / 1e6
	t.Logf("16 MiB in %s (%.1f mbit/s over %s links); a: in %d out %d; b: in %d out %d", elapsed.Round(time.Millisecond), mbit, rate, inA, outA, inB, outB)
	if outA < size || inB < size {
		t.Errorf("link counters missed the body: out of a %d, into b %d, want >= %d", outA, inB, size)
	}
	if inA > size/8 || outB > size/8 {
		t.Errorf("the reverse direction carried more than acknowledgements: into a %d, out of b %d", inA, outB)
	}
	// Shaping can only slow a transfer down; one well above the rate means
	// the tbf is not in the path.
	if mbit > 1.5*rateMbit {
		t.Errorf("%.1f mbit/s through a %s link: not shaped", mbit, rate)
	}

	// Real processes inside sites: a tracker in a, a daemon in b, and a get
	// in b that the daemon serves through the tracker's seed across the core.
	c := cluster.New(bin, filepath.Join(dir, "cluster"))
	c.Log = t.Logf
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			dumpLogs(t, filepath.Join(dir, "cluster"))
		}
	})
	tr, err := c.StartTrackerIn(a)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tr.Addrs[0], "/ip4/"+a.IP+"/") {
		t.Errorf("tracker addresses %v, want them on %s", tr.Addrs, a.IP)
	}
	hreq, _ := http.NewRequestWithContext(ctx, http.MethodGet, tr.URL()+"/healthz", nil)
	hresp, err := tr.HTTPClient().Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	hresp.Body.Close()
	if hresp.StatusCode != http.StatusOK {
		t.Fatalf("tracker /healthz: %s", hresp.Status)
	}
	d, err := c.StartDaemonIn(b, []*cluster.Proc{tr})
	if err != nil {
		t.Fatal(err)
	}
	small, err := o.Generate("small.bin", 1<<20, 8)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "small.out")
	if r := c.GetIn(ctx, b, o.FileURL(small.Name), out, "--daemon", d.URL()); r.ExitCode != 0 {
		t.Fatalf("get in site b: exit %d: %s", r.ExitCode, r.Stderr)
	}
	if sha256File(t, out) != small.SHA256 {
		t.Fatal("get in site b: output corrupt")
	}

	c.Close()
	o.Close()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	list, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*cluster.Site{n.Core(), a, b} {
		for _, l := range strings.Split(string(list), "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[0] == s.NS {
				t.Errorf("namespace %s still exists after Close", s.NS)
			}
		}
	}
}

func linkBytes(t *testing.T, n *cluster.Net, s *cluster.Site) (in, out uint64) {
	t.Helper()
	in, out, err := n.LinkBytes(s)
	if err != nil {
		t.Fatal(err)
	}
	return in, out
}
