package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/e2e/cluster"
	"github.com/dfp2p/dfp2p/tracker"
)

// 30% of the peers (3 of 10) are killed with SIGKILL at random progress
// points of a 256 MiB download. Promise: every other daemon completes
// correctly, without reading the origin a second time; the killed daemons'
// gets fail in one line and leave nothing behind.
func scenarioPeersKilled(r *faultRun) {
	t := r.t
	const size, n, killed = 256 << 20, 10, 3
	f := r.file("peers-killed.bin", size)
	r.origin.SetDelay(5 * time.Millisecond) // the seed needs ~5 s: the swarm runs for a while
	tr := r.tracker()
	ds := r.daemons(n, tr)
	url := r.origin.FileURL(f.Name)
	task := taskOf(t, url)
	points := map[int]float64{}
	for _, i := range r.rng.Perm(n)[:killed] {
		points[i] = r.fraction("kill point of "+ds[i].Name+" (fraction of pieces held)", 0.05, 0.95)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	wait := r.startGets(ctx, url, "pk", ds)
	dead := map[int]bool{}
	waitFor(t, 4*time.Minute, "every victim to reach its kill point", func() bool {
		for i, p := range points {
			if dead[i] {
				continue
			}
			if st, ok := taskStatus(ds[i], task); ok && float64(st.Held) >= p*float64(st.Pieces) {
				t.Logf("SIGKILL %s at %d/%d pieces", ds[i].Name, st.Held, st.Pieces)
				ds[i].Kill()
				dead[i] = true
			}
		}
		return len(dead) == len(points)
	})
	results := wait()
	for i, res := range results {
		out := r.outPath(fmt.Sprintf("pk%d", i))
		t.Logf("%s: exit %d after %s", ds[i].Name, res.ExitCode, res.Elapsed.Round(time.Millisecond))
		if dead[i] {
			r.expectFailed(ds[i].Name, res, out, f)
			continue
		}
		r.expectOK(ds[i].Name, res, out, f)
		r.watch(ds[i])
	}
	sent := r.origin.BytesSent()
	t.Logf("origin sent %.3fx the file", float64(sent)/size)
	if float64(sent) > 1.05*size {
		t.Errorf("origin sent %d bytes (%.2fx): killing peers made the cluster read it again", sent, float64(sent)/size)
	}
}

// The only tracker (and so the seed) is killed mid-download and restarted
// with the same data dir and addresses. Promise: every daemon carries on and
// completes; the tracker rebuilds its state from registrations.
func scenarioTrackerRestart(r *faultRun) {
	t := r.t
	const size = 64 << 20
	f := r.file("tracker-restart.bin", size)
	r.origin.SetDelay(20 * time.Millisecond) // ~5 s of origin reading
	tr := r.tracker()
	if err := tr.PinPorts(); err != nil {
		t.Fatal(err)
	}
	ds := r.daemons(4, tr)
	url := r.origin.FileURL(f.Name)
	task := taskOf(t, url)
	watcher := ds[r.rng.IntN(len(ds))]
	point := r.fraction("tracker kill point (fraction of pieces held by "+watcher.Name+")", 0.1, 0.6)
	down := 500*time.Millisecond + time.Duration(r.rng.IntN(2500))*time.Millisecond
	r.choose("tracker down time", down)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	wait := r.startGets(ctx, url, "tr", ds)
	st := waitHeld(t, watcher, task, point)
	t.Logf("SIGKILL %s with %d/%d pieces on %s", tr.Name, st.Held, st.Pieces, watcher.Name)
	tr.Kill()
	time.Sleep(down) // the fault: the tracker stays down this long
	if err := tr.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s restarted", tr.Name)
	for i, res := range wait() {
		t.Logf("%s: exit %d after %s", ds[i].Name, res.ExitCode, res.Elapsed.Round(time.Millisecond))
		r.expectOK(ds[i].Name, res, r.outPath(fmt.Sprintf("tr%d", i)), f)
	}
	r.watch(ds...)
	t.Logf("origin sent %.3fx the file", float64(r.origin.BytesSent())/size)
	if _, status := httpGet(t, tr.HTTPClient(), tr.URL()+"/healthz"); status != 200 {
		t.Errorf("restarted tracker: /healthz %d", status)
	}
}

// Two trackers share tasks by rendezvous hashing; the seed runs in the
// tracker that owns the task. Killing that tracker (and its seed) once part
// of the file has spread leaves every download completing through the other
// tracker and its seed, which copies what the daemons hold and reads only
// the rest from the origin; no daemon reads the origin itself.
func scenarioSeedKilled(r *faultRun) {
	t := r.t
	const size = 64 << 20
	f := r.file("seed-killed.bin", size)
	r.origin.SetDelay(20 * time.Millisecond)
	trs := []*cluster.Proc{r.tracker(), r.tracker()}
	ds := r.daemons(3, trs...)
	url := r.origin.FileURL(f.Name)
	task := taskOf(t, url)

	var ids []peer.ID
	byID := map[peer.ID]*cluster.Proc{}
	for _, tr := range trs {
		ais, err := tracker.ParseAddrs(tr.Addrs[:1])
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ais[0].ID)
		byID[ais[0].ID] = tr
	}
	owner := byID[tracker.Rank(task, ids)[0]]
	watcher := ds[r.rng.IntN(len(ds))]
	point := r.fraction("seed kill point (fraction of pieces held by "+watcher.Name+")", 0.1, 0.6)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	wait := r.startGets(ctx, url, "fo", ds)
	st := waitHeld(t, watcher, task, point)
	t.Logf("SIGKILL the owning tracker %s (and its seed) with %d/%d pieces on %s", owner.Name, st.Held, st.Pieces, watcher.Name)
	owner.Kill()
	for i, res := range wait() {
		t.Logf("%s: exit %d after %s", ds[i].Name, res.ExitCode, res.Elapsed.Round(time.Millisecond))
		r.expectOK(ds[i].Name, res, r.outPath(fmt.Sprintf("fo%d", i)), f)
	}
	r.watch(ds...)
	// No daemon fell back to the origin: the swarm carried on under the
	// surviving tracker.
	for _, d := range ds {
		if st, _ := taskStatus(d, task); st.Stats == nil || st.Stats.OriginBytes != 0 {
			t.Errorf("%s read the origin itself (%+v)", d.Name, st.Stats)
		}
	}
	// Both seeds read the origin: the dead one up to the whole file plus the
	// ranges it had in flight (4 pieces), the new one at most the whole file.
	sent := r.origin.BytesSent()
	t.Logf("origin sent %.2fx the file", float64(sent)/size)
	if limit := 2*size + 4*content.PieceSize(size) + size/50; sent > limit {
		t.Errorf("origin sent %d bytes (%.2fx the file), limit %d", sent, float64(sent)/size, limit)
	}
}

