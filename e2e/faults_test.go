package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/daemon"
	"github.com/dfp2p/dfp2p/e2e/cluster"
)

// The fault-injection suite (docs/RELIABILITY.md). Every scenario runs a
// small cluster of real processes, injects one kind of fault at points drawn
// from a seed, and asserts the same four things afterwards:
//
//  1. every download that succeeded is byte-identical to the origin (sha256),
//  2. no partial or wrong file (nor a temp file) exists at any -O path of a
//     download that failed,
//  3. no goroutine of the test process leaked,
//  4. every surviving daemon still answers /healthz and serves a fresh get.
//
// DFP2P_FAULT_SEED picks the seed (default defaultFaultSeed); the seed and
// every random choice are logged. With DFP2P_RELIABILITY_OUT set, one JSON
// line per scenario is appended to that file (scripts/reliability.sh turns
// them into the table in docs/RELIABILITY.md).

const defaultFaultSeed = 1

// faultScenarios run in this order, each on its own cluster.
var faultScenarios = []struct {
	name string
	run  func(r *faultRun)
}{
	{"peers-killed", scenarioPeersKilled},
	{"tracker-restart", scenarioTrackerRestart},
	{"seed-killed", scenarioSeedKilled},
	{"seed-lost", scenarioSeedLost},
	{"origin-faults", scenarioOriginFaults},
	{"byzantine-peers", scenarioByzantine},
	{"disk-full", scenarioDiskFull},
	{"daemon-restart", scenarioDaemonRestart},
}

func TestFaults(t *testing.T) {
	seed := uint64(defaultFaultSeed)
	if s := os.Getenv("DFP2P_FAULT_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("DFP2P_FAULT_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("fault seed %d (reproduce: DFP2P_FAULT_SEED=%d go test -count=1 -run 'TestFaults/NAME' -v ./e2e/)", seed, seed)
	for _, sc := range faultScenarios {
		t.Run(sc.name, func(t *testing.T) { runFaultScenario(t, sc.name, seed, sc.run) })
	}
}

// faultRun is one scenario's cluster, random source and bookkeeping.
type faultRun struct {
	*env
	name string
	seed uint64
	rng  *rand.Rand

	mu       sync.Mutex
	verified int64 // bytes of successful outputs checked against the origin
	lost     int   // successful gets whose output was wrong or missing
	failed   []string
	watched  []*cluster.Proc // daemons that must answer after the fault
}

func runFaultScenario(t *testing.T, name string, seed uint64, body func(*faultRun)) {
	h := fnv.New64a()
	h.Write([]byte(name))
	r := &faultRun{name: name, seed: seed, rng: rand.New(rand.NewPCG(seed, h.Sum64()))}
	start := time.Now()
	// Cleanups run last-in first-out: the cluster stops (newEnv's), then
	// the leak check runs, then the result is written.
	t.Cleanup(func() { r.writeResult(time.Since(start)) })
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		http.DefaultClient.CloseIdleConnections()
		if err := goleak.Find(ignore, goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
			goleak.IgnoreTopFunction("internal/poll.runtime_pollWait")); err != nil {
			t.Errorf("goroutine leak after %s: %v", name, err)
		}
	})
	r.env = newEnv(t)
	if keep := os.Getenv("DFP2P_FAULT_LOGS"); keep != "" {
		t.Cleanup(func() {
			keepLogs(t, filepath.Join(r.dir, "cluster"), filepath.Join(keep, fmt.Sprintf("%s-seed%d", name, seed)))
		})
	}
	body(r)
	if t.Failed() {
		return
	}
	r.checkSurvivors()
	r.checkNoTempFiles()
}

// choose logs a random choice and returns it.
func (r *faultRun) choose(what string, v any) {
	r.t.Logf("seed %d: %s = %v", r.seed, what, v)
}

// fraction draws a progress point in [lo, hi).
func (r *faultRun) fraction(what string, lo, hi float64) float64 {
	f := lo + r.rng.Float64()*(hi-lo)
	r.choose(what, fmt.Sprintf("%.3f", f))
	return f
}

// watch marks daemons that must still answer after the fault.
func (r *faultRun) watch(ds ...*cluster.Proc) { r.watched = append(r.watched, ds...) }

// expectOK checks a get that must have succeeded: exit 0 and the origin's
// bytes at out. A success with a wrong or missing output counts as data lost.
func (r *faultRun) expectOK(who string, res cluster.GetResult, out string, f cluster.File) {
	r.t.Helper()
	if res.ExitCode != 0 {
		r.t.Errorf("%s: get failed (exit %d): %s", who, res.ExitCode, strings.TrimSpace(res.Stderr))
		return
	}
	r.checkOutput(who, out, f)
}

