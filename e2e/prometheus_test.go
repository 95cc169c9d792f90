package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dfp2p/dfp2p/e2e/cluster"
)

// A real Prometheus scrapes a real tracker and two daemons while a file is
// downloaded twice (from the seed, then from the first daemon); the dfp2p
// series it stored from both jobs carry the download, and every query of the
// Grafana dashboard runs against it and names only metrics it scraped.
func TestPrometheusScrapesAndDashboard(t *testing.T) {
	if _, err := os.Stat(cluster.PrometheusBin); err != nil {
		t.Fatalf("%s missing: run `make deps` (Debian package prometheus)", cluster.PrometheusBin)
	}
	start := time.Now()
	e := newEnv(t)
	const size = 8 << 20
	f := e.file("scraped.bin", size)
	tr := e.tracker()
	ds := e.daemons(2, tr)

	const daemonJob, trackerJob = "dfp2p-daemon", "dfp2p-tracker"
	prom, err := cluster.StartPrometheus(filepath.Join(e.dir, "prometheus"), map[string][]string{
		trackerJob: {tr.API},
		daemonJob:  {ds[0].API, ds[1].API},
	}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		prom.Close()
		if t.Failed() {
			b, _ := os.ReadFile(prom.LogPath)
			t.Logf("==== prometheus.log\n%s", b)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	// All three targets are up (their APIs grant loopback `read` without a token).
	if _, err := prom.WaitFor(ctx, `sum(up{job=~"dfp2p-.*"})`, func(v float64) bool { return v == 3 }); err != nil {
		t.Fatalf("targets not up: %v", err)
	}

	for i, d := range ds {
		out := e.outPath(fmt.Sprintf("scraped%d", i))
		if r := e.c.Get(ctx, e.origin.FileURL(f.Name), out, "--daemon", d.URL()); r.ExitCode != 0 {
			t.Fatalf("get on %s: exit %d: %s", d.Name, r.ExitCode, r.Stderr)
		}
		if got := sha256File(t, out); got != f.SHA256 {
			t.Fatalf("%s: sha256 %s, want %s", d.Name, got, f.SHA256)
		}
	}
	if _, status := httpGet(t, http.DefaultClient, "http://"+ds[0].Proxy+"/healthz"); status != 200 {
		t.Fatalf("proxy healthz: %d", status)
	}

	// What Prometheus stored, from each job.
	for _, c := range []struct {
		expr string
		ok   func(float64) bool
		want string
	}{
		{`sum(dfp2p_download_bytes_total{job="dfp2p-daemon",source=~"seed|peer"})`, func(v float64) bool { return v == 2*size }, "the file twice, from the seed and the first daemon"},
		{`sum(dfp2p_download_bytes_total{job="dfp2p-daemon",source="peer"})`, func(v float64) bool { return v > 0 }, "> 0: the second daemon read from the first"},
		{`sum(dfp2p_upload_bytes_total{job="dfp2p-daemon"}) - sum(dfp2p_download_bytes_total{job="dfp2p-daemon",source="peer"})`, func(v float64) bool { return v == 0 }, "what the daemons served each other is what they got from peers"},
		{`sum(dfp2p_pieces_done_total{job="dfp2p-daemon"})`, func(v float64) bool { return v > 0 }, "> 0"},
		{`sum(dfp2p_cache_bytes{job="dfp2p-daemon"})`, func(v float64) bool { return v == 2*size }, "two copies"},
		{`dfp2p_proxy_requests_total{job="dfp2p-daemon",kind="other",outcome="ok"}`, func(v float64) bool { return v >= 1 }, ">= 1"},
		{`dfp2p_download_bytes_total{job="dfp2p-tracker",source="origin"}`, func(v float64) bool { return v == size }, "the file, once"},
		{`dfp2p_upload_bytes_total{job="dfp2p-tracker"} - scalar(sum(dfp2p_download_bytes_total{job="dfp2p-daemon",source="seed"}))`, func(v float64) bool { return v == 0 }, "what the seed served is what the daemons got from it"},
		{`dfp2p_tracker_schedule_seconds_count{job="dfp2p-tracker"}`, func(v float64) bool { return v > 0 }, "> 0"},
		{`sum(dfp2p_tracker_assignments_total{job="dfp2p-tracker",parent="peer"})`, func(v float64) bool { return v > 0 }, "> 0"},
		{`dfp2p_tracker_reported_pieces_total{job="dfp2p-tracker",outcome="done"}`, func(v float64) bool { return v > 0 }, "> 0"},
		{`dfp2p_tracker_tasks{job="dfp2p-tracker"}`, func(v float64) bool { return v == 1 }, "1"},
		{`dfp2p_cache_bytes{job="dfp2p-tracker"}`, func(v float64) bool { return v == size }, "the file"},
		{`min(dfp2p_libp2p_peers{job=~"dfp2p-.*"})`, func(v float64) bool { return v >= 1 }, ">= 1"},
	} {
		s, err := prom.WaitFor(ctx, c.expr, c.ok)
		if err != nil {
			t.Fatalf("%s: want %s: %v", c.expr, c.want, err)
		}
		t.Logf("%s = %v", c.expr, s[0].Value)
	}

	// The dashboard: every panel query runs and returns series, and every
	// dfp2p_ metric it names was scraped. Two more scrapes first: rate()
	// needs two samples of the series the download created.
	if err := prom.WaitScrapes(ctx, "dfp2p-.*", 2); err != nil {
		t.Fatal(err)
	}
	_, file, _, _ := runtime.Caller(0)
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "deploy", "grafana", "dfp2p-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []dashPanel `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	vars := strings.NewReplacer("$__rate_interval", "1m", "$__interval", "15s", "$__range", "5m",
		"$daemon_job", daemonJob, "$tracker_job", trackerJob, "$instance", ".*")
	queries := 0
	for _, p := range flattenPanels(dash.Panels) {
		if p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %q, want the ${datasource} variable", p.Title, p.Datasource.UID)
		}
		for _, tg := range p.Targets {
			expr := vars.Replace(tg.Expr)
			if strings.Contains(expr, "$") {
				t.Errorf("panel %q: unknown variable left in %q", p.Title, expr)
				continue
			}
			s, err := prom.Query(ctx, expr)
			if err != nil {
				t.Errorf("panel %q: %v", p.Title, err)
				continue
			}
			if len(s) == 0 {
				t.Errorf("panel %q: %s returned no series", p.Title, expr)
			}
			queries++
		}
	}
	if queries < 20 {
		t.Fatalf("only %d panel queries found in the dashboard", queries)
	}
	names, err := prom.MetricNames(ctx)
	if err != nil {
		t.Fatal(err)
	}
	used := regexp.MustCompile(`dfp2p_[a-z0-9_]+`).FindAllString(string(raw), -1)
	slices.Sort(used)
	used = slices.Compact(used)
	for _, n := range used {
		if !slices.Contains(names, n) {
			t.Errorf("dashboard names %s, which Prometheus did not scrape", n)
		}
	}
	t.Logf("%d dashboard queries ran; %d dfp2p metric names checked; %s in all", queries, len(used), time.Since(start).Round(time.Millisecond))
}

type dashPanel struct {
	Title      string `json:"title"`
	Datasource struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []dashPanel `json:"panels"` // a collapsed row's panels
}

func flattenPanels(ps []dashPanel) []dashPanel {
	var out []dashPanel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, flattenPanels(p.Panels)...)
	}
	return out
}
