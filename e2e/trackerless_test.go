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
	// get fetches the URL through d, checks the output, and returns where
	// d's bytes came from.
	get := func(what string, d *cluster.Proc) daemon.Stats {
		t.Helper()
		out := e.outPath(d.Name)
		start := time.Now()
		if r := e.c.Get(ctx, url, out, "--daemon", d.URL()); r.ExitCode != 0 {
			t.Fatalf("%s: exit %d: %s", what, r.ExitCode, strings.TrimSpace(r.Stderr))
		}
		if sha256File(t, out) != f.SHA256 {
			t.Fatalf("%s: output corrupt", what)
		}
		var st daemon.TaskStatus
		getJSON(t, d.URL()+"/api/v1/tasks/"+string(task), &st)
		if st.Stats == nil {
			t.Fatalf("%s: no statistics", what)
		}
		t.Logf("%s: %s, %+v", what, time.Since(start).Round(time.Millisecond), *st.Stats)
		return *st.Stats
	}

	if st := get("first daemon, from the origin", d1); st.OriginBytes != size {
		t.Fatalf("the first daemon should have read the origin once: %+v", st)
	}
	// The first daemon announces the task; wait until it has, so the test
	// does not depend on how fast the announcement travels.
	waitFor(t, 30*time.Second, "the first daemon announced the task", func() bool {
		return metric(t, d1, "dfp2p_dht_provided_keys") >= 2 // task and manifest root
	})

	if err := e.origin.Close(); err != nil {
		t.Fatal(err)
	}
	if st := get("second daemon, origin stopped", d2); st.OriginBytes != 0 || st.PeerBytes != size {
		t.Fatalf("the second daemon should have got every byte from its peer: %+v", st)
	}

	// A daemon whose only tracker is dead falls back to the DHT too (an open
	// cluster's tracker, like the daemons here).
	tr, err := e.c.StartTracker("--open")
	if err != nil {
		t.Fatal(err)
	}
	tr.Kill()
	d3, err := e.c.StartDaemon([]*cluster.Proc{tr}, "--bootstrap", d1.Addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the third daemon joined the DHT", func() bool { return metric(t, d3, "dfp2p_dht_peers") >= 1 })
	if st := get("third daemon, tracker dead", d3); st.OriginBytes != 0 || st.PeerBytes != size {
		t.Fatalf("the third daemon should have got every byte from its peers: %+v", st)
	}
}
