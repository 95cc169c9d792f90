package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/testground/sdk-go/network"
	"github.com/testground/sdk-go/run"
	"github.com/testground/sdk-go/runtime"
	tgsync "github.com/testground/sdk-go/sync"
)

// params are the test parameters every case reads (manifest.toml).
type params struct {
	System        string // dfp2p | http | bittorrent
	FileMiB       int
	BandwidthMbit float64
	Latency       time.Duration
	Jitter        time.Duration
	LossPct       float64
	Stagger       time.Duration
	Timeout       time.Duration
	ChurnFraction float64
	ChurnAt       time.Duration
	ChurnDown     time.Duration
	Region        string
	Zone          string
	InterMbit     float64       // cross-region: bandwidth towards other regions' instances (0: Default)
	InterLatency  time.Duration // cross-region: egress latency towards other regions (0: latency_ms)
	DHTSettle     time.Duration // cross-region: wait after all trackers are up before serving
	FailoverAt    time.Duration // tracker-failover: close the owning tracker this long after the common start (0: when half the leechers hold ≥ 25 %)
	SeedUploads   int           // tracker scheduler MaxSeedUploads (0: main module default)
	ParentUploads int           // tracker scheduler MaxParentUploads (0: default)
}

func readParams(re *runtime.RunEnv) params {
	p := params{
		System:        re.StringParam("system"),
		FileMiB:       re.IntParam("file_size_mib"),
		BandwidthMbit: re.FloatParam("bandwidth_mbit"),
		Latency:       time.Duration(re.IntParam("latency_ms")) * time.Millisecond,
		Jitter:        time.Duration(re.IntParam("jitter_ms")) * time.Millisecond,
		LossPct:       re.FloatParam("loss_pct"),
		Stagger:       time.Duration(re.IntParam("stagger_ms")) * time.Millisecond,
		Timeout:       time.Duration(re.IntParam("timeout_s")) * time.Second,
	}
	if re.IsParamSet("churn_fraction") {
		p.ChurnFraction = re.FloatParam("churn_fraction")
		p.ChurnAt = time.Duration(re.IntParam("churn_at_ms")) * time.Millisecond
		p.ChurnDown = time.Duration(re.IntParam("churn_down_ms")) * time.Millisecond
	}
	if re.IsParamSet("seed_uploads") {
		p.SeedUploads = re.IntParam("seed_uploads")
	}
	if re.IsParamSet("parent_uploads") {
		p.ParentUploads = re.IntParam("parent_uploads")
	}
	if re.IsParamSet("region") {
		p.Region = re.StringParam("region")
	}
	if p.Region == "" {
		// cross-region groups are "seeds-<region>" / "leechers-<region>"
		if _, r, ok := strings.Cut(re.TestGroupID, "-"); ok {
			p.Region = r
		}
	}
	if re.IsParamSet("inter_mbit") {
		p.InterMbit = re.FloatParam("inter_mbit")
	}
	if re.IsParamSet("inter_latency_ms") {
		p.InterLatency = time.Duration(re.IntParam("inter_latency_ms")) * time.Millisecond
	}
	p.DHTSettle = 3 * time.Second
	if re.IsParamSet("dht_settle_ms") {
		p.DHTSettle = time.Duration(re.IntParam("dht_settle_ms")) * time.Millisecond
	}
	if re.IsParamSet("failover_at_ms") {
		p.FailoverAt = time.Duration(re.IntParam("failover_at_ms")) * time.Millisecond
	}
	return p
}

// seedInfo is what the seed instance publishes for the leechers.
type seedInfo struct {
	OriginURL string `json:"origin_url"`
	SHA256    string `json:"sha256"`
	Size      int64  `json:"size"`
	JoinToken string `json:"join_token,omitempty"`
	Torrent   []byte `json:"torrent,omitempty"`
	// Region is the publishing seed's region (cross-region: leechers take
	// their own region's); Trackers lists a tracker group (failover).
	Region   string   `json:"region,omitempty"`
	Trackers []string `json:"trackers,omitempty"`
}