// The cluster's only tracker (and its seed) dies for good mid-download. The
// design promises (docs/operations.md, "The tracker is unreachable") that
// daemons whose tracker stops answering carry on through the DHT among
// themselves, keeping what they verified, and read the origin only for what
// no peer holds, electing one of them to read it: every download completes,
// and the daemons together read the origin at most once more.
func scenarioSeedLost(r *faultRun) {
	t := r.t
	const size = 32 << 20
	f := r.file("seed-lost.bin", size)
	r.origin.SetDelay(20 * time.Millisecond)
	tr := r.tracker()
	ds := r.daemons(4, tr)
	url := r.origin.FileURL(f.Name)
	task := taskOf(t, url)
	point := r.fraction("tracker kill point (fraction of pieces every daemon holds)", 0.2, 0.8)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	wait := r.startGets(ctx, url, "sl", ds)
	var held []int
	waitFor(t, time.Minute, "the kill point", func() bool {
		held = held[:0]
		for _, d := range ds {
			st, ok := taskStatus(d, task)
			if !ok || float64(st.Held) < point*float64(st.Pieces) {
				return false
			}
			held = append(held, st.Held)
		}
		return true
	})
	t.Logf("SIGKILL the only tracker %s (and its seed) for good; pieces held: %v of %d", tr.Name, held, content.NumPieces(size, content.PieceSize(size)))
	tr.Kill()
	for i, res := range wait() {
		t.Logf("%s: exit %d after %s", ds[i].Name, res.ExitCode, res.Elapsed.Round(time.Millisecond))
		r.expectOK(ds[i].Name, res, r.outPath(fmt.Sprintf("sl%d", i)), f)
	}
	// Each daemon keeps what it verified: it never reads from the origin
	// the pieces it held when the seed died.
	var fromOrigin int64
	ps := content.PieceSize(size)
	for i, d := range ds {
		st, _ := taskStatus(d, task)
		if st.Stats == nil {
			t.Errorf("%s: no stats", d.Name)
			continue
		}
		t.Logf("%s: origin %d, seed %d, peers %d bytes", d.Name, st.Stats.OriginBytes, st.Stats.SeedBytes, st.Stats.PeerBytes)
		fromOrigin += st.Stats.OriginBytes
		if limit := size - int64(held[i]-1)*ps; st.Stats.OriginBytes > limit {
			t.Errorf("%s read %d bytes from the origin though it held %d pieces (limit %d)", d.Name, st.Stats.OriginBytes, held[i], limit)
		}
	}
	// The daemons that stalled together elect one to read the part nobody
	// held (swarm.ElectOnStall): together they read it about once, never
	// the whole file again (before the election each read it: 2x).
	t.Logf("after the seed died the daemons read %.2fx the file from the origin", float64(fromOrigin)/size)
	if fromOrigin > size {
		t.Errorf("the daemons read %.2fx the file from the origin after the seed died: more than one read the missing part", float64(fromOrigin)/size)
	}
	r.watch(ds...)
}

