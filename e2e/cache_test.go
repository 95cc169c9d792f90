package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dfp2p/dfp2p/client"
	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/e2e/cluster"
)

// The cache tools, run as the real CLI against a real daemon of a closed
// cluster: ls, stat (by URL and ID), pin, gc (dry run and real: the pinned
// task survives, the other goes), and verify finding a piece rotted on disk,
// then repairing it through the swarm.
func TestCacheTools(t *testing.T) {
	e := newEnv(t)
	fa, fb := e.file("a.bin", 9<<20+7), e.file("b.bin", 3<<20)
	tr := e.tracker()
	// A short TTL, and no GC of its own: the test runs it.
	d, err := e.c.StartDaemon([]*cluster.Proc{tr}, "--gc-ttl", "3s", "--gc-interval", "1h")
	if err != nil {
		t.Fatal(err)
	}
	ua, ub := e.origin.FileURL(fa.Name), e.origin.FileURL(fb.Name)
	ida, _ := content.TaskIDFor(ua, "", "", content.DefaultQueryFilter)
	idb, _ := content.TaskIDFor(ub, "", "", content.DefaultQueryFilter)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, u := range []string{ua, ub} {
		if r := e.c.Get(ctx, u, e.outPath(filepath.Base(u)), "--daemon", d.URL()); r.ExitCode != 0 {
			t.Fatalf("get %s: exit %d: %s", u, r.ExitCode, r.Stderr)
		}
	}
	// cli runs dfp2p against d; with admin, it can read d's local token.
	cli := func(admin bool, args ...string) cluster.CLIResult {
		t.Helper()
		args = append(args, "--daemon", d.URL())
		if admin {
			args = append(args, "--data-dir", d.DataDir)
		} else {
			args = append(args, "--data-dir", filepath.Join(e.dir, "nowhere"))
		}
		r := e.c.Run(ctx, args...)
		t.Logf("dfp2p %s: exit %d\n%s%s", strings.Join(args[:len(args)-4], " "), r.ExitCode, r.Stdout, r.Stderr)
		return r
	}
	oneLine := func(r cluster.CLIResult, code int) {
		t.Helper()
		if r.ExitCode != code || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 || r.Stderr == "" {
			t.Fatalf("want exit %d with one line on stderr, got %d: %q", code, r.ExitCode, r.Stderr)
		}
	}

	r := cli(false, "ls")
	if r.ExitCode != 0 || !strings.Contains(r.Stdout, ida.Short()) || !strings.Contains(r.Stdout, idb.Short()) ||
		!strings.Contains(r.Stdout, "5/5") || !strings.Contains(r.Stdout, "2/2") {
		t.Fatalf("ls does not show both tasks")
	}
	for _, ref := range []string{ua, string(ida), ida.Short()} {
		r = cli(false, "stat", ref, "-o", "json")
		var tk client.Task
		if r.ExitCode != 0 || json.Unmarshal([]byte(r.Stdout), &tk) != nil || tk.ID != ida || !tk.Complete || tk.Bytes != 9<<20+7 {
			t.Fatalf("stat %s", ref)
		}
	}
	oneLine(cli(false, "stat", e.origin.FileURL("never-fetched.bin")), 1)
	oneLine(cli(false, "stat"), 2)
	// Without a token, a loopback caller may look but not change.
	oneLine(cli(false, "pin", ua), 1)
	oneLine(cli(false, "gc"), 1)

	if r = cli(true, "pin", ua); r.ExitCode != 0 || !strings.HasPrefix(r.Stdout, "pinned "+string(ida)) {
		t.Fatal("pin failed")
	}
	time.Sleep(3500 * time.Millisecond) // both tasks are past the 3 s TTL
	r = cli(true, "gc", "--dry-run")
	if r.ExitCode != 0 || !strings.Contains(r.Stdout, "would remove  "+idb.Short()) || strings.Contains(r.Stdout, ida.Short()) ||
		!strings.Contains(r.Stdout, "would free 3.0 MiB") {
		t.Fatal("gc --dry-run")
	}
	if r = cli(false, "ls"); !strings.Contains(r.Stdout, idb.Short()) {
		t.Fatal("gc --dry-run removed a task")
	}
	r = cli(true, "gc")
	if r.ExitCode != 0 || !strings.Contains(r.Stdout, "removed  "+idb.Short()) || !strings.Contains(r.Stdout, "freed 3.0 MiB") {
		t.Fatal("gc")
	}
	if r = cli(false, "ls"); strings.Contains(r.Stdout, idb.Short()) || !strings.Contains(r.Stdout, ida.Short()) {
		t.Fatal("after gc: the unpinned task must be gone and the pinned one stay")
	}
	if _, err := os.Stat(filepath.Join(d.DataDir, "tasks", string(idb))); !os.IsNotExist(err) {
		t.Fatalf("the removed task's dir is still there: %v", err)
	}
	oneLine(cli(false, "stat", ub), 1)

	// Rot piece 2 of a on disk (same size: only rehashing finds it).
	files, _ := filepath.Glob(filepath.Join(d.DataDir, "tasks", string(ida), "2-*"))
	if len(files) != 1 {
		t.Fatalf("piece files: %v", files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(b); i += 4096 {
		b[i] ^= 0x5a
	}
	if err := os.WriteFile(files[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	r = cli(true, "cache", "verify")
	oneLine(r, 1)
	if !strings.Contains(r.Stdout, "bad 1 [2]") || !strings.Contains(r.Stdout, "checked 5 pieces in 1 tasks: 1 bad, 1 dropped, 0 refetched") {
		t.Fatal("verify did not report the rotten piece")
	}
	if r = cli(false, "stat", string(ida), "-o", "json"); !strings.Contains(r.Stdout, `"complete": false`) {
		t.Fatal("the task is still complete after its piece was dropped")
	}
	originBefore := e.origin.BytesSent()
	r = cli(true, "cache", "verify", "--repair")
	if r.ExitCode != 0 || !strings.Contains(r.Stdout, "1 refetched") || !strings.Contains(r.Stdout, "0 incomplete") {
		t.Fatal("verify --repair")
	}
	t.Logf("the repair read %d bytes from the origin", e.origin.BytesSent()-originBefore)
	out := e.outPath("a-again.bin")
	if g := e.c.Get(ctx, ua, out, "--daemon", d.URL()); g.ExitCode != 0 {
		t.Fatalf("get after repair: %d %s", g.ExitCode, g.Stderr)
	}
	if got := sha256File(t, out); got != fa.SHA256 {
		t.Fatalf("after repair: sha256 %s, want %s", got, fa.SHA256)
	}
	if r = cli(true, "cache", "verify"); r.ExitCode != 0 || !strings.Contains(r.Stdout, "checked 5 pieces in 1 tasks: 0 bad") {
		t.Fatal("verify after repair is not clean")
	}
	if !d.Alive() {
		t.Fatal("daemon died")
	}
}
