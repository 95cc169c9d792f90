package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Build compiles the dfp2p binary into dir and returns its path. The module
// root is found from this source file's location.
func Build(dir string) (string, error) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	bin := filepath.Join(dir, "dfp2p")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/dfp2p")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}

// Cluster is a set of dfp2p processes sharing one binary and one temp dir.
type Cluster struct {
	Bin string
	Dir string
	// Log receives a line for each process event; nil discards.
	Log func(format string, args ...any)

	mu    sync.Mutex
	procs []*Proc
	n     int
	caKey string // the cluster CA key, from the first closed tracker
}

// New returns an empty cluster that runs bin with data under dir.
func New(bin, dir string) *Cluster { return &Cluster{Bin: bin, Dir: dir} }

// Proc is one running dfp2p process.
type Proc struct {
	Name    string
	Role    string
	DataDir string
	API     string   // host:port of its HTTP API
	Proxy   string   // host:port of a daemon's registry mirror, if it runs one
	Addrs   []string // full multiaddrs with /p2p/ID
	LogPath string
	// Site is the network namespace the process runs in (via `ip netns
	// exec`); nil means the host's. API and Proxy are then loopback
	// addresses inside the site: reach them with HTTPClient.
	Site    *Site
	args    []string
	bin     string
	cmd     *exec.Cmd
	done    chan struct{}
	exitErr error
}

func (c *Cluster) logf(format string, args ...any) {
	if c.Log != nil {
		c.Log(format, args...)
	}
}

// StartTracker starts a tracker on loopback.
func (c *Cluster) StartTracker(extra ...string) (*Proc, error) {
	return c.StartTrackerIn(nil, extra...)
}

// StartDaemon starts a daemon on loopback pointed at the given trackers, with
// its registry mirror on a free port (Proc.Proxy).
func (c *Cluster) StartDaemon(trackers []*Proc, extra ...string) (*Proc, error) {
	return c.StartDaemonIn(nil, trackers, extra...)
}

// StartTrackerIn starts a tracker inside site s (nil: on the host's
// loopback). Its libp2p addresses are on the site's IP; its API listens on
// 127.0.0.1 inside the site.
//
// Trackers run closed clusters (the default): the first one creates the
// cluster CA, later ones share it (--ca), as the trackers of a group or of
// several regions of one cluster do. Pass "--open" for an open cluster.
func (c *Cluster) StartTrackerIn(s *Site, extra ...string) (*Proc, error) {
	args := []string{"--listen", listenAddrs(s)}
	c.mu.Lock()
	ca := c.caKey
	c.mu.Unlock()
	if ca != "" && !slices.Contains(extra, "--open") {
		args = append(args, "--ca", ca)
	}
	p, err := c.start(s, "tracker", append(args, extra...))
	if err != nil {
		return nil, err
	}
	if key := filepath.Join(p.DataDir, "cluster-ca.key"); ca == "" && fileExists(key) {
		c.mu.Lock()
		c.caKey = key
		c.mu.Unlock()
	}
	return p, nil
}

