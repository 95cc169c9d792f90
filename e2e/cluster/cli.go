package cluster

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
)

// CLIResult is the outcome of one dfp2p command.
type CLIResult struct {
	ExitCode int
	Stdout   string
	Stderr   string
}

// Run runs the dfp2p binary with args on the host (no site) and returns
// its exit code and output.
func (c *Cluster) Run(ctx context.Context, args ...string) CLIResult {
	cmd := exec.CommandContext(ctx, c.Bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// Keep the caller's DFP2P_* settings out: the test says what it means.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DFP2P_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	err := cmd.Run()
	res := CLIResult{Stdout: stdout.String(), Stderr: stderr.String()}
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