// The origin misbehaves on a seeded schedule: half of the ranges get one or
// two faulty attempts (503, the connection dropped mid-body, or a crawl).
// Promise: the seed retries and every download completes. Then the origin
// goes down (503 on everything) for a new file: the get fails in one line
// naming the status, with no output; once the origin is back, the same get
// succeeds (the failure is not remembered).
func scenarioOriginFaults(r *faultRun) {
	t := r.t
	const size = 48 << 20
	f := r.file("origin-faults.bin", size)
	sched := &cluster.FaultSchedule{Seed: r.seed, Rate: 0.5, MaxInARow: 2, CrawlDelay: 10 * time.Millisecond, Log: t.Logf}
	r.choose("origin fault schedule", fmt.Sprintf("rate %.2f, at most %d faulty attempts per range, modes 503/reset/crawl", sched.Rate, sched.MaxInARow))
	r.origin.SetFaults(sched)
	tr := r.tracker()
	ds := r.daemons(3, tr)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	url := r.origin.FileURL(f.Name)
	for i, res := range r.startGets(ctx, url, "of", ds)() {
		t.Logf("%s: exit %d after %s", ds[i].Name, res.ExitCode, res.Elapsed.Round(time.Millisecond))
		r.expectOK(ds[i].Name, res, r.outPath(fmt.Sprintf("of%d", i)), f)
	}
	inj := sched.Injected()
	t.Logf("faults injected: %v", inj)
	if len(inj) == 0 {
		t.Errorf("the schedule injected no fault")
	}

	g := r.file("origin-down.bin", 8<<20)
	r.origin.SetFaults(&cluster.FaultSchedule{Down: 503, Log: t.Logf})
	out := r.outPath("down")
	res := r.c.Get(ctx, r.origin.FileURL(g.Name), out, "--daemon", ds[0].URL())
	if res.ExitCode == 0 {
		t.Errorf("get succeeded while the origin answered 503")
	}
	r.expectFailed(ds[0].Name+" (origin down)", res, out, g)
	if !strings.Contains(res.Stderr, "503") {
		t.Errorf("the error does not name the origin's status 503: %q", strings.TrimSpace(res.Stderr))
	}
	// The seed keeps a failed job for about 2 s (so a burst of peers sees
	// one error, not a refetch each): a get shortly after recovery may
	// still see the 503, one a few seconds later must succeed.
	r.origin.SetFaults(nil)
	back := time.Now()
	for {
		res = r.c.Get(ctx, r.origin.FileURL(g.Name), out, "--daemon", ds[0].URL())
		if res.ExitCode == 0 || time.Since(back) > 30*time.Second {
			break
		}
		r.expectFailed(ds[0].Name+" (origin just back)", res, out, g)
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("get succeeded %s after the origin came back", time.Since(back).Round(time.Millisecond))
	r.expectOK(ds[0].Name+" (origin back)", res, out, g)
	r.watch(ds...)
}

// Three hostile members (e2e/cmd/byzantine: joined with the token, claiming
// every piece) sit in the swarm: one sends random bytes, one never answers,
// one answers "not found". Promise: honest daemons detect the garbage
// (bad-piece metric, reported to the tracker), never store or serve a bad
// piece, and complete.
func scenarioByzantine(r *faultRun) {
	t := r.t
	const size = 32 << 20
	f := r.file("byzantine.bin", size)
	url := r.origin.FileURL(f.Name)
	task := taskOf(t, url)
	byz, err := cluster.BuildCommand(r.dir, "./e2e/cmd/byzantine")
	if err != nil {
		t.Fatal(err)
	}
	tr := r.tracker()
	for _, mode := range []string{"garbage", "silent", "lie"} {
		p, err := r.c.StartCommand(byz, "byzantine", "--join", tr.JoinToken(), "--url", url, "--mode", mode)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s is a byzantine member (%s)", p.Name, mode)
	}
	// The hostile claims count once the seed has hashed the pieces.
	waitFor(t, time.Minute, "the seed to hold the task", func() bool {
		var ti tracker.TaskInfo
		return getJSON(t, tr.URL()+"/api/v1/tasks/"+string(task), &ti) == 200 && ti.SeedDone
	})
	ds := r.daemons(3, tr)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	for i, res := range r.startGets(ctx, url, "bz", ds)() {
		t.Logf("%s: exit %d after %s", ds[i].Name, res.ExitCode, res.Elapsed.Round(time.Millisecond))
		r.expectOK(ds[i].Name, res, r.outPath(fmt.Sprintf("bz%d", i)), f)
		// Hostile parents cost a few idle timeouts (5 s), not the
		// tracker's 60 s assignment timeout: 32 MiB takes ~1 s without them.
		if res.Elapsed > 45*time.Second {
			t.Errorf("%s: took %s: hostile members stalled the download", ds[i].Name, res.Elapsed.Round(time.Second))
		}
	}
	var bad float64
	for _, d := range ds {
		bad += metric(t, d, "dfp2p_bad_pieces_total")
		checkPieceFiles(r, d, task)
	}
	tbad := metric(t, tr, `dfp2p_tracker_reported_pieces_total{outcome="bad-piece"}`)
	t.Logf("bad pieces detected by daemons: %.0f, reported to the tracker: %.0f", bad, tbad)
	if bad == 0 || tbad == 0 {
		t.Errorf("the garbage peer's pieces were never detected (daemons %.0f, tracker %.0f)", bad, tbad)
	}
	// What the honest daemons serve is right: a latecomer fetches from
	// them (and the hostile members) and gets the file.
	late := r.daemons(1, tr)[0]
	out := r.outPath("bz-late")
	r.expectOK(late.Name, r.c.Get(ctx, url, out, "--daemon", late.URL()), out, f)
	checkPieceFiles(r, late, task)
	r.watch(append(ds, late)...)
}

// checkPieceFiles: every piece a daemon stored for task hashes to the CID in
// its file name (<index>-<cid>).
func checkPieceFiles(r *faultRun, d *cluster.Proc, task content.TaskID) {
	files, _ := filepath.Glob(filepath.Join(d.DataDir, "tasks", string(task), "*"))
	held := 0
	for _, p := range files {
		idx, c, ok := strings.Cut(filepath.Base(p), "-")
		if _, err := strconv.Atoi(idx); !ok || err != nil || strings.HasSuffix(c, ".tmp") {
			continue // not a piece (a temp file from a piece in flight)
		}
		fh, err := os.Open(p)
		if err != nil {
			r.t.Error(err)
			continue
		}
		h := sha256.New()
		_, err = io.Copy(h, fh)
		fh.Close()
		want, cerr := content.CIDFromSHA256(h.Sum(nil))
		if err != nil || cerr != nil || want.String() != c {
			r.t.Errorf("%s stored a bad piece: %s (its bytes hash to %s)", d.Name, p, want)
		}
		held++
	}
	r.t.Logf("%s: %d stored pieces checked against their CIDs", d.Name, held)
}

// A daemon's data dir is a small tmpfs that fills up mid-download. Promise:
// its get fails with one line saying there is no space, no output appears,
// the daemon stays healthy, and once space is freed the same get succeeds.
// The same for a -O target on a full file system.
func scenarioDiskFull(r *faultRun) {
	t := r.t
	const size = 32 << 20
	f := r.file("disk-full.bin", size)
	url := r.origin.FileURL(f.Name)
	tr := r.tracker()
	ds := r.daemons(2, tr)
	full, other := ds[0], ds[1]
	const disk, filler = 48 << 20, 28 << 20
	full.Kill()
	unmount, err := full.MoveToTmpfs(disk)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		full.Kill()
		if err := unmount(); err != nil {
			t.Error(err)
		}
	})
	fill := filepath.Join(full.DataDir, "filler")
	if err := os.WriteFile(fill, bytes.Repeat([]byte{1}, filler), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := full.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s runs on a %d MiB tmpfs with %d MiB taken", full.Name, disk>>20, filler>>20)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out := r.outPath("full")
	res := r.c.Get(ctx, url, out, "--daemon", full.URL())
	if res.ExitCode == 0 {
		t.Fatalf("get on a full disk succeeded")
	}
	r.expectFailed(full.Name+" (disk full)", res, out, f)
	if !strings.Contains(strings.ToLower(res.Stderr), "no space") {
		t.Errorf("the error does not say the disk is full: %q", strings.TrimSpace(res.Stderr))
	}
	if _, status := httpGet(t, full.HTTPClient(), full.URL()+"/healthz"); status != 200 || !full.Alive() {
		t.Fatalf("%s unhealthy after its disk filled up", full.Name)
	}
	// The other daemon is not affected.
	out2 := r.outPath("full-other")
	r.expectOK(other.Name, r.c.Get(ctx, url, out2, "--daemon", other.URL()), out2, f)

	// Space is freed: the same get succeeds.
	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	r.expectOK(full.Name+" (space freed)", r.c.Get(ctx, url, out, "--daemon", full.URL()), out, f)

	// A -O target on a full file system.
	tdir := filepath.Join(r.dir, "out-full")
	unmountOut, err := cluster.MountTmpfs(tdir, 16<<20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unmountOut(); err != nil {
			t.Error(err)
		}
	})
	out3 := filepath.Join(tdir, "f.bin")
	res = r.c.Get(ctx, url, out3, "--daemon", other.URL())
	if res.ExitCode == 0 {
		t.Fatalf("get to a full -O file system succeeded")
	}
	r.expectFailed(other.Name+" (-O full)", res, out3, f)
	if !strings.Contains(strings.ToLower(res.Stderr), "no space") {
		t.Errorf("the error does not say the disk is full: %q", strings.TrimSpace(res.Stderr))
	}
	r.watch(ds...)
}

