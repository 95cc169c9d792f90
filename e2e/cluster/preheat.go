package cluster

import (
	"bytes"
	"context"
	"errors"
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
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), "QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING=true")
	start := time.Now()
	err := cmd.Run()
	res := PreheatResult{JobID: strings.TrimSpace(stdout.String()), Stderr: stderr.String(), Elapsed: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.ExitCode = ee.ExitCode()
	default:
		res.ExitCode = -1
		res.Stderr += err.Error()
	}
	return res
}

// PeerID is the process's libp2p peer ID (from its first multiaddr).
func (p *Proc) PeerID() string {
	if len(p.Addrs) == 0 {
		return ""
	}
	_, id, _ := strings.Cut(p.Addrs[0], "/p2p/")
	return id
}
