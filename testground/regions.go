package main

// The cross-region and tracker-failover cases (docs/SIMULATIONS.md).

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/testground/sdk-go/network"
	"github.com/testground/sdk-go/ptypes"
	"github.com/testground/sdk-go/run"
	"github.com/testground/sdk-go/runtime"
	tgsync "github.com/testground/sdk-go/sync"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/tracker"
)

// instAddr is what every cross-region instance publishes so the others can
// shape their links towards other regions.
type instAddr struct {
	IP     string `json:"ip"`
	Region string `json:"region"`
}

// caMsg is what the origin region's seed publishes: the cluster CA key
// (instances may be separate containers, so the bytes, not a path), the
// origin and its tracker's addresses (the other trackers' DHT bootstrap).
type caMsg struct {
	Key       []byte   `json:"key"`
	OriginURL string   `json:"origin_url"`
	SHA256    string   `json:"sha256"`
	Size      int64    `json:"size"`
	Addrs     []string `json:"addrs"`
}

var (
	addrTopic = tgsync.NewTopic("inst-addrs", &instAddr{})
	caTopic   = tgsync.NewTopic("cluster-ca", &caMsg{})
)

// regionRules exchanges (IP, region) with every instance and reconfigures
// the link with one network.LinkRule per other-region instance (/32):
// inter_mbit / inter_latency_ms apply towards other regions. It returns the
// per-destination latency rules for the userspace wrapper.
func regionRules(ctx context.Context, re *runtime.RunEnv, ic *run.InitContext, p params, ip net.IP, def network.LinkShape) []rule {
	ic.SyncClient.MustPublish(ctx, addrTopic, &instAddr{IP: ip.String(), Region: p.Region})
	ch := make(chan *instAddr, re.TestInstanceCount)
	ic.SyncClient.MustSubscribe(ctx, addrTopic, ch)
	inter := def
	if p.InterMbit > 0 {
		inter.Bandwidth = uint64(p.InterMbit * 1e6 / 8)
	}
	if p.InterLatency > 0 {
		inter.Latency = p.InterLatency
	}
	var lr []network.LinkRule
	var us []rule
	for i := 0; i < re.TestInstanceCount; i++ {
		var a *instAddr
		select {
		case a = <-ch:
		case <-ctx.Done():
			return nil
		}
		if a.Region == p.Region {
			continue
		}
		n := net.IPNet{IP: net.ParseIP(a.IP).To4(), Mask: net.CIDRMask(32, 32)}
		lr = append(lr, network.LinkRule{LinkShape: inter, Subnet: ptypes.IPNet{IPNet: n}})
		us = append(us, rule{net: n, s: shape{Latency: inter.Latency, Jitter: inter.Jitter, Loss: float64(inter.Loss) / 100}})
	}
	if inter == def {
		return nil // same decision on every instance (global params)
	}
	ic.NetClient.MustConfigureNetwork(ctx, &network.Config{
		Network:       network.DefaultDataNetwork,
		Enable:        true,
		Default:       def,
		Rules:         lr,
		CallbackState: "network-regions",
		RoutingPolicy: network.AllowAll,
	})
	if !userspaceNet() {
		return nil
	}
	return us
}

func stringParam(re *runtime.RunEnv, name string) string {
	if !re.IsParamSet(name) {
		return ""
	}
	return re.StringParam(name)
}

// linkRx is the byte count received on the interface holding ip.
func linkRx(ip net.IP) int64 {
	ifs, _ := net.Interfaces()
	for _, itf := range ifs {
		as, _ := itf.Addrs()
		for _, a := range as {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				b, err := os.ReadFile(filepath.Join("/sys/class/net", itf.Name, "statistics/rx_bytes"))
				if err != nil {
					return 0
				}
				v, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
				return v
			}
		}
	}
	return 0
}

// startOrigin serves the test file on ip:8080 and counts what it serves.
func startOrigin(ip net.IP, size int64, served *atomic.Int64) (url, sum string, stop func(), err error) {
	data := fileBytes(size)
	h := sha256.Sum256(data)
	ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "8080"))
	if err != nil {
		return "", "", nil, err
	}
	mod := time.Unix(1700000000, 0)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(countingResponse{w, served}, r, "file.bin", mod, strings.NewReader(string(data)))
	})}
	go srv.Serve(ln)
	return fmt.Sprintf("http://%s:8080/file.bin", ip), hex.EncodeToString(h[:]), func() { srv.Close() }, nil
}

