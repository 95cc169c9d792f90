package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dfp2p/dfp2p/crypto"
	"github.com/dfp2p/dfp2p/daemon"
	"github.com/dfp2p/dfp2p/node"
	"github.com/dfp2p/dfp2p/tracker"
	"github.com/dfp2p/dfp2p/tracker/scheduler"
)

// leech is one system's download side.
type leech interface {
	fetch(ctx context.Context, churn bool, p params, res *result) (sum string, n int64, err error)
	counters() (origin, seed, peer int64)
	close()
}

func newLeech(ctx context.Context, p params, dir string, ip net.IP, us shape, info *seedInfo) (leech, error) {
	switch p.System {
	case "dfp2p":
		tok, err := crypto.ParseJoinToken(info.JoinToken)
		if err != nil {
			return nil, err
		}
		l := &dfpLeech{dir: filepath.Join(dir, "daemon"), ip: ip, us: us, tok: tok, url: info.OriginURL, region: p.Region, zone: p.Zone,
			trackers: info.Trackers, dht: len(info.Trackers) > 1}
		if err := l.start(); err != nil {
			return nil, err
		}
		return l, nil
	case "http":
		return &httpLeech{url: info.OriginURL}, nil
	case "bittorrent":
		return startBTLeech(ctx, dir, info)
	}
	return nil, fmt.Errorf("unknown system %q", p.System)
}

// ---- dfp2p

// trackerConfig is the tracker configuration every case starts from.
func trackerConfig(dir string, ip net.IP, port int, us shape, p params) tracker.Config {
	sc := scheduler.Config{}
	if p.SeedUploads > 0 || p.ParentUploads > 0 {
		sc = scheduler.DefaultConfig()
		if p.SeedUploads > 0 {
			sc.MaxSeedUploads = p.SeedUploads
		}
		if p.ParentUploads > 0 {
			sc.MaxParentUploads = p.ParentUploads
		}
	}
	return tracker.Config{
		Scheduler:   sc,
		DataDir:     dir,
		Listen:      []string{fmt.Sprintf("/ip4/%s/udp/%d/quic-v1", ip, port)},
		NoDHT:       true,
		GCInterval:  -1,
		Region:      p.Region,
		Logger:      slog.Default(),
		NodeOptions: []node.Option{node.WithListenUDP(listenUDP(us))},
	}
}

func startTracker(_ context.Context, dir string, ip net.IP, us shape, p params) (string, func(), error) {
	t, err := tracker.New(trackerConfig(filepath.Join(dir, "tracker"), ip, 4010, us, p))
	if err != nil {
		return "", nil, err
	}
	tok := t.JoinToken()
	if tok == "" {
		t.Close()
		return "", nil, errors.New("tracker gave no join token (open cluster?)")
	}
	return tok, func() { t.Close() }, nil
}

type dfpLeech struct {
	dir, url, region, zone string
	trackers               []string // extra trackers (a group: failover)
	dht                    bool
	ip                     net.IP
	us                     shape
	tok                    *crypto.JoinToken

	mu    sync.Mutex
	d     *daemon.Daemon
	st    *daemon.Stream
	prior daemon.Stats // counters of streams before a restart
}

func (l *dfpLeech) start() error {
	d, err := daemon.New(daemon.Config{
		DataDir:     l.dir,
		Listen:      []string{fmt.Sprintf("/ip4/%s/udp/0/quic-v1", l.ip)},
		Join:        l.tok,
		Trackers:    l.trackers,
		NoDHT:       !l.dht,
		GCInterval:  -1,
		Region:      l.region,
		Zone:        l.zone,
		NoAddrsFile: true,
		Logger:      slog.Default(),
		NodeOptions: []node.Option{node.WithListenUDP(listenUDP(l.us))},
	})
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.d = d
	l.mu.Unlock()
	return nil
}

func (l *dfpLeech) counters() (int64, int64, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.prior
	if l.st != nil {
		c := l.st.Stats()
		s.OriginBytes += c.OriginBytes
		s.SeedBytes += c.SeedBytes
		s.PeerBytes += c.PeerBytes
	}
	return s.OriginBytes, s.SeedBytes, s.PeerBytes
}