var (
	infoTopic   = tgsync.NewTopic("seed-info", &seedInfo{})
	stateReady  = tgsync.State("ready")
	stateLeechd = tgsync.State("leechers-done")
	// stateQuarter: a leecher holds ≥ 25 % of the file (tracker-failover).
	stateQuarter = tgsync.State("leecher-quarter")
)

// sample is one point of a leecher's byte counters over time.
type sample struct {
	T      float64 `json:"t"` // seconds since the common start
	Origin int64   `json:"origin"`
	Seed   int64   `json:"seed"`
	Peer   int64   `json:"peer"`
}

// result is what every instance writes to TEST_OUTPUTS_PATH/result.json (the
// local runner's summary reads it; RecordPoint carries the same numbers to
// testground's metrics).
type result struct {
	System    string   `json:"system"`
	Case      string   `json:"case"`
	Group     string   `json:"group"`
	Seq       int64    `json:"seq"`
	Role      string   `json:"role"`
	Region    string   `json:"region,omitempty"`
	StartS    float64  `json:"start_s"` // own start, since the common start
	DoneS     float64  `json:"done_s"`  // completion, since the common start (0 if not done)
	Completed bool     `json:"completed"`
	Verified  bool     `json:"verified"`
	Bytes     int64    `json:"bytes"`
	Origin    int64    `json:"origin_bytes"` // leecher: read from origin; seed: served by origin
	SeedB     int64    `json:"seed_bytes"`
	PeerB     int64    `json:"peer_bytes"`
	FileBytes int64    `json:"file_bytes"`
	Restarts  int      `json:"restarts,omitempty"`
	LinkRx    int64    `json:"link_rx_bytes"` // bytes received on the data interface (all sources, incl. framing)
	Extra     string   `json:"extra,omitempty"`
	Error     string   `json:"error,omitempty"`
	Samples   []sample `json:"samples,omitempty"`
}

func caseFn(name string) run.InitializedTestCaseFn {
	return func(re *runtime.RunEnv, ic *run.InitContext) error { return runCase(name, re, ic) }
}

func runCase(name string, re *runtime.RunEnv, ic *run.InitContext) error {
	p := readParams(re)
	ctx, cancel := context.WithTimeout(context.Background(), p.Timeout+2*time.Minute)
	defer cancel()
	lvl := slog.LevelWarn
	if v := os.Getenv("DFP2P_SIM_LOG"); v != "" {
		lvl.UnmarshalText([]byte(v))
	}
	logDir = re.TestOutputsPath
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	slog.SetDefault(log)

	// Shape our link: the sidecar (testground's, or the local runner's)
	// applies the bandwidth; under the local runner latency/jitter/loss are
	// applied in user space on QUIC's sockets instead of netem.
	ls := network.LinkShape{
		Latency:   p.Latency,
		Jitter:    p.Jitter,
		Bandwidth: uint64(p.BandwidthMbit * 1e6 / 8),
		Loss:      float32(p.LossPct),
	}
	ic.NetClient.MustConfigureNetwork(ctx, &network.Config{
		Network:       network.DefaultDataNetwork,
		Enable:        true,
		Default:       ls,
		CallbackState: "network-configured",
		RoutingPolicy: network.AllowAll,
	})
	us := shape{}
	if userspaceNet() {
		us = shape{Latency: p.Latency, Jitter: p.Jitter, Loss: p.LossPct / 100}
	}
	ip := ic.NetClient.MustGetDataNetworkIP()
	if name == "cross-region" {
		us.Rules = regionRules(ctx, re, ic, p, ip, ls)
	}
	rx0 := linkRx(ip)
	seq := ic.GlobalSeq
	leechers := re.TestInstanceCount - countGroup(re, "seeds")

	res := &result{System: p.System, Case: name, Group: re.TestGroupID, Seq: seq, Region: p.Region,
		FileBytes: int64(p.FileMiB) << 20}
	var err error
	if strings.HasPrefix(re.TestGroupID, "seed") {
		res.Role = "seed"
		switch name {
		case "cross-region":
			err = runRegionSeed(ctx, re, ic, p, ip, us, leechers, res)
		case "tracker-failover":
			err = runFailoverSeed(ctx, re, ic, p, ip, us, leechers, res)
		default:
			err = runSeed(ctx, re, ic, p, ip, us, leechers, res)
		}
	} else {
		res.Role = "leecher"
		err = runLeecher(ctx, name, re, ic, p, ip, us, leechers, res)
	}
	if err != nil {
		res.Error = err.Error()
	}
	res.LinkRx = linkRx(ip) - rx0
	writeResult(re, res)
	return err
}

