package cluster

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Sample is one measurement of a running process's resources.
type Sample struct {
	Time       time.Time
	PID        int
	RSS        int64 // resident set size, bytes (VmRSS)
	FDs        int   // open file descriptors (/proc/PID/fd)
	Goroutines int   // go_goroutines from the process's /metrics
}

// PID is the process's id, or 0 when it is not running.
func (p *Proc) PID() int {
	if p.cmd == nil || p.cmd.Process == nil || !p.Alive() {
		return 0
	}
	return p.cmd.Process.Pid
}

// Sample measures the process's RSS and open file descriptors from /proc
// and its goroutines from /metrics (read scope, which loopback callers
// have without a token).
func (p *Proc) Sample(ctx context.Context) (Sample, error) {
	s := Sample{Time: time.Now(), PID: p.PID()}
	if s.PID == 0 {
		return s, fmt.Errorf("%s is not running", p.Name)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.PID))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kb)
			s.RSS = kb << 10
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", s.PID))
	if err != nil {
		return s, err
	}
	s.FDs = len(fds)
	g, err := p.Goroutines(ctx)
	if err != nil {
		return s, err
	}
	s.Goroutines = g
	return s, nil
}

// Goroutines reads go_goroutines from the process's /metrics.
func (p *Proc) Goroutines(ctx context.Context) (int, error) {
	v, err := p.Metric(ctx, "go_goroutines")
	return int(v), err
}

// Metric reads one unlabelled series (or the exact labelled series, when
// name includes its labels) from the process's /metrics.
func (p *Proc) Metric(ctx context.Context, name string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL()+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := p.HTTPClient().Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s /metrics: %s", p.Name, resp.Status)
	}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 8<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("%s /metrics has no %s", p.Name, name)
}

// Healthy reports whether the process answers /healthz with 200 within a
// second.
func (p *Proc) Healthy() bool { return p.Alive() && healthy(p.HTTPClient(), p.API) }

// WaitGoroutines waits up to timeout for the process's goroutine count to
// come down to at most max, and returns the last count seen.
func (p *Proc) WaitGoroutines(ctx context.Context, max int, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		g, err := p.Goroutines(ctx)
		if err == nil && g <= max {
			return g, nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("%s: %d goroutines after %s, want at most %d", p.Name, g, timeout, max)
			}
			return g, err
		}
		select {
		case <-ctx.Done():
			return g, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