// JoinToken is a closed cluster tracker's join line ("" for an open one).
func (p *Proc) JoinToken() string {
	b, err := os.ReadFile(filepath.Join(p.DataDir, "join-token"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// StartDaemonIn starts a daemon inside site s (nil: on the host's loopback)
// pointed at the given trackers, with its registry mirror on a free port
// (Proc.Proxy) on 127.0.0.1 inside the site.
func (c *Cluster) StartDaemonIn(s *Site, trackers []*Proc, extra ...string) (*Proc, error) {
	args := []string{"--listen", listenAddrs(s), "--proxy", "127.0.0.1:0"}
	for i, t := range trackers {
		// A closed cluster's first tracker is joined through its token;
		// the token names it, so it is not repeated as --tracker.
		if tok := t.JoinToken(); i == 0 && tok != "" {
			args = append(args, "--join", tok)
			continue
		}
		args = append(args, "--tracker", t.Addrs[0])
	}
	return c.start(s, "daemon", append(args, extra...))
}

func listenAddrs(s *Site) string {
	ip := "127.0.0.1"
	if s != nil {
		ip = s.IP
	}
	return fmt.Sprintf("/ip4/%s/udp/0/quic-v1,/ip4/%s/tcp/0", ip, ip)
}

func (c *Cluster) start(site *Site, role string, args []string) (*Proc, error) {
	return c.startBin(c.Bin, site, role, args)
}

// startBin starts bin ROLE --data-dir DIR --api 127.0.0.1:0 ARGS... and waits
// for it to be ready (DIR/addrs, DIR/api, /healthz).
func (c *Cluster) startBin(bin string, site *Site, role string, args []string) (*Proc, error) {
	c.mu.Lock()
	c.n++
	name := fmt.Sprintf("%s%d", role, c.n)
	c.mu.Unlock()
	dir := filepath.Join(c.Dir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := &Proc{Name: name, Role: role, DataDir: dir, LogPath: filepath.Join(c.Dir, name+".log"), bin: bin, Site: site,
		args: append([]string{role, "--data-dir", dir, "--api", "127.0.0.1:0"}, args...)}
	if err := p.run(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	where := ""
	if site != nil {
		where = " in site " + site.Name
	}
	c.logf("started %s%s: %s api=%s", name, where, p.Addrs[0], p.API)
	return p, nil
}

func (p *Proc) run() error {
	_ = os.Remove(filepath.Join(p.DataDir, "addrs"))
	_ = os.Remove(filepath.Join(p.DataDir, "api"))
	_ = os.Remove(filepath.Join(p.DataDir, "proxy"))
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := p.Site.command(context.Background(), p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING=true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func() {
		p.exitErr = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p.waitReady(30 * time.Second)
}

// waitReady waits for DIR/addrs, DIR/api and a 200 from /healthz.
func (p *Proc) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited during start-up (%v); log:\n%s", p.Name, p.exitErr, p.Tail(40))
		default:
		}
		addrs, err1 := os.ReadFile(filepath.Join(p.DataDir, "addrs"))
		api, err2 := os.ReadFile(filepath.Join(p.DataDir, "api"))
		if err1 == nil && err2 == nil {
			p.Addrs = strings.Fields(string(addrs))
			p.API = strings.TrimSpace(string(api))
			if len(p.Addrs) > 0 && healthy(p.HTTPClient(), p.API) {
				if b, err := os.ReadFile(filepath.Join(p.DataDir, "proxy")); err == nil {
					p.Proxy = strings.TrimSpace(string(b))
				}
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.Kill()
	return fmt.Errorf("%s not ready after %s; log:\n%s", p.Name, timeout, p.Tail(40))
}

func healthy(c *http.Client, api string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+api+"/healthz", nil)
	if err != nil {
		return false
	}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// URL is the process's API base URL. For a process in a site, only that
// site's HTTPClient reaches it.
func (p *Proc) URL() string { return "http://" + p.API }

// HTTPClient is the client that reaches the process's API and proxy: its
// site's (Site.HTTPClient) or, on the host, http.DefaultClient.
func (p *Proc) HTTPClient() *http.Client {
	if p.Site != nil {
		return p.Site.HTTPClient()
	}
	return http.DefaultClient
}

// Kill sends SIGKILL and waits for the process to end.
func (p *Proc) Kill() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM and waits up to 10 s, then kills.
func (p *Proc) Stop() error {
	if p.cmd == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		var ee *exec.ExitError
		if errors.As(p.exitErr, &ee) && ee.ExitCode() == -1 {
			return nil // already killed
		}
		return p.exitErr
	case <-time.After(10 * time.Second):
		p.Kill()
		return fmt.Errorf("%s did not stop within 10s", p.Name)
	}
}

// Restart starts the process again with the same data dir and arguments.
func (p *Proc) Restart() error {
	p.Kill()
	return p.run()
}

// PeakRSS is the process's peak resident set size in bytes (VmHWM), or 0.
func (p *Proc) PeakRSS() int64 {
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kb)
			return kb << 10
		}
	}
	return 0
}

// Alive reports whether the process is running.
func (p *Proc) Alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Tail returns the last n lines of the process's log.
func (p *Proc) Tail(n int) string {
	b, _ := os.ReadFile(p.LogPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Close kills every process. Temp dirs are the caller's.
func (c *Cluster) Close() {
	c.mu.Lock()
	procs := c.procs
	c.procs = nil
	c.mu.Unlock()
	for _, p := range procs {
		p.Kill()
	}
}

// GetResult is the outcome of one `dfp2p get`.
type GetResult struct {
	ExitCode int
	Stderr   string
	Elapsed  time.Duration
}

// Get runs `dfp2p get URL -O out` with extra arguments and returns its exit
// code and stderr.
func (c *Cluster) Get(ctx context.Context, url, out string, extra ...string) GetResult {
	return c.GetIn(ctx, nil, url, out, extra...)
}

// GetIn is Get run inside site s (nil: on the host), so that `--daemon
// d.URL()` reaches a daemon d of that site.
func (c *Cluster) GetIn(ctx context.Context, s *Site, url, out string, extra ...string) GetResult {
	args := append([]string{"get", url, "-O", out, "--no-progress"}, extra...)
	cmd := s.command(ctx, c.Bin, args...)
	cmd.Env = append(os.Environ(), "QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING=true")
	r := RunCommand(cmd)
	return GetResult{ExitCode: r.ExitCode, Stderr: r.Stderr, Elapsed: r.Elapsed}
}