// countGroup is the number of instances in the seed group: the plan knows it
// from the composition through the "seeds" param (default 1).
func countGroup(re *runtime.RunEnv, _ string) int {
	if re.IsParamSet("seeds") {
		return re.IntParam("seeds")
	}
	return 1
}

func writeResult(re *runtime.RunEnv, r *result) {
	re.R().RecordPoint("done_s", r.DoneS)
	re.R().RecordPoint("origin_bytes", float64(r.Origin))
	re.R().RecordPoint("seed_bytes", float64(r.SeedB))
	re.R().RecordPoint("peer_bytes", float64(r.PeerB))
	v := 0.0
	if r.Verified {
		v = 1
	}
	re.R().RecordPoint("verified", v)
	b, _ := json.MarshalIndent(r, "", " ")
	os.WriteFile(filepath.Join(re.TestOutputsPath, "result.json"), b, 0o644)
}

// fileBytes is the test file: deterministic pseudo-random bytes.
func fileBytes(n int64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{'d', 'f', 'p', '2', 'p'})
	r.Read(b)
	return b
}

// countingWriter counts what the origin serves.
type countingResponse struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c countingResponse) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n.Add(int64(n))
	return n, err
}

func runSeed(ctx context.Context, re *runtime.RunEnv, ic *run.InitContext, p params, ip net.IP, us shape, leechers int, res *result) error {
	data := fileBytes(res.FileBytes)
	sum := sha256.Sum256(data)
	var served atomic.Int64
	ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "8080"))
	if err != nil {
		return err
	}
	mod := time.Unix(1700000000, 0)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(countingResponse{w, &served}, r, "file.bin", mod, strings.NewReader(string(data)))
	})}
	go srv.Serve(ln)
	defer srv.Close()
	info := seedInfo{OriginURL: fmt.Sprintf("http://%s:8080/file.bin", ip), SHA256: hex.EncodeToString(sum[:]), Size: res.FileBytes}
	dir := re.TestTempPath

	var stop func()
	switch p.System {
	case "dfp2p":
		tok, s, err := startTracker(ctx, dir, ip, us, p)
		if err != nil {
			return err
		}
		stop = s
		info.JoinToken = tok
	case "http":
		stop = func() {}
	case "bittorrent":
		t, s, err := startBTSeed(ctx, dir, ip, data)
		if err != nil {
			return err
		}
		stop = s
		info.Torrent = t
	default:
		return fmt.Errorf("unknown system %q", p.System)
	}
	defer stop()
	ic.SyncClient.MustPublish(ctx, infoTopic, &info)
	// Wait for the leechers to finish (or give up), then report.
	awaitLeechers(ctx, ic, p, leechers, &served, res)
	re.RecordMessage("seed: origin served %d bytes", res.Origin)
	return nil
}

// awaitLeechers waits until every leecher reported (or the run's timeout
// passed) and records what the origin served.
func awaitLeechers(ctx context.Context, ic *run.InitContext, p params, leechers int, served *atomic.Int64, res *result) {
	bctx, cancel := context.WithTimeout(ctx, p.Timeout+time.Minute)
	defer cancel()
	berr := <-ic.SyncClient.MustBarrier(bctx, stateLeechd, leechers).C
	res.Origin = served.Load()
	res.Completed = berr == nil
	res.Verified = true
}