func (l *dfpLeech) fetch(ctx context.Context, churn bool, p params, res *result) (string, int64, error) {
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithCancel(ctx)
		killed := make(chan struct{})
		if churn && attempt == 0 {
			// Kill this peer mid-transfer: close the daemon (its host and
			// streams go away), then restart it on the same data dir.
			go func() {
				select {
				case <-time.After(p.ChurnAt):
					close(killed)
					cancel()
					l.mu.Lock()
					d := l.d
					l.mu.Unlock()
					d.Close()
				case <-actx.Done():
				}
			}()
		}
		st, err := l.d.Open(actx, daemon.Request{URL: l.url})
		var sum string
		var n int64
		if err == nil {
			l.mu.Lock()
			l.st = st
			l.mu.Unlock()
			sum, n, err = hashCopy(st, nil)
			st.Close()
		}
		select {
		case <-killed:
			l.mu.Lock()
			if l.st != nil {
				c := l.st.Stats()
				l.prior.OriginBytes += c.OriginBytes
				l.prior.SeedBytes += c.SeedBytes
				l.prior.PeerBytes += c.PeerBytes
				l.st = nil
			}
			l.mu.Unlock()
			cancel()
			res.Restarts++
			select {
			case <-time.After(p.ChurnDown):
			case <-ctx.Done():
				return "", n, ctx.Err()
			}
			if err := l.start(); err != nil {
				return "", n, fmt.Errorf("restart: %w", err)
			}
			continue
		default:
		}
		cancel()
		return sum, n, err
	}
}

func (l *dfpLeech) close() {
	l.mu.Lock()
	d := l.d
	l.mu.Unlock()
	if d != nil {
		d.Close()
	}
}

// ---- http: every leecher reads the origin

type httpLeech struct {
	url string
	n   atomic.Int64
}

func (l *httpLeech) fetch(ctx context.Context, _ bool, _ params, _ *result) (string, int64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, l.url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", 0, fmt.Errorf("origin: %s", resp.Status)
	}
	return hashCopy(resp.Body, &l.n)
}

func (l *httpLeech) counters() (int64, int64, int64) { return l.n.Load(), 0, 0 }
func (l *httpLeech) close()                          {}

// ---- bittorrent: mktorrent + opentracker + aria2c

// logDir is where helper processes log (the instance's outputs dir, so the
// runner keeps the logs).
var logDir string

func command(ctx context.Context, dir, name string, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, name, args...)
	c.Dir = dir
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	ld := logDir
	if ld == "" {
		ld = dir
	}
	if f, err := os.OpenFile(filepath.Join(ld, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
		c.Stdout, c.Stderr = f, f
	}
	return c
}

func aria2Args(dir string) []string {
	return []string{"-d", dir, "--enable-rpc", "--rpc-listen-port=6800",
		"--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=false",
		"--seed-ratio=0.0", "--file-allocation=none", "--bt-max-peers=60", "--listen-port=6881-6889",
		"--summary-interval=0", "--console-log-level=warn", "--bt-tracker-interval=5", "--bt-save-metadata=false",
		"--bt-request-peer-speed-limit=100M", "--max-overall-upload-limit=0", "--disable-ipv6=true"}
}