// A daemon is killed mid-download while it serves others, then restarted:
// the others complete, the killed daemon's get fails in one line with no
// output, and after the restart it resumes from the pieces on disk (fetches
// less than the file).
func scenarioDaemonRestart(r *faultRun) {
	t := r.t
	const size = 64 << 20
	f := r.file("slow.bin", size)
	r.origin.SetDelay(20 * time.Millisecond) // 1024 writes of 64 KiB over 4 ranges: about 5 s
	tr := r.tracker()
	ds := r.daemons(4, tr)
	url := r.origin.FileURL(f.Name)
	task := taskOf(t, url)
	point := r.fraction("kill point (fraction of pieces held)", 0.2, 0.7)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	wait := r.startGets(ctx, url, "out", ds)
	// Kill the first daemon that holds its share of the pieces, has served
	// some of them to the others, and is not done yet.
	var victim *cluster.Proc
	vi := -1
	waitFor(t, time.Minute, "a daemon part-way through while serving others", func() bool {
		for i, d := range ds {
			if st, ok := taskStatus(d, task); ok && float64(st.Held) >= point*float64(st.Pieces) && st.Held < st.Pieces && uploaded(t, d) > 0 {
				t.Logf("SIGKILL %s at %d/%d pieces, after it uploaded %.0f bytes", d.Name, st.Held, st.Pieces, uploaded(t, d))
				victim, vi = d, i
				return true
			}
		}
		return false
	})
	victim.Kill()
	results := wait()
	for i, res := range results {
		t.Logf("%s: exit %d after %s", ds[i].Name, res.ExitCode, res.Elapsed.Round(time.Millisecond))
		out := r.outPath(fmt.Sprintf("out%d", i))
		if i == vi {
			if res.ExitCode == 0 {
				t.Errorf("get against the killed daemon succeeded")
			}
			r.expectFailed(ds[i].Name, res, out, f)
			continue
		}
		r.expectOK(ds[i].Name, res, out, f)
	}

	// The killed daemon restarts, reuses the pieces it had, and finishes.
	r.origin.SetDelay(0)
	if err := victim.Restart(); err != nil {
		t.Fatal(err)
	}
	out := r.outPath("again")
	res := r.c.Get(ctx, url, out, "--daemon", victim.URL())
	t.Logf("get after restart: %s", res.Elapsed)
	r.expectOK(victim.Name+" after restart", res, out, f)
	st, _ := taskStatus(victim, task)
	if st.Stats == nil {
		t.Fatalf("no stats for the resumed download")
	}
	fetched := st.Stats.PeerBytes + st.Stats.SeedBytes + st.Stats.OriginBytes
	t.Logf("resumed download fetched %d of %d bytes", fetched, int64(size))
	if fetched >= size {
		t.Errorf("restarted daemon refetched everything (%+v): pieces on disk were not reused", st.Stats)
	}
	r.watch(ds...)
}
