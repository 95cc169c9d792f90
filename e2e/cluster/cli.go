package cluster

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"time"
)

// CLIResult is the outcome of one dfp2p command.
type CLIResult struct {
	ExitCode int // -1 when it could not run (the reason is appended to Stderr)
	Stdout   string
	Stderr   string
	Elapsed  time.Duration
}

// Run runs the dfp2p binary with args on the host (no site) and returns
// its exit code and output.
func (c *Cluster) Run(ctx context.Context, args ...string) CLIResult {
	cmd := exec.CommandContext(ctx, c.Bin, args...)
	// Keep the caller's DFP2P_* settings out: the test says what it means.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DFP2P_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	return RunCommand(cmd)
}

// RunCommand runs cmd to the end and returns what it printed, its exit code
// and how long it took.
func RunCommand(cmd *exec.Cmd) CLIResult {
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	res := CLIResult{Stdout: stdout.String(), Stderr: stderr.String(), Elapsed: time.Since(start)}
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
