package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// PrometheusBin is the Prometheus server of the Debian package `prometheus`.
const PrometheusBin = "/usr/bin/prometheus"

// Prometheus is a real Prometheus server, on a free loopback port, scraping
// dfp2p processes' /metrics. Close stops it; its data lives under Dir.
type Prometheus struct {
	Addr    string // host:port of its HTTP API
	Dir     string
	LogPath string
	cmd     *exec.Cmd
	done    chan struct{}
	hc      *http.Client
}

// StartPrometheus starts Prometheus with its config, TSDB and log under dir,
// scraping each job's targets (host:port of an API serving /metrics) every
// interval. It returns once Prometheus answers /-/ready.
func StartPrometheus(dir string, jobs map[string][]string, interval time.Duration) (*Prometheus, error) {
	if _, err := os.Stat(PrometheusBin); err != nil {
		return nil, fmt.Errorf("prometheus not installed (make deps installs the Debian package): %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return nil, err
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\n  evaluation_interval: %s\nscrape_configs:\n",
		interval, interval, interval)
	names := make([]string, 0, len(jobs))
	for job := range jobs {
		names = append(names, job)
	}
	sort.Strings(names)
	for _, job := range names {
		q := make([]string, len(jobs[job]))
		for i, t := range jobs[job] {
			q[i] = strconv.Quote(t)
		}
		fmt.Fprintf(&cfg, "  - job_name: %q\n    metrics_path: /metrics\n    static_configs:\n      - targets: [%s]\n",
			job, strings.Join(q, ", "))
	}
	conf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(conf, []byte(cfg.String()), 0o600); err != nil {
		return nil, err
	}
	var err error
	for range 3 { // the free port may be taken between probe and bind
		var p *Prometheus
		if p, err = startPrometheus(dir, conf); err == nil {
			return p, nil
		}
	}
	return nil, err
}

func startPrometheus(dir, conf string) (*Prometheus, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	p := &Prometheus{Addr: addr, Dir: dir, LogPath: filepath.Join(dir, "prometheus.log"), done: make(chan struct{}),
		hc: &http.Client{Transport: &http.Transport{Proxy: nil}}}
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(PrometheusBin, "--config.file="+conf, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() {
		_ = p.cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return nil, fmt.Errorf("prometheus exited during start-up; log:\n%s", p.logTail())
		default:
		}
		if b, err := p.get(context.Background(), "/-/ready"); err == nil && strings.Contains(string(b), "Ready") {
			return p, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.Close()
	return nil, fmt.Errorf("prometheus not ready after 20s; log:\n%s", p.logTail())
}

// Close stops Prometheus (SIGTERM, then SIGKILL after 5 s) and waits for it.
func (p *Prometheus) Close() {
	if p == nil || p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.hc.CloseIdleConnections()
}

func (p *Prometheus) logTail() string {
	b, _ := os.ReadFile(p.LogPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// get GETs path from the API: at most 8 MiB, within 10 s.
func (p *Prometheus) get(ctx context.Context, path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.Addr+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return b, fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}

// PromSample is one series of an instant query's answer.
type PromSample struct {
	Metric map[string]string
	Value  float64
}

// apiAnswer is the envelope of Prometheus's HTTP API answers.
type apiAnswer struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Data      json.RawMessage `json:"data"`
}

// Query runs an instant query (/api/v1/query) and returns its samples: the
// series of a vector, or one sample for a scalar. An answer whose status is
// not "success" is an error.
func (p *Prometheus) Query(ctx context.Context, expr string) ([]PromSample, error) {
	b, err := p.get(ctx, "/api/v1/query?query="+url.QueryEscape(expr))
	var ans apiAnswer
	if jerr := json.Unmarshal(b, &ans); jerr != nil {
		return nil, errors.Join(err, fmt.Errorf("query %q: bad answer: %w", expr, jerr))
	}
	if ans.Status != "success" {
		return nil, fmt.Errorf("query %q: status %q: %s: %s", expr, ans.Status, ans.ErrorType, ans.Error)
	}
	if err != nil {
		return nil, err
	}
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(ans.Data, &data); err != nil {
		return nil, fmt.Errorf("query %q: %w", expr, err)
	}
	switch data.ResultType {
	case "vector":
		var vec []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(data.Result, &vec); err != nil {
			return nil, fmt.Errorf("query %q: %w", expr, err)
		}
		out := make([]PromSample, 0, len(vec))
		for _, s := range vec {
			v, err := sampleValue(s.Value)
			if err != nil {
				return nil, fmt.Errorf("query %q: %w", expr, err)
			}
			out = append(out, PromSample{Metric: s.Metric, Value: v})
		}
		return out, nil
	case "scalar":
		var s [2]any
		if err := json.Unmarshal(data.Result, &s); err != nil {
			return nil, fmt.Errorf("query %q: %w", expr, err)
		}
		v, err := sampleValue(s)
		if err != nil {
			return nil, fmt.Errorf("query %q: %w", expr, err)
		}
		return []PromSample{{Value: v}}, nil
	}
	return nil, fmt.Errorf("query %q: result type %q", expr, data.ResultType)
}

func sampleValue(v [2]any) (float64, error) {
	s, ok := v[1].(string)
	if !ok {
		return 0, fmt.Errorf("sample value %v is not a string", v[1])
	}
	return strconv.ParseFloat(s, 64) // also "NaN", "+Inf"
}

// MetricNames lists every metric name Prometheus holds series for
// (/api/v1/label/__name__/values).
func (p *Prometheus) MetricNames(ctx context.Context) ([]string, error) {
	b, err := p.get(ctx, "/api/v1/label/__name__/values")
	if err != nil {
		return nil, err
	}
	var ans struct {
		Status string   `json:"status"`
		Data   []string `json:"data"`
	}
	if err := json.Unmarshal(b, &ans); err != nil {
		return nil, err
	}
	if ans.Status != "success" {
		return nil, fmt.Errorf("label values: status %q", ans.Status)
	}
	return ans.Data, nil
}

// WaitFor polls expr until its first sample satisfies ok or ctx ends, and
// returns the last samples seen.
func (p *Prometheus) WaitFor(ctx context.Context, expr string, ok func(float64) bool) ([]PromSample, error) {
	for {
		s, err := p.Query(ctx, expr)
		if err == nil && len(s) > 0 && ok(s[0].Value) {
			return s, nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("query %q: condition not met (last answer %v)", expr, s)
			}
			return s, fmt.Errorf("%w: %w", ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// WaitScrapes waits until every target whose job matches the regex jobRE
// has been scraped n more times, so that series that appeared just now have
// the two samples rate() needs.
func (p *Prometheus) WaitScrapes(ctx context.Context, jobRE string, n int) error {
	expr := fmt.Sprintf(`min(timestamp(up{job=~%q}))`, jobRE)
	last := -1.0
	for i := 0; i <= n; i++ {
		s, err := p.WaitFor(ctx, expr, func(v float64) bool { return v > last })
		if err != nil {
			return err
		}
		last = s[0].Value
	}
	return nil
}
