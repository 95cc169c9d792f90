package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/daemon"
	"github.com/dfp2p/dfp2p/e2e/cluster"
)

// All five daemons fetch the same 128 MiB file at once; the origin is read
// about once.
func TestSwarmOriginReadOnce(t *testing.T) {
	e := newEnv(t)
	const size = 128 << 20
	f := e.file("big.bin", size)
	tr := e.tracker()
	ds := e.daemons(5, tr)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	results := e.startGets(ctx, e.origin.FileURL(f.Name), "out", ds)()
	for i, r := range results {
		if r.ExitCode != 0 {
			t.Fatalf("get on %s: exit %d: %s", ds[i].Name, r.ExitCode, r.Stderr)
		}
		if got := sha256File(t, e.outPath(fmt.Sprintf("out%d", i))); got != f.SHA256 {
			t.Fatalf("output %d: sha256 %s, want %s", i, got, f.SHA256)
		}
		t.Logf("%s: %s", ds[i].Name, r.Elapsed)
	}
	sent := e.origin.BytesSent()
	t.Logf("origin sent %d bytes for a %d-byte file (%.3fx)", sent, size, float64(sent)/size)
	if float64(sent) > 1.05*size {
		t.Fatalf("origin sent %d bytes, more than 1.05x the file (%d)", sent, size)
	}
	// Peers served each other, not only the seed ("P2P not happening" is the
	// classic failure of systems like this one).
	var peerBytes, seedBytes int64
	for _, d := range ds {
		var ts []daemon.TaskStatus
		getJSON(t, d.URL()+"/api/v1/tasks", &ts)
		if len(ts) != 1 || !ts[0].Complete || ts[0].Stats == nil {
			t.Fatalf("%s: tasks %+v, want one complete task with stats", d.Name, ts)
		}
		peerBytes += ts[0].Stats.PeerBytes
		seedBytes += ts[0].Stats.SeedBytes
	}
	t.Logf("bytes from peers %d, from the seed %d", peerBytes, seedBytes)
	if peerBytes < size {
		t.Fatalf("peers served each other only %d bytes in total; the seed served %d", peerBytes, seedBytes)
	}
	// The scheduler lets at most 2 copies of a piece leave the seed at once
	// (scheduler.Config.SeedCopies); allow some slack for timeouts.
	if seedBytes > 3*size {
		t.Fatalf("the seed served %d bytes (%.1f copies) to 5 daemons", seedBytes, float64(seedBytes)/size)
	}
}

// uploaded reads a process's dfp2p_upload_bytes_total.
func uploaded(t *testing.T, p *cluster.Proc) float64 {
	return metric(t, p, "dfp2p_upload_bytes_total")
}

// A peer whose pieces are corrupt on disk serves wrong bytes: the receiver
// detects it, writes nothing wrong, and gets the pieces elsewhere.
func TestBadPeerDetected(t *testing.T) {
	e := newEnv(t)
	const size = 32 << 20
	f := e.file("f.bin", size)
	url := e.origin.FileURL(f.Name)
	tr := e.tracker()
	ds := e.daemons(2, tr)
	evil, good := ds[0], ds[1]

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if r := e.c.Get(ctx, url, e.outPath("evil"), "--daemon", evil.URL()); r.ExitCode != 0 {
		t.Fatalf("seeding the evil peer: %s", r.Stderr)
	}
	// Flip bytes in every piece the evil daemon holds.
	task, _ := content.TaskIDFor(url, "", "", content.DefaultQueryFilter)
	pieces, _ := filepath.Glob(filepath.Join(evil.DataDir, "tasks", string(task), "*"))
	if len(pieces) == 0 {
		t.Fatal("no piece files found to corrupt")
	}
	for _, p := range pieces {
		fh, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fh.WriteAt([]byte("corrupt!"), 100); err != nil {
			t.Fatal(err)
		}
		fh.Close()
	}
	// Make sure the tracker knows the evil peer holds everything.
	time.Sleep(200 * time.Millisecond)

	r := e.c.Get(ctx, url, e.outPath("good"), "--daemon", good.URL())
	if r.ExitCode != 0 {
		t.Fatalf("get: %s", r.Stderr)
	}
	if got := sha256File(t, e.outPath("good")); got != f.SHA256 {
		t.Fatal("corrupt output written")
	}
	var st daemon.TaskStatus
	getJSON(t, good.URL()+"/api/v1/tasks/"+string(task), &st)
	metrics := fetchText(t, good.URL()+"/metrics")
	if !strings.Contains(metrics, "dfp2p_bad_pieces_total") || strings.Contains(metrics, "dfp2p_bad_pieces_total 0\n") {
		t.Fatalf("no bad piece detected; the evil peer was never asked?\n%s", grepLines(metrics, "dfp2p_"))
	}
	t.Logf("%s", grepLines(metrics, "dfp2p_bad_pieces_total"))
	// The good daemon stored only verified pieces: its copy re-reads correctly.
	if r := e.c.Get(ctx, url, e.outPath("good2"), "--daemon", good.URL()); r.ExitCode != 0 || sha256File(t, e.outPath("good2")) != f.SHA256 {
		t.Fatalf("second read from the good daemon: %s", r.Stderr)
	}
}
