package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/testground/sdk-go/network"
	"github.com/testground/sdk-go/ptypes"
	"github.com/testground/sdk-go/runtime"
	tgsync "github.com/testground/sdk-go/sync"
	syncsvc "github.com/testground/sync-service"
	"go.uber.org/zap"
)

const syncPort = 5050

// inner runs in the router namespace: the sync service, the sidecar, and
// the instances of one system.
func inner(job innerJob) error {
	sc := job.Scenario
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := zap.NewNop().Sugar()
	svc, err := syncsvc.NewDefaultService(ctx, logger)
	if err != nil {
		return err
	}
	srv, err := syncsvc.NewServer(svc, syncPort) // listens in this (router) namespace
	if err != nil {
		return err
	}
	go srv.Serve()
	defer srv.Shutdown(context.Background())

	n := sc.instances()
	slots := sc.layout()
	rp := &runtime.RunParams{TestPlan: "dfp2p", TestCase: sc.Case, TestRun: job.RunID, TestInstanceCount: n}
	os.Setenv(tgsync.EnvServiceHost, "127.0.0.1")
	os.Setenv(tgsync.EnvServicePort, strconv.Itoa(syncPort))
	sctx := tgsync.WithRunParams(ctx, rp)
	client, err := tgsync.NewGenericClient(sctx, logger)
	if err != nil {
		return fmt.Errorf("sidecar sync client: %w", err)
	}
	defer client.Close()
	tp := &topo{base: job.Base, router: job.Router, n: n}

	// The sidecar: sdk-go's network client publishes a network.Config on
	// topic "network:<hostname>" and waits for CallbackTarget signals on
	// CallbackState. We shape the link and signal.
	for i := 1; i <= n; i++ {
		i := i
		ch := make(chan *network.Config, 4)
		if _, err := client.Subscribe(sctx, tgsync.NewTopic("network:"+hostname(job, i), &network.Config{}), ch); err != nil {
			return err
		}
		go func() {
			for {
				select {
				case cfg := <-ch:
					if err := tp.shapeLink(i, cfg.Default.Bandwidth*8, cfg.Rules); err != nil {
						fmt.Fprintf(os.Stderr, "sim: sidecar: instance %d: %v\n", i, err)
						continue // no signal: the instance's ConfigureNetwork fails by its timeout
					}
					if cfg.CallbackState != "" {
						client.SignalEntry(sctx, cfg.CallbackState)
					}
				case <-ctx.Done():
					return
				}
			}
		}()
		// The sidecar reports each instance's network as initialised.
		if _, err := client.SignalEntry(sctx, "network-initialized"); err != nil {
			return err
		}
	}

	params := map[string]string{
		"system":         job.System,
		"file_size_mib":  strconv.Itoa(sc.FileMiB),
		"bandwidth_mbit": strconv.FormatFloat(sc.BwMbit, 'f', -1, 64),
		"latency_ms":     strconv.Itoa(sc.LatencyMs),
		"jitter_ms":      strconv.Itoa(sc.JitterMs),
		"loss_pct":       strconv.FormatFloat(sc.LossPct, 'f', -1, 64),
		"stagger_ms":     strconv.Itoa(sc.StaggerMs),
		"timeout_s":      strconv.Itoa(sc.TimeoutS),
		"seeds":          strconv.Itoa(n - sc.Leechers),
		"seed_uploads":   strconv.Itoa(sc.SeedUp),
		"parent_uploads": strconv.Itoa(sc.ParentUp),
	}
	if sc.Case == "churn" {
		params["churn_fraction"] = strconv.FormatFloat(sc.ChurnFrac, 'f', -1, 64)
		params["churn_at_ms"] = strconv.Itoa(sc.ChurnAtMs)
		params["churn_down_ms"] = strconv.Itoa(sc.ChurnDnMs)
	}
	switch sc.Case {
	case "cross-region":
		params["inter_mbit"] = strconv.FormatFloat(sc.InterMbit, 'f', -1, 64)
		params["inter_latency_ms"] = strconv.Itoa(sc.InterLatMs)
	case "tracker-failover":
		params["failover_at_ms"] = strconv.Itoa(sc.FailoverAtMs)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var procs []*exec.Cmd
	for i := 1; i <= n; i++ {
		group, gcount := slots[i-1].group, slots[i-1].gcount
		var pp []string
		for k, v := range params {
			pp = append(pp, k+"="+v)
		}
		for k, v := range slots[i-1].params {
			pp = append(pp, k+"="+v)
		}
		outDir := filepath.Join(job.OutDir, fmt.Sprintf("%s-%02d", group, i))
		tmpDir := filepath.Join(job.TmpDir, strconv.Itoa(i))
		os.MkdirAll(outDir, 0o755)
		os.MkdirAll(tmpDir, 0o755)
		env := []string{
			"PATH=" + os.Getenv("PATH"), "HOME=" + tmpDir,
			runtime.EnvTestPlan + "=dfp2p", runtime.EnvTestCase + "=" + sc.Case, runtime.EnvTestRun + "=" + job.RunID,
			runtime.EnvTestInstanceCount + "=" + strconv.Itoa(n),
			runtime.EnvTestGroupID + "=" + group, runtime.EnvTestGroupInstanceCount + "=" + strconv.Itoa(gcount),
			runtime.EnvTestInstanceParams + "=" + strings.Join(pp, "|"),
			runtime.EnvTestSidecar + "=true", runtime.EnvTestOutputsPath + "=" + outDir, runtime.EnvTestTempPath + "=" + tmpDir,
			runtime.EnvTestSubnet + "=10.77.0.0/16", runtime.EnvTestStartTime + "=" + time.Now().Format(time.RFC3339),
			tgsync.EnvServiceHost + "=" + routerIP, tgsync.EnvServicePort + "=" + strconv.Itoa(syncPort),
			"DFP2P_SIM_USERSPACE_NET=1", "QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING=true", "HOSTNAME_WANT=" + hostname(job, i),
			"PLAN_BIN=" + job.Bin, "DFP2P_SIM_LOG=" + os.Getenv("DFP2P_SIM_LOG"),
		}
		// Own UTS namespace so os.Hostname() (which keys the sidecar topic)
		// is unique per instance, as in a testground container.
		c := exec.Command("ip", "netns", "exec", tp.instNS(i), "unshare", "-u", "sh", "-c", `hostname "$HOSTNAME_WANT" && exec "$PLAN_BIN"`)
		c.Env = env
		c.Dir = tmpDir
		lf, _ := os.Create(filepath.Join(outDir, "stdout.log"))
		c.Stdout, c.Stderr = lf, lf
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := c.Start(); err != nil {
			return err
		}
		mu.Lock()
		procs = append(procs, c)
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.Wait()
			lf.Close()
			if err != nil {
				fmt.Fprintf(os.Stderr, "sim: %s instance %d: %v (see %s)\n", job.System, i, err, filepath.Join(outDir, "stdout.log"))
			}
		}()
	}
	all := make(chan struct{})
	go func() { wg.Wait(); close(all) }()
	limit := time.Duration(sc.TimeoutS)*time.Second + 90*time.Second
	select {
	case <-all:
		return nil
	case <-time.After(limit):
		fmt.Fprintf(os.Stderr, "sim: %s: instances still running after %s; killing them\n", job.System, limit)
	case <-ctx.Done():
	}
	mu.Lock()
	for _, c := range procs {
		syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
	}
	mu.Unlock()
	<-all
	return nil
}

func hostname(job innerJob, i int) string {
	return fmt.Sprintf("%s-%s-%d", job.Scenario.Case, job.System, i)
}

var _ = ptypes.IPNet{}