// runRegionSeed is one region's tracker+seed. The origin region's seed also
// serves the origin and creates the cluster CA; the others load it and
// bootstrap their DHT from the origin region's tracker.
func runRegionSeed(ctx context.Context, re *runtime.RunEnv, ic *run.InitContext, p params, ip net.IP, us shape, leechers int, res *result) error {
	if p.System != "dfp2p" {
		return fmt.Errorf("cross-region: system %q not supported (dfp2p only)", p.System)
	}
	isOrigin := false
	if v := strings.ToLower(stringParam(re, "origin")); v == "true" || v == "false" {
		isOrigin = v == "true"
	} else {
		seq, err := ic.SyncClient.SignalEntry(ctx, "seed-order")
		if err != nil {
			return err
		}
		isOrigin = seq == 1
	}
	dir := re.TestTempPath
	cfg := trackerConfig(filepath.Join(dir, "tracker"), ip, 4010, us, p)
	cfg.NoDHT = false
	var served atomic.Int64
	var msg caMsg
	var t *tracker.Tracker
	var err error
	if isOrigin {
		url, sum, stop, err := startOrigin(ip, res.FileBytes, &served)
		if err != nil {
			return err
		}
		defer stop()
		if t, err = tracker.New(cfg); err != nil {
			return err
		}
		key, err := os.ReadFile(filepath.Join(cfg.DataDir, "cluster-ca.key"))
		if err != nil {
			t.Close()
			return fmt.Errorf("reading the new cluster CA: %w", err)
		}
		msg = caMsg{Key: key, OriginURL: url, SHA256: sum, Size: res.FileBytes, Addrs: t.Addrs()}
		ic.SyncClient.MustPublish(ctx, caTopic, &msg)
		res.Extra = "origin region; created the cluster CA"
	} else {
		ch := make(chan *caMsg, 1)
		ic.SyncClient.MustSubscribe(ctx, caTopic, ch)
		select {
		case m := <-ch:
			msg = *m
		case <-ctx.Done():
			return ctx.Err()
		}
		kf := filepath.Join(dir, "cluster-ca.key")
		if err := os.WriteFile(kf, msg.Key, 0o600); err != nil {
			return err
		}
		cfg.CAKeyFile = kf
		cfg.Bootstrap = msg.Addrs
		if t, err = tracker.New(cfg); err != nil {
			return err
		}
	}
	defer t.Close()
	// Every tracker up, then give the DHT time to join (the routing table
	// fills asynchronously, ~1 s here). Without this, a seed asked for the
	// task before its DHT joined finds "no DHT peers" and reads the origin
	// itself (see docs/SIMULATIONS.md).
	ic.SyncClient.MustSignalAndWait(ctx, "trackers-up", countGroup(re, "seeds"))
	time.Sleep(p.DHTSettle)
	ic.SyncClient.MustPublish(ctx, infoTopic, &seedInfo{OriginURL: msg.OriginURL, SHA256: msg.SHA256, Size: msg.Size,
		JoinToken: t.JoinToken(), Region: p.Region})
	awaitLeechers(ctx, ic, p, leechers, &served, res)
	re.RecordMessage("seed %s: origin served %d bytes", p.Region, res.Origin)
	return nil
}

// runFailoverSeed runs the origin and two trackers (one CA, DHT on, B
// bootstrapped from A), publishes both as a tracker group, and closes the
// task's owner (tracker.Rank(task, ids)[0]) failover_at_ms after the start.
func runFailoverSeed(ctx context.Context, re *runtime.RunEnv, ic *run.InitContext, p params, ip net.IP, us shape, leechers int, res *result) error {
	if p.System != "dfp2p" {
		return fmt.Errorf("tracker-failover: system %q not supported (dfp2p only)", p.System)
	}
	var served atomic.Int64
	url, sum, stop, err := startOrigin(ip, res.FileBytes, &served)
	if err != nil {
		return err
	}
	defer stop()
	dir := re.TestTempPath
	ca := trackerConfig(filepath.Join(dir, "trackerA"), ip, 4010, us, p)
	ca.NoDHT = false
	tA, err := tracker.New(ca)
	if err != nil {
		return err
	}
	cb := trackerConfig(filepath.Join(dir, "trackerB"), ip, 4011, us, p)
	cb.NoDHT = false
	cb.CAKeyFile = filepath.Join(ca.DataDir, "cluster-ca.key")
	cb.Bootstrap = tA.Addrs()
	tB, err := tracker.New(cb)
	if err != nil {
		tA.Close()
		return err
	}
	var closed [2]atomic.Bool
	trs := []*tracker.Tracker{tA, tB}
	closeT := func(i int) {
		if closed[i].CompareAndSwap(false, true) {
			trs[i].Close()
		}
	}
	defer closeT(0)
	defer closeT(1)
	task, err := content.TaskIDFor(url, "", "", content.DefaultQueryFilter)
	if err != nil {
		return err
	}
	ids := []peer.ID{tA.Host().ID(), tB.Host().ID()}
	owner := 0
	if tracker.Rank(task, ids)[0] == ids[1] {
		owner = 1
	}
	ic.SyncClient.MustPublish(ctx, infoTopic, &seedInfo{OriginURL: url, SHA256: sum, Size: res.FileBytes,
		JoinToken: tA.JoinToken(), Trackers: []string{tA.Addrs()[0], tB.Addrs()[0]}})
	// The leechers start together at the ready barrier; close the owner
	// failover_at later, or (failover_at 0) once half the leechers hold
	// at least a quarter of the file.
	rctx, rcancel := context.WithTimeout(ctx, p.Timeout)
	<-ic.SyncClient.MustBarrier(rctx, stateReady, leechers).C
	rcancel()
	t0 := time.Now()
	trigger := fmt.Sprintf("after %s", p.FailoverAt)
	if p.FailoverAt > 0 {
		select {
		case <-time.After(p.FailoverAt):
		case <-ctx.Done():
			return ctx.Err()
		}
	} else {
		half := (leechers + 1) / 2
		trigger = fmt.Sprintf("when %d/%d leechers held >= 25%%", half, leechers)
		qctx, qcancel := context.WithTimeout(ctx, p.Timeout)
		<-ic.SyncClient.MustBarrier(qctx, stateQuarter, half).C
		qcancel()
	}
	closeT(owner)
	id := ids[owner].String()
	res.Extra = fmt.Sprintf("closed the task's owner, tracker %c (…%s), %s, at %.1fs; origin had served %.2f MiB then",
		'A'+owner, id[len(id)-6:], trigger, time.Since(t0).Seconds(), float64(served.Load())/(1<<20))
	re.RecordMessage("%s", res.Extra)
	awaitLeechers(ctx, ic, p, leechers, &served, res)
	return nil
}
