// Command sim runs the dfp2p testground plan locally: one process per
// instance, each in its own network namespace behind a router namespace,
// with an embedded testground sync service and a sidecar that applies the
// plan's link shapes (bandwidth with tc tbf; latency, jitter and loss are
// applied by the plan itself in user space, see DFP2P_SIM_USERSPACE_NET).
// It needs root, ip and tc. See docs/SIMULATIONS.md.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// scenario is one run's settings, shared by all systems.
type scenario struct {
	Case      string   `json:"case"`
	Systems   []string `json:"systems"`
	Leechers  int      `json:"leechers"`
	FileMiB   int      `json:"file_mib"`
	BwMbit    float64  `json:"bandwidth_mbit"`
	LatencyMs int      `json:"latency_ms"`
	JitterMs  int      `json:"jitter_ms"`
	LossPct   float64  `json:"loss_pct"`
	StaggerMs int      `json:"stagger_ms"`
	TimeoutS  int      `json:"timeout_s"`
	ChurnFrac float64  `json:"churn_fraction"`
	ChurnAtMs int      `json:"churn_at_ms"`
	ChurnDnMs int      `json:"churn_down_ms"`
	SeedUp    int      `json:"seed_uploads"`
	ParentUp  int      `json:"parent_uploads"`
	// cross-region
	Regions    int     `json:"regions,omitempty"`
	InterMbit  float64 `json:"inter_mbit,omitempty"`
	InterLatMs int     `json:"inter_latency_ms,omitempty"`
	// tracker-failover
	FailoverAtMs int `json:"failover_at_ms,omitempty"`
}

// instances is the instance count: one seed (one per region for
// cross-region) plus the leechers.
func (sc scenario) instances() int {
	if sc.Case == "cross-region" {
		return sc.Leechers + sc.Regions
	}
	return sc.Leechers + 1
}

// regionName names region r.
func regionName(r int) string {
	names := []string{"eu", "us", "ap", "sa", "af"}
	if r < len(names) {
		return names[r]
	}
	return fmt.Sprintf("r%d", r)
}

// slot is one instance's place in the composition.
type slot struct {
	group  string
	gcount int
	params map[string]string // per-group params
}

// layout lists the instances 1..n in order: for cross-region, per region
// its seed then its leechers (region 0's seed serves the origin).
func (sc scenario) layout() []slot {
	if sc.Case != "cross-region" {
		out := []slot{{group: "seeds", gcount: 1}}
		for i := 0; i < sc.Leechers; i++ {
			out = append(out, slot{group: "leechers", gcount: sc.Leechers})
		}
		return out
	}
	per := sc.Leechers / sc.Regions
	var out []slot
	for r := 0; r < sc.Regions; r++ {
		reg := regionName(r)
		out = append(out, slot{group: "seeds-" + reg, gcount: 1, params: map[string]string{"region": reg, "origin": fmt.Sprint(r == 0)}})
		for i := 0; i < per; i++ {
			out = append(out, slot{group: "leechers-" + reg, gcount: per, params: map[string]string{"region": reg}})
		}
	}
	return out
}

// innerJob is what the outer process hands the inner one (in the router
// namespace) for one system.
type innerJob struct {
	Scenario scenario `json:"scenario"`
	System   string   `json:"system"`
	Bin      string   `json:"bin"`
	OutDir   string   `json:"out_dir"`
	TmpDir   string   `json:"tmp_dir"`
	RunID    string   `json:"run_id"`
	Base     string   `json:"base"`
	Router   string   `json:"router"`
}

const innerEnv = "DFP2P_SIM_INNER"

