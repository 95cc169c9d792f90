package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dfp2p/dfp2p/client"
	"github.com/dfp2p/dfp2p/daemon"
)

// runCLI runs the dfp2p command line with args and returns its stdout.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out, errOut strings.Builder
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func TestCacheCommands(t *testing.T) {
	data := make([]byte, 5<<20+3)
	for i := range data {
		data[i] = byte(i * 13)
	}
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "f", time.Unix(0, 0), bytes.NewReader(data))
	}))
	defer origin.Close()
	dir := t.TempDir()
	d, err := daemon.New(daemon.Config{DataDir: dir, API: "127.0.0.1:0", GCInterval: -1, TaskTTL: 50 * time.Millisecond,
		NoDHT: true, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	api := "http://" + d.APIAddr()
	t.Setenv("DFP2P_DAEMON", api)
	url := origin.URL + "/file.bin?sig=secret"
	if _, err := client.Get(context.Background(), client.Options{Daemon: api}, client.Request{URL: url}, filepath.Join(dir, "out"), nil); err != nil {
		t.Fatal(err)
	}

	out, err := runCLI(t, "ls")
	if err != nil || !strings.Contains(out, "3/3") || !strings.Contains(out, "/file.bin?<redacted>") || strings.Contains(out, "secret") {
		t.Fatalf("ls: %v\n%s", err, out)
	}
	out, err = runCLI(t, "ls", "-o", "json")
	var tasks []client.Task
	if err != nil || json.Unmarshal([]byte(out), &tasks) != nil || len(tasks) != 1 || tasks[0].Length != int64(len(data)) {
		t.Fatalf("ls -o json: %v\n%s", err, out)
	}
	id := string(tasks[0].ID)
	for _, ref := range []string{url, id, id[:10]} {
		out, err = runCLI(t, "stat", ref)
		if err != nil || !strings.Contains(out, id) || !strings.Contains(out, "complete:      yes") {
			t.Fatalf("stat %s: %v\n%s", ref, err, out)
		}
	}
	if _, err = runCLI(t, "stat", origin.URL+"/other"); !errors.Is(err, client.ErrNotFound) || isUsage(err) {
		t.Fatalf("stat of an uncached URL: %v", err)
	}
	for _, args := range [][]string{{"stat"}, {"ls", "x"}, {"ls", "-o", "yaml"}, {"stat", "nope"}, {"gc", "--bogus"}} {
		if _, err := runCLI(t, args...); err == nil || (!isUsage(err) && args[1] != "nope") {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}

	if out, err = runCLI(t, "pin", url); err != nil || !strings.HasPrefix(out, "pinned "+id) {
		t.Fatalf("pin: %v %s", err, out)
	}
	time.Sleep(100 * time.Millisecond) // past the TTL
	if out, err = runCLI(t, "gc", "--dry-run"); err != nil || !strings.Contains(out, "would free 0 B (0 bytes) from 0 tasks") {
		t.Fatalf("gc --dry-run of a pinned task: %v %s", err, out)
	}
	if out, err = runCLI(t, "unpin", id); err != nil || !strings.HasPrefix(out, "unpinned "+id) {
		t.Fatalf("unpin: %v %s", err, out)
	}
	if out, err = runCLI(t, "gc", "--dry-run"); err != nil || !strings.Contains(out, "would remove  "+id[:12]) {
		t.Fatalf("gc --dry-run: %v %s", err, out)
	}

	if out, err = runCLI(t, "cache", "verify"); err != nil || !strings.Contains(out, "checked 3 pieces in 1 tasks: 0 bad") {
		t.Fatalf("verify: %v %s", err, out)
	}
	// Rot one piece file.
	files, _ := filepath.Glob(filepath.Join(dir, "tasks", id, "1-*"))
	if len(files) != 1 {
		t.Fatalf("piece files %v", files)
	}
	if err := os.WriteFile(files[0], make([]byte, 2<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = runCLI(t, "cache", "verify")
	if err == nil || isUsage(err) || !strings.Contains(out, "bad 1 [1]") || !strings.Contains(out, "1 bad, 1 dropped") {
		t.Fatalf("verify of a rotten piece: %v\n%s", err, out)
	}
	out, err = runCLI(t, "cache", "verify", "--repair", "-o", "json")
	var res struct {
		Tasks   []client.VerifyTask
		Summary client.VerifySummary
	}
	if err != nil || json.Unmarshal([]byte(out), &res) != nil || res.Summary.Refetched != 1 || len(res.Tasks) != 1 || !res.Tasks[0].Complete {
		t.Fatalf("verify --repair: %v\n%s", err, out)
	}
	time.Sleep(100 * time.Millisecond) // the repair used the task: past the TTL again
	if out, err = runCLI(t, "gc"); err != nil || !strings.Contains(out, "freed 5.0 MiB") {
		t.Fatalf("gc: %v %s", err, out)
	}
	if out, err = runCLI(t, "ls"); err != nil || strings.Count(out, "\n") != 1 {
		t.Fatalf("ls after gc: %v %q", err, out)
	}
	// A daemon that is not there: one line, exit 1.
	if _, err := runCLI(t, "ls", "--daemon", "http://127.0.0.1:1"); err == nil || isUsage(err) || !strings.Contains(err.Error(), "cannot reach the daemon") {
		t.Fatalf("unreachable daemon: %v", err)
	}
}

func isUsage(err error) bool {
	var ue usageError
	return errors.As(err, &ue)
}
