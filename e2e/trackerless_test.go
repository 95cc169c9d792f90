package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/daemon"
	"github.com/dfp2p/dfp2p/e2e/cluster"
)

// Two daemons with no tracker, joined only through --bootstrap. The first
// gets a file from the origin; the origin is stopped; the second gets the
// same URL from the first, found through the DHT.
func TestTrackerless(t *testing.T) {
	e := newEnv(t)
	const size = 24 << 20
	f := e.file("trackerless.bin", size)
	url := e.origin.FileURL(f.Name)
	task, _ := content.TaskIDFor(url, "", "", content.DefaultQueryFilter)

	d1, err := e.c.StartDaemon(nil)
	if err != nil {
		t.Fatal(err)
	}
	d2, err := e.c.StartDaemon(nil, "--bootstrap", d1.Addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the daemons joined the DHT", func() bool {
		return metric(t, d1, "dfp2p_dht_peers") >= 1 && metric(t, d2, "dfp2p_dht_peers") >= 1
	})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out1 := e.outPath("tl1")
	if r := e.c.Get(ctx, url, out1, "--daemon", d1.URL()); r.ExitCode != 0 {
		t.Fatalf("first get: exit %d: %s", r.ExitCode, strings.TrimSpace(r.Stderr))
	}
	if sha256File(t, out1) != f.SHA256 {
		t.Fatal("first output corrupt")
	}
	var st daemon.TaskStatus
	getJSON(t, d1.URL()+"/api/v1/tasks/"+string(task), &st)
	if st.Stats == nil || st.Stats.OriginBytes != size {
		t.Fatalf("the first daemon should have read the origin once: %+v", st.Stats)
	}
	// The first daemon announces the task; wait until it has, so the test
	// does not depend on how fast the announcement travels.
	waitFor(t, 30*time.Second, "the first daemon announced the task", func() bool {
		return metric(t, d1, "dfp2p_dht_provided_keys") >= 2 // task and manifest root
	})

	if err := e.origin.Close(); err != nil {
		t.Fatal(err)
	}
	out2 := e.outPath("tl2")
	start := time.Now()
	if r := e.c.Get(ctx, url, out2, "--daemon", d2.URL()); r.ExitCode != 0 {
		t.Fatalf("second get with the origin stopped: exit %d: %s", r.ExitCode, strings.TrimSpace(r.Stderr))
	}
	if sha256File(t, out2) != f.SHA256 {
		t.Fatal("second output corrupt")
	}
	getJSON(t, d2.URL()+"/api/v1/tasks/"+string(task), &st)
	t.Logf("second daemon got the file through the DHT in %s: %+v", time.Since(start).Round(time.Millisecond), st.Stats)
	if st.Stats == nil || st.Stats.OriginBytes != 0 || st.Stats.PeerBytes != size {
		t.Fatalf("the second daemon should have got every byte from its peer: %+v", st.Stats)
	}

	// A daemon whose only tracker is dead falls back to the DHT too.
	tr := e.tracker()
	tr.Kill()
	d3, err := e.c.StartDaemon([]*cluster.Proc{tr}, "--bootstrap", d1.Addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the third daemon joined the DHT", func() bool { return metric(t, d3, "dfp2p_dht_peers") >= 1 })
	out3 := e.outPath("tl3")
	start = time.Now()
	if r := e.c.Get(ctx, url, out3, "--daemon", d3.URL()); r.ExitCode != 0 {
		t.Fatalf("get with a dead tracker: exit %d: %s", r.ExitCode, strings.TrimSpace(r.Stderr))
	}
	if sha256File(t, out3) != f.SHA256 {
		t.Fatal("third output corrupt")
	}
	getJSON(t, d3.URL()+"/api/v1/tasks/"+string(task), &st)
	t.Logf("with its tracker dead, the third daemon got the file through the DHT in %s: %+v", time.Since(start).Round(time.Millisecond), st.Stats)
	if st.Stats == nil || st.Stats.OriginBytes != 0 || st.Stats.PeerBytes != size {
		t.Fatalf("the third daemon should have got every byte from its peers: %+v", st.Stats)
	}
}
