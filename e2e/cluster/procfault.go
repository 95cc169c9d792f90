package cluster

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	ma "github.com/multiformats/go-multiaddr"
)

// BuildCommand compiles the command in the module's folder pkg (for example
// "./e2e/cmd/byzantine") into dir and returns the binary's path.
func BuildCommand(dir, pkg string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin, nil
}

func moduleRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cluster: cannot find the module root")
	}
	return filepath.Join(filepath.Dir(file), "..", ".."), nil
}

// StartCommand starts another binary as a cluster member on loopback:
// `bin ROLE --data-dir DIR --api 127.0.0.1:0 --listen ADDRS ARGS...`. Like
// dfp2p's own processes it must write DIR/addrs and DIR/api and answer
// /healthz; the cluster kills it on Close.
func (c *Cluster) StartCommand(bin, role string, args ...string) (*Proc, error) {
	return c.startBin(bin, nil, role, append([]string{"--listen", listenAddrs(nil)}, args...))
}

// PinPorts makes later Restarts listen on the libp2p addresses the process
// has now, so peers that know it by address (a tracker named in a join
// token) find it again after a restart.
func (p *Proc) PinPorts() error {
	var keep []string
	for _, a := range p.Addrs {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			return err
		}
		bare, _ := ma.SplitLast(m) // drop /p2p/ID
		keep = append(keep, bare.String())
	}
	i := slices.Index(p.args, "--listen")
	if i < 0 || i+1 >= len(p.args) {
		return fmt.Errorf("%s: no --listen argument to pin", p.Name)
	}
	p.args[i+1] = strings.Join(keep, ",")
	return nil
}
