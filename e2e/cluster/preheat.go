package cluster

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// PreheatResult is the outcome of one `dfp2p preheat`.
type PreheatResult struct {
	ExitCode int
	JobID    string // what it printed on stdout
	Stderr   string
	Elapsed  time.Duration
}

// Preheat runs `dfp2p preheat TARGET` against tracker's API with the
// tracker's local token (DIR/api-token), plus extra arguments.
func (c *Cluster) Preheat(ctx context.Context, tracker *Proc, target string, extra ...string) PreheatResult {
	args := append([]string{"preheat", target, "--tracker-api", tracker.URL(),
		"--token-file", filepath.Join(tracker.DataDir, "api-token"), "--no-progress"}, extra...)
	cmd := exec.CommandContext(ctx, c.Bin, args...)
	cmd.Env = append(os.Environ(), "QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING=true")
	r := RunCommand(cmd)
	return PreheatResult{JobID: strings.TrimSpace(r.Stdout), ExitCode: r.ExitCode, Stderr: r.Stderr, Elapsed: r.Elapsed}
}

// PeerID is the process's libp2p peer ID (from its first multiaddr).
func (p *Proc) PeerID() string {
	if len(p.Addrs) == 0 {
		return ""
	}
	_, id, _ := strings.Cut(p.Addrs[0], "/p2p/")
	return id
}
