package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/dfp2p/dfp2p/e2e/cluster"
)

// The files `dfp2p config default` writes start a real tracker and daemon
// (the harness's flags override only the addresses and data dirs), and
// `config validate` accepts them.
func TestConfigDefaultStarts(t *testing.T) {
	e := newEnv(t)
	cfg := map[string]string{}
	for _, role := range []string{"tracker", "daemon"} {
		out, err := exec.Command(bin, "config", "default", role).Output()
		if err != nil {
			t.Fatalf("config default %s: %v", role, err)
		}
		cfg[role] = filepath.Join(e.dir, role+".yaml")
		if err := os.WriteFile(cfg[role], out, 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(bin, "config", "validate", "--for", role, cfg[role]).CombinedOutput(); err != nil || string(out) != "ok\n" {
			t.Fatalf("config validate %s: %v\n%s", role, err, out)
		}
	}
	tr, err := e.c.StartTracker("--config", cfg["tracker"])
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.c.StartDaemon([]*cluster.Proc{tr}, "--config", cfg["daemon"])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.origin.Generate("cfg.bin", 1<<20, 7); err != nil {
		t.Fatal(err)
	}
	if r := e.c.Get(t.Context(), e.origin.FileURL("cfg.bin"), filepath.Join(e.dir, "out"), "--daemon", d.URL()); r.ExitCode != 0 {
		t.Fatalf("get through the daemon: exit %d: %s", r.ExitCode, r.Stderr)
	}
}
