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

// Killing one daemon mid-download leaves the others completing correctly,
// and the killed daemon's client leaves no output.
func TestKillDaemonMidDownload(t *testing.T) {
	e := newEnv(t)
	const size = 64 << 20
	f := e.file("slow.bin", size)
	e.origin.SetDelay(20 * time.Millisecond) // 1024 writes of 64 KiB over 4 ranges: about 5 s
	tr := e.tracker()
	ds := e.daemons(4, tr)
	url := e.origin.FileURL(f.Name)
	task, _ := content.TaskIDFor(url, "", "", content.DefaultQueryFilter)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	wait := e.startGets(ctx, url, "out", ds)
	// Kill the first daemon that holds a third of the pieces, has served some
	// of them to the others, and is not done yet.
	var victim *cluster.Proc
	vi := -1
	deadline := time.Now().Add(time.Minute)
	for vi < 0 {
		for i, d := range ds {
			var st daemon.TaskStatus
			if getJSON(t, d.URL()+"/api/v1/tasks/"+string(task), &st) == 200 && st.Pieces > 0 &&
				st.Held >= st.Pieces/3 && st.Held < st.Pieces && uploaded(t, d) > 0 {
				t.Logf("killing %s at %d/%d pieces, after it uploaded %.0f bytes", d.Name, st.Held, st.Pieces, uploaded(t, d))
				victim, vi = d, i
				break
			}
		}
		if vi < 0 && time.Now().After(deadline) {
			t.Fatal("no daemon was ever part-way through while serving others")
		}
		time.Sleep(10 * time.Millisecond)
	}
	victim.Kill()
	results := wait()
	for i, r := range results {
		t.Logf("%s: exit %d after %s", ds[i].Name, r.ExitCode, r.Elapsed)
	}
	if results[vi].ExitCode == 0 {
		t.Fatalf("get against the killed daemon succeeded")
	}
	if strings.Count(strings.TrimSpace(results[vi].Stderr), "\n") != 0 {
		t.Errorf("failure is not one line: %q", results[vi].Stderr)
	}
	noOutput(t, e.outPath(fmt.Sprintf("out%d", vi)))
	for i := range ds {
		if i == vi {
			continue
		}
		if results[i].ExitCode != 0 {
			t.Fatalf("get on %s: exit %d: %s", ds[i].Name, results[i].ExitCode, results[i].Stderr)
		}
		if got := sha256File(t, e.outPath(fmt.Sprintf("out%d", i))); got != f.SHA256 {
			t.Fatalf("output %d corrupt", i)
		}
	}

	// The killed daemon restarts, reuses the pieces it had, and finishes.
	e.origin.SetDelay(0)
	if err := victim.Restart(); err != nil {
		t.Fatal(err)
	}
	r := e.c.Get(ctx, url, e.outPath("again"), "--daemon", victim.URL())
	t.Logf("get after restart: %s", r.Elapsed)
	if r.ExitCode != 0 {
		t.Fatalf("get after restart: %s", r.Stderr)
	}
	var st daemon.TaskStatus
	getJSON(t, victim.URL()+"/api/v1/tasks/"+string(task), &st)
	if st.Stats == nil || st.Stats.PeerBytes+st.Stats.SeedBytes+st.Stats.OriginBytes >= size {
		t.Fatalf("restarted daemon refetched everything (%+v): pieces on disk were not reused", st.Stats)
	}
	if got := sha256File(t, e.outPath("again")); got != f.SHA256 {
		t.Fatal("output after restart corrupt")
	}
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