func startBTSeed(ctx context.Context, dir string, ip net.IP, data []byte) ([]byte, func(), error) {
	bt := filepath.Join(dir, "bt")
	os.MkdirAll(bt, 0o755)
	if err := os.WriteFile(filepath.Join(bt, "file.bin"), data, 0o644); err != nil {
		return nil, nil, err
	}
	ann := fmt.Sprintf("http://%s:6969/announce", ip)
	if out, err := exec.Command("mktorrent", "-a", ann, "-l", "20", "-o", filepath.Join(bt, "file.torrent"), filepath.Join(bt, "file.bin")).CombinedOutput(); err != nil {
		return nil, nil, fmt.Errorf("mktorrent: %v: %s", err, out)
	}
	tor, err := os.ReadFile(filepath.Join(bt, "file.torrent"))
	if err != nil {
		return nil, nil, err
	}
	// Debian's opentracker is built with a whitelist: list our info hash.
	show, err := exec.Command("aria2c", "-S", filepath.Join(bt, "file.torrent")).Output()
	if err != nil {
		return nil, nil, fmt.Errorf("aria2c -S: %w", err)
	}
	var ih string
	for _, ln := range strings.Split(string(show), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(ln), "Info Hash: "); ok {
			ih = strings.TrimSpace(v)
		}
	}
	if len(ih) != 40 {
		return nil, nil, fmt.Errorf("no info hash in aria2c -S output")
	}
	if err := os.WriteFile(filepath.Join(bt, "whitelist"), []byte(ih+"\n"), 0o644); err != nil {
		return nil, nil, err
	}
	cctx, cancel := context.WithCancel(ctx)
	// -u nobody: opentracker refuses to keep root privileges; -d chroots to
	// bt, so the whitelist path is relative to it.
	ot := command(cctx, bt, "opentracker", "-i", ip.String(), "-p", "6969", "-P", "6969", "-d", bt, "-u", "nobody", "-w", "whitelist")
	if err := ot.Start(); err != nil {
		cancel()
		return nil, nil, fmt.Errorf("opentracker: %w", err)
	}
	ar := command(cctx, bt, "aria2c", append(aria2Args(bt), "--bt-seed-unverified=true", "--check-integrity=false", "file.torrent")...)
	if err := ar.Start(); err != nil {
		cancel()
		ot.Wait()
		return nil, nil, fmt.Errorf("aria2c: %w", err)
	}
	return tor, func() { cancel(); ar.Wait(); ot.Wait() }, nil
}

type btLeech struct {
	dir    string
	cancel context.CancelFunc
	cmd    *exec.Cmd
	done   atomic.Int64
}

func startBTLeech(ctx context.Context, dir string, info *seedInfo) (leech, error) {
	bt := filepath.Join(dir, "bt")
	os.MkdirAll(bt, 0o755)
	if err := os.WriteFile(filepath.Join(bt, "file.torrent"), info.Torrent, 0o644); err != nil {
		return nil, err
	}
	return &btLeech{dir: bt}, nil
}

func (l *btLeech) fetch(ctx context.Context, _ bool, _ params, _ *result) (string, int64, error) {
	cctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	l.cmd = command(cctx, l.dir, "aria2c", append(aria2Args(l.dir), "file.torrent")...)
	if err := l.cmd.Start(); err != nil {
		return "", 0, err
	}
	tk := time.NewTicker(250 * time.Millisecond)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return "", l.done.Load(), ctx.Err()
		case <-tk.C:
		}
		done, total, status, err := aria2Status()
		if err != nil {
			continue
		}
		l.done.Store(done)
		// aria2c keeps its control file while seeding: "seeder" is its own
		// word that every piece is held and verified.
		if total > 0 && done == total && status == "true" {
			f, err := os.Open(filepath.Join(l.dir, "file.bin"))
			if err != nil {
				return "", done, err
			}
			defer f.Close()
			return hashCopy(f, nil)
		}
	}
}

// aria2Status returns the active download's progress and its "seeder" flag.
func aria2Status() (done, total int64, status string, err error) {
	body := []byte(`{"jsonrpc":"2.0","id":"1","method":"aria2.tellActive","params":[["completedLength","totalLength","status","seeder"]]}`)
	resp, err := http.Post("http://127.0.0.1:6800/jsonrpc", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, 0, "", err
	}
	defer resp.Body.Close()
	var r struct {
		Result []struct {
			Completed string `json:"completedLength"`
			Total     string `json:"totalLength"`
			Status    string `json:"status"`
			Seeder    string `json:"seeder"`
		} `json:"result"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || len(r.Result) == 0 {
		return 0, 0, "", errors.New("no active download")
	}
	done, _ = strconv.ParseInt(r.Result[0].Completed, 10, 64)
	total, _ = strconv.ParseInt(r.Result[0].Total, 10, 64)
	return done, total, r.Result[0].Seeder, nil
}

func (l *btLeech) counters() (int64, int64, int64) { return 0, 0, l.done.Load() }
func (l *btLeech) close() {
	if l.cancel != nil {
		l.cancel()
		l.cmd.Wait()
	}
}