// checkOutput verifies the output of a get that exited 0.
func (r *faultRun) checkOutput(who, out string, f cluster.File) {
	r.t.Helper()
	got := ""
	if _, err := os.Stat(out); err == nil {
		got = sha256File(r.t, out)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if got != f.SHA256 {
		r.lost++
		r.t.Errorf("DATA LOST: %s: get exited 0 but %s has sha256 %q, want %s", who, out, got, f.SHA256)
		return
	}
	r.verified += f.Size
}

// expectFailed checks a get that failed (or may have): one line on stderr
// and nothing at out. A get that succeeded anyway is checked like expectOK.
func (r *faultRun) expectFailed(who string, res cluster.GetResult, out string, f cluster.File) {
	r.t.Helper()
	if res.ExitCode == 0 {
		r.t.Logf("%s: get succeeded before the fault reached it", who)
		r.checkOutput(who, out, f)
		return
	}
	msg := strings.TrimSpace(res.Stderr)
	r.t.Logf("%s: get failed as expected (exit %d): %s", who, res.ExitCode, msg)
	if strings.Contains(msg, "\n") {
		r.t.Errorf("%s: failure is not one line: %q", who, msg)
	}
	noOutput(r.t, out)
}

// checkSurvivors: every watched daemon answers /healthz and serves a fresh
// small file.
func (r *faultRun) checkSurvivors() {
	r.t.Helper()
	if len(r.watched) == 0 {
		return
	}
	f := r.file("fresh-"+r.name+".bin", 1<<20+int64(len(r.name)))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, d := range r.watched {
		if _, status := httpGet(r.t, d.HTTPClient(), d.URL()+"/healthz"); status != http.StatusOK {
			r.t.Errorf("%s: /healthz answered %d after the fault", d.Name, status)
		}
	}
	prefix := "fresh-" + r.name + "-"
	for i, res := range r.startGets(ctx, r.origin.FileURL(f.Name), prefix, r.watched)() {
		r.expectOK(r.watched[i].Name+" fresh get", res, r.outPath(fmt.Sprintf("%s%d", prefix, i)), f)
	}
}

// checkNoTempFiles: no get left a temp file anywhere in the output dir.
func (r *faultRun) checkNoTempFiles() {
	left, _ := filepath.Glob(filepath.Join(r.dir, "out", ".*.dfp2p-*"))
	if len(left) > 0 {
		r.t.Errorf("temp files left behind: %v", left)
	}
}

// keepLogs copies the processes' logs to dst (DFP2P_FAULT_LOGS).
func keepLogs(t *testing.T, src, dst string) {
	logs, _ := filepath.Glob(filepath.Join(src, "*.log"))
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Log(err)
		return
	}
	for _, l := range logs {
		if b, err := os.ReadFile(l); err == nil {
			_ = os.WriteFile(filepath.Join(dst, filepath.Base(l)), b, 0o644)
		}
	}
	t.Logf("process logs kept in %s", dst)
}

// faultResult is the line written to DFP2P_RELIABILITY_OUT.
type faultResult struct {
	Scenario      string  `json:"scenario"`
	Seed          uint64  `json:"seed"`
	Outcome       string  `json:"outcome"`
	BytesVerified int64   `json:"bytes_verified"`
	DataLost      int     `json:"data_lost"`
	Seconds       float64 `json:"seconds"`
}

func (r *faultRun) writeResult(d time.Duration) {
	outcome := "pass"
	if r.t.Failed() {
		outcome = "fail"
	}
	res := faultResult{Scenario: r.name, Seed: r.seed, Outcome: outcome, BytesVerified: r.verified, DataLost: r.lost, Seconds: d.Round(100 * time.Millisecond).Seconds()}
	b, _ := json.Marshal(res)
	r.t.Logf("result: %s", b)
	path := os.Getenv("DFP2P_RELIABILITY_OUT")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		r.t.Errorf("results file: %v", err)
		return
	}
	defer f.Close()
	if _, err := f.Write(append(b, '\n')); err != nil {
		r.t.Errorf("results file: %v", err)
	}
}

// taskStatus asks a daemon about a task without failing the test when the
// daemon is gone (it may just have been killed).
func taskStatus(d *cluster.Proc, task content.TaskID) (daemon.TaskStatus, bool) {
	var st daemon.TaskStatus
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, d.URL()+"/api/v1/tasks/"+string(task), nil)
	resp, err := d.HTTPClient().Do(req)
	if err != nil {
		return st, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&st) != nil {
		return st, false
	}
	return st, st.Pieces > 0
}

func taskOf(t *testing.T, url string) content.TaskID {
	t.Helper()
	id, err := content.TaskIDFor(url, "", "", content.DefaultQueryFilter)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// waitHeld waits until d holds at least fraction of task's pieces (the kill
// point) and returns its status then.
func waitHeld(t *testing.T, d *cluster.Proc, task content.TaskID, fraction float64) daemon.TaskStatus {
	t.Helper()
	var st daemon.TaskStatus
	waitFor(t, 2*time.Minute, "the kill point", func() bool {
		var ok bool
		st, ok = taskStatus(d, task)
		return ok && float64(st.Held) >= fraction*float64(st.Pieces)
	})
	return st
}
