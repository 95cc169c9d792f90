package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dfp2p/dfp2p/e2e/cluster"
	"github.com/dfp2p/dfp2p/internal/httpapi"
)

// limitsCLI runs `dfp2p limits ARGS...` and returns its stdout, stderr
// and exit code.
func limitsCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"limits"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("dfp2p limits: %v", err)
	}
	return out.String(), errb.String(), code
}

// localToken is a process's own admin token (DIR/api-token).
func localToken(t *testing.T, p *cluster.Proc) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(p.DataDir, httpapi.LocalTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// setLimits changes a process's limits with the CLI and checks its answer.
func setLimits(t *testing.T, p *cluster.Proc, target string, sets ...string) {
	t.Helper()
	args := []string{target, p.URL(), "--token", localToken(t, p)}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	out, errOut, code := limitsCLI(t, args...)
	if code != 0 {
		t.Fatalf("dfp2p limits %v: exit %d: %s", sets, code, errOut)
	}
	t.Logf("%s limits now:\n%s", p.Name, out)
}

// timedGet downloads a fresh file of size bytes through daemon d and
// returns how long `dfp2p get` took.
func (e *env) timedGet(d *cluster.Proc, name string, size int64) time.Duration {
	e.t.Helper()
	f := e.file(name, size)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out := e.outPath(name)
	r := e.c.Get(ctx, e.origin.FileURL(f.Name), out, "--daemon", d.URL())
	if r.ExitCode != 0 {
		e.t.Fatalf("get %s: exit %d: %s", name, r.ExitCode, r.Stderr)
	}
	if got := sha256File(e.t, out); got != f.SHA256 {
		e.t.Fatalf("%s: sha256 %s, want %s", name, got, f.SHA256)
	}
	e.t.Logf("get %s (%d MiB): %s", name, size>>20, r.Elapsed)
	return r.Elapsed
}

// limitedRate measures the rate a limit lets through: two downloads of
// small and big bytes take the same fixed time (registration, the seed's
// start, verification) besides their transfer, so the difference of their
// times is the transfer of big-small bytes.
func (e *env) limitedRate(d *cluster.Proc, prefix string, small, big int64) float64 {
	e.t.Helper()
	ts := e.timedGet(d, prefix+"-small.bin", small)
	tb := e.timedGet(d, prefix+"-big.bin", big)
	rate := float64(big-small) / (tb - ts).Seconds()
	e.t.Logf("%s: (%d-%d) MiB in %s-%s: %.2f MiB/s; the big file alone %.2f MiB/s", prefix, big>>20, small>>20,
		tb.Round(time.Millisecond), ts.Round(time.Millisecond), rate/(1<<20), float64(big)/tb.Seconds()/(1<<20))
	return rate
}

func checkRate(t *testing.T, what string, got, limit float64) {
	t.Helper()
	dev := (got - limit) / limit
	t.Logf("%s: %.2f MiB/s against a limit of %.2f MiB/s (%+.1f%%)", what, got/(1<<20), limit/(1<<20), 100*dev)
	if dev < -0.10 || dev > 0.10 {
		t.Errorf("%s: %.2f MiB/s, want %.2f MiB/s ±10%%", what, got/(1<<20), limit/(1<<20))
	}
}

// A daemon's download limit, set at run time through its API with `dfp2p
// limits`, holds a download to the limit within 10%; lifting it makes the
// same download several times faster.
func TestRateLimitDaemonDownload(t *testing.T) {
	e := newEnv(t)
	tr := e.tracker()
	d, err := e.c.StartDaemon([]*cluster.Proc{tr}, "--max-concurrent-pieces", "64") // one batch per file: see below
	if err != nil {
		t.Fatal(err)
	}
	const limit = 10 << 20

	// Changing limits needs the admin scope; reading them does not (loopback).
	if _, errOut, code := limitsCLI(t, "--daemon", d.URL(), "--set", "download=10MiB"); code != 1 || !strings.Contains(errOut, "401") {
		t.Fatalf("set without a token: exit %d, %q; want exit 1 with a 401", code, errOut)
	}
	setLimits(t, d, "--daemon", "download=10MiB")
	out, _, code := limitsCLI(t, "--daemon", d.URL())
	if code != 0 || !strings.Contains(out, "download  10MiB/s (10485760 B/s)") || !strings.Contains(out, "upload    unlimited") {
		t.Fatalf("limits: exit %d:\n%s", code, out)
	}
	if g := metric(t, d, `dfp2p_rate_limit_bytes_per_second{direction="download"}`); g != limit {
		t.Errorf("rate gauge %v, want %d", g, limit)
	}

	checkRate(t, "daemon download", e.limitedRate(d, "dl", 16<<20, 80<<20), limit)

	setLimits(t, d, "--daemon", "download=0")
	unlimited := e.timedGet(d, "dl-unlimited.bin", 80<<20)
	limited := time.Duration(float64(80<<20) / limit * float64(time.Second))
	t.Logf("80 MiB unlimited: %s (%.0f MiB/s with overheads), %.1fx faster than the limit allows", unlimited,
		80/unlimited.Seconds(), limited.Seconds()/unlimited.Seconds())
	if unlimited > limited/3 {
		t.Errorf("without the limit 80 MiB took %s: the limit cannot be told from the machine's own speed", unlimited)
	}
}

// A tracker's seed honours --limit-origin (origin reads, measured at the
// origin too) and, set at run time, its upload limit (pieces served to a
// daemon).
func TestRateLimitSeedOriginAndUpload(t *testing.T) {
	e := newEnv(t)
	tr, err := e.c.StartTracker("--limit-origin", "8MiB")
	if err != nil {
		t.Fatal(err)
	}
	// Enough pieces in flight to fetch each file in one batch: between
	// batches the daemon asks the tracker again, an idle gap a limit
	// cannot make up for (its burst is 50 ms of traffic).
	d, err := e.c.StartDaemon([]*cluster.Proc{tr}, "--max-concurrent-pieces", "64")
	if err != nil {
		t.Fatal(err)
	}
	out, _, code := limitsCLI(t, "--tracker-api", tr.URL())
	if code != 0 || !strings.Contains(out, "origin    8MiB/s") {
		t.Fatalf("tracker limits: exit %d:\n%s", code, out)
	}

	// Origin: the seed reads at 8 MiB/s. Besides the two timed downloads,
	// sample the origin's byte counter during the big one.
	const originLimit = 8 << 20
	ts := e.timedGet(d, "origin-small.bin", 8<<20)
	type sample struct {
		at time.Time
		n  int64
	}
	var samples []sample
	stop := make(chan struct{})
	sampled := make(chan struct{})
	base := e.origin.BytesSent()
	go func() {
		defer close(sampled)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			samples = append(samples, sample{time.Now(), e.origin.BytesSent() - base})
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	tb := e.timedGet(d, "origin-big.bin", 56<<20)
	close(stop)
	<-sampled
	checkRate(t, "seed origin reads (two downloads)", float64(48<<20)/(tb-ts).Seconds(), originLimit)
	// Cross-check with the origin's own counter, from its first to its last
	// byte of the big file: nothing reads around the limiter. The origin
	// finishes early by what the parallel ranges' socket buffers hold (a few
	// MiB on loopback, ~0.5 s at 8 MiB/s), so this side gets 25%; the
	// limiter itself is held to 10% above, where the seed reads.
	var first, last *sample
	for i := range samples {
		if first == nil && samples[i].n > 0 {
			first = &samples[i]
		}
		if last == nil && samples[i].n >= 56<<20 {
			last = &samples[i]
		}
	}
	if first == nil || last == nil || last == first {
		t.Fatalf("origin counter never reached the file's size: %d samples", len(samples))
	}
	got, lim := float64(last.n-first.n)/last.at.Sub(first.at).Seconds(), float64(originLimit)
	t.Logf("origin byte counter: %.2f MiB/s against a limit of %.2f MiB/s (%+.1f%%)", got/(1<<20), lim/(1<<20), 100*(got-lim)/lim)
	if got > 1.25*lim || got < 0.9*lim {
		t.Errorf("origin byte counter: %.2f MiB/s, want %.2f MiB/s -10%%/+25%%", got/(1<<20), lim/(1<<20))
	}

	// Upload: lift the origin limit and hold the seed's uploads to 12 MiB/s.
	setLimits(t, tr, "--tracker-api", "origin=0", "upload=12MiB")
	checkRate(t, "seed uploads", e.limitedRate(d, "up", 16<<20, 80<<20), 12<<20)
}
