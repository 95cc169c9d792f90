package e2e

import (
	"context"
	"encoding/csv"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dfp2p/dfp2p/e2e/cluster"
	"github.com/dfp2p/dfp2p/e2e/soak"
)

// TestSoak runs a small closed cluster (a tracker and three daemons, real
// processes) for DFP2P_SOAK_DURATION under random gets of a rotating set of
// files of different sizes at changing concurrency, while SIGKILLing and
// restarting daemons and now and then the tracker. Every completed get's
// sha256 is checked. RSS, goroutines and open descriptors of every process
// are sampled every few seconds into DFP2P_SOAK_OUT (samples.csv, gets.csv,
// events.csv, summary.txt and soak-*.png). It fails on wrong data, on a get
// that failed although its own daemon was not killed during it, and on a
// metric that grows without bound over a process lifetime (soak.Judge).
//
// `make soak DURATION=30m` runs it; `make test` runs a 2-minute smoke.
func TestSoak(t *testing.T) {
	durS := os.Getenv("DFP2P_SOAK_DURATION")
	if durS == "" {
		t.Skip("set DFP2P_SOAK_DURATION (make soak DURATION=30m)")
	}
	dur, err := time.ParseDuration(durS)
	if err != nil || dur < 30*time.Second {
		t.Fatalf("DFP2P_SOAK_DURATION=%q: want a duration of at least 30s", durS)
	}
	outDir := os.Getenv("DFP2P_SOAK_OUT")
	if outDir == "" {
		outDir = t.TempDir()
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("DFP2P_SOAK_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("soak: %s, seed %d, results in %s", dur, seed, outDir)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var rngMu sync.Mutex
	randN := func(n int) int {
		rngMu.Lock()
		defer rngMu.Unlock()
		return rng.IntN(n)
	}
	between := func(a, b time.Duration) time.Duration {
		return a + time.Duration(randN(int(b-a)+1))
	}

	e := newEnv(t)
	// Short GC settings so that stores stay bounded and GC runs under load.
	gc := []string{"--gc-interval", "30s", "--gc-ttl", "2m"}
	listen, err := cluster.FixedListen()
	if err != nil {
		t.Fatal(err)
	}
	tr, err := e.c.StartTracker(append([]string{"--listen", listen}, gc...)...)
	if err != nil {
		t.Fatal(err)
	}
	var ds []*cluster.Proc
	for range 3 {
		d, err := e.c.StartDaemon([]*cluster.Proc{tr}, gc...)
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	procs := append([]*cluster.Proc{tr}, ds...)
	// plock[p] is held by the chaos loop while it kills or restarts p, and
	// by the sampler while it samples p.
	plock := map[*cluster.Proc]*sync.RWMutex{}
	for _, p := range procs {
		plock[p] = new(sync.RWMutex)
	}

	// Files: a rotating active set; a new file joins every rotateEvery.
	sizes := []int64{16 << 10, 300 << 10, 1 << 20, 3 << 20, 7 << 20, 12 << 20}
	var (
		mu     sync.Mutex
		files  []cluster.File
		nFiles int
		down   = map[*cluster.Proc]bool{}
		epoch  = map[*cluster.Proc]int{}
	)
	addFile := func() {
		mu.Lock()
		nFiles++
		n := nFiles
		mu.Unlock()
		size := sizes[randN(len(sizes))] + int64(randN(64<<10))
		f, err := e.origin.Generate(fmt.Sprintf("soak-%03d.bin", n), size, seed+uint64(n))
		if err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		files = append(files, f)
		if len(files) > 8 {
			files = files[1:]
		}
		mu.Unlock()
	}
	for range 6 {
		addFile()
	}

	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	start := time.Now()
	since := func() time.Duration { return time.Since(start) }

	var (
		recMu   sync.Mutex
		rows    []soak.Row
		events  []soak.Event
		gets    [][]string
		nOK     int
		nExcuse int
		nFail   int
	)
	event := func(format string, args ...any) {
		recMu.Lock()
		events = append(events, soak.Event{At: since(), What: fmt.Sprintf(format, args...)})
		recMu.Unlock()
		t.Logf("%6.1fs "+format, append([]any{since().Seconds()}, args...)...)
	}

	var wg sync.WaitGroup
	// Sampler.
	sampleEvery := min(max(dur/120, 2*time.Second), 5*time.Second)
	wg.Go(func() {
		tick := time.NewTicker(sampleEvery)
		defer tick.Stop()
		for {
			for _, p := range procs {
				plock[p].RLock()
				mu.Lock()
				isDown := down[p]
				mu.Unlock()
				var s cluster.Sample
				err := fmt.Errorf("down")
				if !isDown {
					s, err = p.Sample(context.Background())
				}
				plock[p].RUnlock()
				if err != nil {
					continue // killed between the check and the sample
				}
				recMu.Lock()
				rows = append(rows, soak.Row{At: since(), Proc: p.Name, PID: s.PID, RSS: s.RSS, FDs: s.FDs, Goroutines: s.Goroutines})
				recMu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	// File rotation.
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(30 * time.Second):
				addFile()
			}
		}
	})
	// Concurrency: workers with an index at or above active idle.
	var active struct {
		sync.Mutex
		n int
	}
	active.n = 2
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(20 * time.Second):
				active.Lock()
				active.n = 1 + randN(4)
				active.Unlock()
			}
		}
	})
	// Chaos: SIGKILL a daemon (one time in six the tracker), restart it
	// after 1-5 s. No kills in the last 20 s, so the run ends healthy.
	// The first daemon is the witness: it is never killed, so one daemon
	// lifetime spans the whole run; the tracker is killed only in the
	// first half, so its last lifetime spans at least the second half. The
	// growth test needs such long lifetimes; the other daemons churn.
	chaosMin := min(max(dur/12, 10*time.Second), 20*time.Second)
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(between(chaosMin, 2*chaosMin)):
			}
			if dur-since() < 20*time.Second {
				continue
			}
			p := ds[1+randN(len(ds)-1)]
			if randN(6) == 0 && since() < dur/2 {
				p = tr
			}
			mu.Lock()
			down[p] = true
			epoch[p]++
			mu.Unlock()
			event("SIGKILL %s", p.Name)
			plock[p].Lock()
			p.Kill()
			plock[p].Unlock()
			time.Sleep(between(time.Second, 5*time.Second))
			plock[p].Lock()
			err := p.Restart()
			plock[p].Unlock()
			if err != nil {
				t.Errorf("restart %s: %v", p.Name, err)
				return
			}
			mu.Lock()
			down[p] = false
			mu.Unlock()
			event("restarted %s", p.Name)
		}
	})
	// Get workers.
	outDir2 := filepath.Join(e.dir, "soak-out")
	_ = os.MkdirAll(outDir2, 0o755)
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				active.Lock()
				idle := w >= active.n
				active.Unlock()
				if idle {
					select {
					case <-ctx.Done():
					case <-time.After(time.Second):
					}
					continue
				}
				mu.Lock()
				var up []*cluster.Proc
				for _, d := range ds {
					if !down[d] {
						up = append(up, d)
					}
				}
				if len(up) == 0 || len(files) == 0 {
					mu.Unlock()
					time.Sleep(time.Second)
					continue
				}
				d := up[randN(len(up))]
				f := files[randN(len(files))]
				url, ep := d.URL(), epoch[d]
				mu.Unlock()
				out := filepath.Join(outDir2, fmt.Sprintf("w%d-%d", w, i))
				t0 := since()
				// The get is not tied to ctx: one that started runs to
				// its end (at most its --timeout) and is judged.
				r := e.c.Get(context.Background(), e.origin.FileURL(f.Name), out, "--daemon", url, "--timeout", "3m")
				mu.Lock()
				killed := epoch[d] != ep
				mu.Unlock()
				result := "ok"
				switch {
				case r.ExitCode == 0:
					if got := sha256File(t, out); got != f.SHA256 {
						result = "WRONG-DATA"
						t.Errorf("get %s on %s: sha256 %s, want %s", f.Name, d.Name, got, f.SHA256)
					}
				case killed:
					result = "failed-daemon-killed"
				default:
					result = "FAILED"
					t.Errorf("get %s on %s failed (exit %d) although its daemon was not killed: %s", f.Name, d.Name, r.ExitCode, strings.TrimSpace(r.Stderr))
				}
				_ = os.Remove(out)
				time.Sleep(between(0, 300*time.Millisecond))
				recMu.Lock()
				switch result {
				case "ok":
					nOK++
				case "failed-daemon-killed":
					nExcuse++
				default:
					nFail++
				}
				gets = append(gets, []string{strconv.FormatFloat(t0.Seconds(), 'f', 1, 64), strconv.FormatFloat(since().Seconds(), 'f', 1, 64),
					d.Name, f.Name, strconv.FormatInt(f.Size, 10), strconv.Itoa(r.ExitCode), result, oneLineMsg(r.Stderr)})
				recMu.Unlock()
			}
		})
	}
	wg.Wait()

	// The end: every process up and healthy, and a fresh file reaches
	// every daemon intact.
	for _, p := range procs {
		if !p.Healthy() {
			t.Errorf("%s not healthy at the end", p.Name)
		}
	}
	last, err := e.origin.Generate("soak-final.bin", 5<<20, seed+999)
	if err != nil {
		t.Fatal(err)
	}
	fctx, fcancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer fcancel()
	for i, d := range ds {
		out := filepath.Join(outDir2, fmt.Sprintf("final-%d", i))
		if r := e.c.Get(fctx, e.origin.FileURL(last.Name), out, "--daemon", d.URL()); r.ExitCode != 0 {
			t.Errorf("final get on %s: exit %d: %s", d.Name, r.ExitCode, r.Stderr)
		} else if sha256File(t, out) != last.SHA256 {
			t.Errorf("final get on %s: wrong data", d.Name)
		}
	}

	// Records and the verdict.
	recMu.Lock()
	defer recMu.Unlock()
	if err := soak.WriteFile(filepath.Join(outDir, "samples.csv"), rows); err != nil {
		t.Error(err)
	}
	writeCSV(t, filepath.Join(outDir, "gets.csv"), append([][]string{{"start_s", "end_s", "daemon", "file", "bytes", "exit", "result", "error"}}, gets...))
	ev := [][]string{{"seconds", "event"}}
	for _, x := range events {
		ev = append(ev, []string{strconv.FormatFloat(x.At.Seconds(), 'f', 1, 64), x.What})
	}
	writeCSV(t, filepath.Join(outDir, "events.csv"), ev)
	var kills []soak.Event
	for _, x := range events {
		if strings.HasPrefix(x.What, "SIGKILL") {
			kills = append(kills, x)
		}
	}
	pngs, err := soak.Plot(outDir, rows, kills)
	if err != nil {
		t.Error(err)
	}
	warmup := min(60*time.Second, dur/4)
	verdicts := soak.Judge(rows, warmup, 9, soak.DefaultLimits)
	var sum strings.Builder
	fmt.Fprintf(&sum, "soak %s (seed %d): %d gets ok, %d failed with their daemon killed, %d failed otherwise or wrong; %d kills; %d files; %d samples every %s; warm-up %s\n",
		dur, seed, nOK, nExcuse, nFail, len(kills), nFiles, len(rows), sampleEvery, warmup)
	for _, g := range verdicts {
		fmt.Fprintln(&sum, g)
		if g.Unbounded {
			t.Errorf("unbounded growth: %s", g)
		}
	}
	fmt.Fprintf(&sum, "plots: %s\n", strings.Join(pngs, " "))
	_ = os.WriteFile(filepath.Join(outDir, "summary.txt"), []byte(sum.String()), 0o644)
	t.Log("\n" + sum.String())
	if nOK == 0 {
		t.Error("no get completed")
	}
}

func writeCSV(t *testing.T, path string, recs [][]string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	w := csv.NewWriter(f)
	_ = w.WriteAll(recs)
	if err := w.Error(); err != nil {
		t.Error(err)
	}
}

func oneLineMsg(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