func main() {
	if j := os.Getenv(innerEnv); j != "" {
		var job innerJob
		if err := json.Unmarshal([]byte(j), &job); err != nil {
			fatal(err)
		}
		if err := inner(job); err != nil {
			fatal(err)
		}
		return
	}
	var sc scenario
	var systems, out string
	flag.StringVar(&sc.Case, "case", "distribute", "test case: distribute, cold-start, churn, cross-region, tracker-failover")
	flag.StringVar(&systems, "systems", "dfp2p,http,bittorrent", "systems to compare, in order")
	flag.IntVar(&sc.Leechers, "leechers", 20, "leecher instances (plus one seed)")
	flag.IntVar(&sc.FileMiB, "file-mib", 64, "file size in MiB")
	flag.Float64Var(&sc.BwMbit, "bandwidth-mbit", 20, "per-peer link rate, both directions")
	flag.IntVar(&sc.LatencyMs, "latency-ms", 20, "egress latency per instance")
	flag.IntVar(&sc.JitterMs, "jitter-ms", 0, "egress jitter per instance")
	flag.Float64Var(&sc.LossPct, "loss-pct", 0, "egress loss per instance (%)")
	flag.IntVar(&sc.StaggerMs, "stagger-ms", 0, "leecher k starts k*stagger after the common start")
	flag.IntVar(&sc.TimeoutS, "timeout-s", 80, "per-system download timeout")
	flag.Float64Var(&sc.ChurnFrac, "churn-fraction", 0.25, "churn case: fraction of leechers killed and restarted")
	flag.IntVar(&sc.ChurnAtMs, "churn-at-ms", 10000, "churn case: when they are killed")
	flag.IntVar(&sc.ChurnDnMs, "churn-down-ms", 5000, "churn case: how long they stay down")
	flag.IntVar(&sc.SeedUp, "seed-uploads", 4, "dfp2p: tracker scheduler MaxSeedUploads (0: main module default, 32)")
	flag.IntVar(&sc.ParentUp, "parent-uploads", 4, "dfp2p: tracker scheduler MaxParentUploads (0: main module default, 8)")
	flag.IntVar(&sc.Regions, "regions", 3, "cross-region: regions (each: 1 tracker+seed, leechers/regions leechers)")
	flag.Float64Var(&sc.InterMbit, "inter-mbit", 10, "cross-region: link rate towards other regions' instances")
	flag.IntVar(&sc.InterLatMs, "inter-latency-ms", 80, "cross-region: egress latency towards other regions' instances")
	flag.IntVar(&sc.FailoverAtMs, "failover-at-ms", 0, "tracker-failover: close the task's owning tracker this long after the start (0: once half the leechers hold >= 25%)")
	flag.StringVar(&out, "out", "results", "results directory")
	flag.Parse()
	sc.Systems = strings.Split(systems, ",")
	if sc.Case == "cross-region" {
		if sc.Regions < 2 {
			fatal(fmt.Errorf("-regions must be at least 2"))
		}
		per := max(1, (sc.Leechers+sc.Regions-1)/sc.Regions)
		sc.Leechers = per * sc.Regions
	} else {
		sc.Regions, sc.InterMbit, sc.InterLatMs = 0, 0, 0
	}
	if sc.Case != "tracker-failover" {
		sc.FailoverAtMs = 0
	}
	if err := outer(sc, out); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "sim:", err)
	os.Exit(1)
}

func outer(sc scenario, out string) (err error) {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root (network namespaces and tc)")
	}
	for _, b := range []string{"ip", "tc", "unshare"} {
		if _, err := exec.LookPath(b); err != nil {
			return fmt.Errorf("%s not found (install iproute2/util-linux; make sim runs scripts/deps.sh)", b)
		}
	}
	runID := time.Now().UTC().Format("20060102-150405") + "-" + sc.Case
	runDir, _ := filepath.Abs(filepath.Join(out, runID))
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return err
	}
	bin := filepath.Join(runDir, "plan.bin")
	fmt.Printf("sim: building the plan -> %s\n", bin)
	b := exec.Command("go", "build", "-o", bin, ".")
	b.Stdout, b.Stderr = os.Stdout, os.Stderr
	if err := b.Run(); err != nil {
		return fmt.Errorf("building the plan: %w", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	sweep()
	tp, err := newTopo(sc.instances())
	defer tp.close() // every exit path, including a failed setup
	if err != nil {
		return fmt.Errorf("network setup: %w", err)
	}
	tmp, err := os.MkdirTemp("", "tgsim-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	self, _ := os.Executable()
	for _, sys := range sc.Systems {
		if ctx.Err() != nil {
			break
		}
		start := time.Now()
		fmt.Printf("sim: %s: %s, %d leechers + %d seed(s), %d MiB, %g Mbit/s, %d ms\n", sc.Case, sys, sc.Leechers, sc.instances()-sc.Leechers, sc.FileMiB, sc.BwMbit, sc.LatencyMs)
		job := innerJob{Scenario: sc, System: sys, Bin: bin, OutDir: filepath.Join(runDir, sys), TmpDir: filepath.Join(tmp, sys),
			RunID: runID + "-" + sys, Base: tp.base, Router: tp.router}
		js, _ := json.Marshal(job)
		c := exec.Command("ip", "netns", "exec", tp.router, self)
		c.Env = append(os.Environ(), innerEnv+"="+string(js))
		c.Stdout, c.Stderr = os.Stdout, os.Stderr
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := c.Start(); err != nil {
			return err
		}
		done := make(chan error, 1)
		go func() { done <- c.Wait() }()
		select {
		case err = <-done:
		case <-ctx.Done():
			syscall.Kill(-c.Process.Pid, syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
				<-done
			}
			err = ctx.Err()
		}
		fmt.Printf("sim: %s finished in %.1fs (%v)\n", sys, time.Since(start).Seconds(), err)
		os.RemoveAll(job.TmpDir)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted; namespaces removed")
	}
	sum, err := report(sc, runDir)
	if err != nil {
		return err
	}
	latest := filepath.Join(out, "latest")
	os.Remove(latest)
	if err := os.Symlink(runID, latest); err != nil {
		return err
	}
	fmt.Println(sum)
	fmt.Printf("sim: results in %s (and %s)\n", runDir, latest)
	return nil
}