func runLeecher(ctx context.Context, name string, re *runtime.RunEnv, ic *run.InitContext, p params, ip net.IP, us shape, leechers int, res *result) error {
	ch := make(chan *seedInfo, 1)
	if _, err := ic.SyncClient.Subscribe(ctx, infoTopic, ch); err != nil {
		return err
	}
	var info *seedInfo
	for info == nil {
		select {
		case i := <-ch:
			if name != "cross-region" || i.Region == p.Region {
				info = i
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if name == "cross-region" {
		// two zones per region, alternating
		p.Zone = fmt.Sprintf("%s-%c", p.Region, 'a'+rune(ic.GroupSeq%2))
	}
	l, err := newLeech(ctx, p, re.TestTempPath, ip, us, info)
	if err != nil {
		ic.SyncClient.MustSignalEntry(ctx, stateReady)
		ic.SyncClient.MustSignalEntry(ctx, stateLeechd)
		return err
	}
	defer l.close()
	// Everybody starts together (cold start: nobody but the origin holds
	// the file); with a stagger, leecher k waits k*stagger.
	ic.SyncClient.MustSignalAndWait(ctx, stateReady, leechers)
	t0 := time.Now()
	k := int(ic.GroupSeq) - 1
	if p.Stagger > 0 && name != "cold-start" {
		time.Sleep(time.Duration(k) * p.Stagger)
	}
	res.StartS = time.Since(t0).Seconds()

	dctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	// Sample the byte counters while downloading.
	stopS := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tk := time.NewTicker(250 * time.Millisecond)
		defer tk.Stop()
		quarter := name != "tracker-failover"
		for {
			o, s, pb := l.counters()
			if !quarter && (o+s+pb)*4 >= res.FileBytes {
				quarter = true
				ic.SyncClient.SignalEntry(ctx, stateQuarter)
			}
			res.Samples = append(res.Samples, sample{T: time.Since(t0).Seconds(), Origin: o, Seed: s, Peer: pb})
			select {
			case <-tk.C:
			case <-stopS:
				return
			}
		}
	}()
	churn := name == "churn" && p.ChurnFraction > 0 && float64(k) < p.ChurnFraction*float64(leechers)
	sum, n, err := l.fetch(dctx, churn, p, res)
	close(stopS)
	<-sampled
	res.Bytes = n
	res.Origin, res.SeedB, res.PeerB = l.counters()
	if name == "tracker-failover" && (res.Origin+res.SeedB+res.PeerB)*4 < res.FileBytes {
		ic.SyncClient.SignalEntry(ctx, stateQuarter) // failed early: do not hold up the trigger
	}
	res.Samples = append(res.Samples, sample{T: time.Since(t0).Seconds(), Origin: res.Origin, Seed: res.SeedB, Peer: res.PeerB})
	if err == nil {
		res.DoneS = time.Since(t0).Seconds()
		res.Completed = true
		res.Verified = sum == info.SHA256 && n == info.Size
		if !res.Verified {
			err = fmt.Errorf("sha256 mismatch: got %s (%d bytes), want %s", sum, n, info.SHA256)
		}
	}
	// Keep serving until every leecher is done (or the run's timeout).
	ic.SyncClient.MustSignalEntry(ctx, stateLeechd)
	wctx, wcancel := context.WithTimeout(ctx, p.Timeout+10*time.Second)
	<-ic.SyncClient.MustBarrier(wctx, stateLeechd, leechers).C
	wcancel()
	return err
}

// hashCopy reads r to the end and returns its sha256 and length.
func hashCopy(r io.Reader, count *atomic.Int64) (string, int64, error) {
	h := sha256.New()
	buf := make([]byte, 256<<10)
	var n int64
	for {
		m, err := r.Read(buf)
		if m > 0 {
			h.Write(buf[:m])
			n += int64(m)
			if count != nil {
				count.Add(int64(m))
			}
		}
		if err == io.EOF {
			return hex.EncodeToString(h.Sum(nil)), n, nil
		}
		if err != nil {
			return "", n, err
		}
	}
}
