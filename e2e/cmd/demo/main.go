// Command demo runs dfp2p's main job on loopback: a local origin, a tracker
// and three daemons; every daemon downloads the same generated 256 MiB file
// at once. It prints each peer's time and where its bytes came from, then
// removes everything it started. `make demo` runs it.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/daemon"
	"github.com/dfp2p/dfp2p/e2e/cluster"
)

func main() {
	binFlag := flag.String("bin", "", "dfp2p binary (default: build one)")
	size := flag.Int64("size", 256<<20, "file size in bytes")
	peers := flag.Int("daemons", 3, "number of daemons")
	flag.Parse()
	if err := run(*binFlag, *size, *peers); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(bin string, size int64, n int) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "dfp2p-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if bin == "" {
		if bin, err = cluster.Build(dir); err != nil {
			return err
		}
	}
	origin, err := cluster.NewOrigin(filepath.Join(dir, "origin"))
	if err != nil {
		return err
	}
	defer origin.Close()
	fmt.Printf("generating a %d MiB file at the origin...\n", size>>20)
	f, err := origin.Generate("demo.bin", size, 42)
	if err != nil {
		return err
	}
	c := cluster.New(bin, filepath.Join(dir, "cluster"))
	defer c.Close()
	tr, err := c.StartTracker()
	if err != nil {
		return err
	}
	fmt.Printf("tracker   %s  (dashboard http://%s/)\n", tr.Addrs[0], tr.API)
	tok := tr.JoinToken()
	fmt.Printf("closed cluster; the daemons join with:\n  dfp2p daemon --join %.60s...\n", tok)
	var ds []*cluster.Proc
	for i := 0; i < n; i++ {
		d, err := c.StartDaemon([]*cluster.Proc{tr}) // passes --join with the tracker's token
		if err != nil {
			return err
		}
		fmt.Printf("%-9s %s  (member)\n", d.Name, d.Addrs[0])
		ds = append(ds, d)
	}
	url := origin.FileURL(f.Name)
	fmt.Printf("\nall %d daemons get %s at once\n\n", n, url)
	results := make([]cluster.GetResult, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i, d := range ds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = c.Get(ctx, url, filepath.Join(dir, d.Name+".out"), "--daemon", d.URL())
		}()
	}
	wg.Wait()
	total := time.Since(start)
	task, _ := content.TaskIDFor(url, "", "", content.DefaultQueryFilter)
	fmt.Printf("%-9s %9s %12s %12s %12s  %s\n", "peer", "time", "from seed", "from peers", "from origin", "verified")
	failed := false
	for i, d := range ds {
		r := results[i]
		if r.ExitCode != 0 {
			failed = true
			fmt.Printf("%-9s FAILED: %s\n", d.Name, r.Stderr)
			continue
		}
		st := stats(d.URL(), task)
		fmt.Printf("%-9s %9s %12s %12s %12s  sha256 ok\n", d.Name, r.Elapsed.Round(time.Millisecond),
			mib(st.SeedBytes), mib(st.PeerBytes), mib(st.OriginBytes))
	}
	sent := origin.BytesSent()
	fmt.Printf("\norigin served %s for %d downloads of %s (%.2fx the file); all done in %s\n",
		mib(sent), n, mib(size), float64(sent)/float64(size), total.Round(time.Millisecond))
	if failed {
		return fmt.Errorf("some downloads failed")
	}
	return nil
}

func stats(api string, task content.TaskID) daemon.Stats {
	resp, err := http.Get(api + "/api/v1/tasks/" + string(task))
	if err != nil {
		return daemon.Stats{}
	}
	defer resp.Body.Close()
	var ts daemon.TaskStatus
	if json.NewDecoder(resp.Body).Decode(&ts) != nil || ts.Stats == nil {
		return daemon.Stats{}
	}
	return *ts.Stats
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
