package cluster

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/dfp2p/dfp2p/proxy/setup"
)

// Containerd is a real containerd (1.6) with its own root, state, socket and
// config in a temp dir: the CRI and the storage plugins that need special
// file systems are off; images unpack with overlayfs where the kernel allows
// it, else with the native (copying) snapshotter. Pulls go through ctr with
// a hosts dir (`--hosts-dir`), so registry mirrors are configured exactly as
// on a real node (hosts.toml).
type Containerd struct {
	Name string
	// Dir holds root/, state/, hosts.d/ and config.toml.
	Dir, Root, State, HostsDir string
	// Socket is the gRPC address (a short path in its own temp dir).
	Socket  string
	LogPath string
	// Namespace is the containerd namespace pulls use.
	Namespace string
	// Snapshotter is "overlayfs" or "native".
	Snapshotter string

	ctr     string
	sockDir string
	proc    *extProc
}

// StartContainerd starts containerd with its data under dir and its log at
// logDir/NAME.log, and waits until it answers.
func StartContainerd(dir, logDir, name string) (*Containerd, error) {
	bin, err := exec.LookPath("containerd")
	if err != nil {
		return nil, fmt.Errorf("containerd not found (install the Debian package containerd; `make deps` does): %w", err)
	}
	ctr, err := exec.LookPath("ctr")
	if err != nil {
		return nil, fmt.Errorf("ctr not found (it comes with the Debian package containerd): %w", err)
	}
	c := &Containerd{Name: name, Dir: dir, Root: filepath.Join(dir, "root"), State: filepath.Join(dir, "state"),
		HostsDir: filepath.Join(dir, "hosts.d"), LogPath: filepath.Join(logDir, name+".log"), Namespace: "dfp2p-e2e", ctr: ctr}
	for _, d := range []string{c.Root, c.State, c.HostsDir, logDir} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, err
		}
	}
	// A unix socket path must fit in 108 bytes; test temp dirs can be long.
	if c.sockDir, err = os.MkdirTemp("", "ctrd-"); err != nil {
		return nil, err
	}
	c.Socket = filepath.Join(c.sockDir, "containerd.sock")
	conf := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.internal.v1.opt",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = %q

[ttrpc]
  address = %q

[debug]
  level = "info"

[metrics]
  address = ""
`, c.Root, c.State, c.Socket, c.Socket+".ttrpc")
	confPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		c.cleanup()
		return nil, err
	}
	if c.proc, err = startExt(name, c.LogPath, bin, "--config", confPath); err != nil {
		c.cleanup()
		return nil, err
	}
	if err := c.waitReady(20 * time.Second); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Containerd) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var out string
	var err error
	for time.Now().Before(deadline) {
		if c.proc.exited() {
			return fmt.Errorf("%s exited during start-up (%v); log:\n%s", c.Name, c.proc.err(), tailFile(c.LogPath, 30))
		}
		if _, serr := os.Stat(c.Socket); serr == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			out, err = c.Ctr(ctx, "plugins", "ls")
			cancel()
			if err == nil {
				// Prefer overlayfs (no copies); containerd's plugin loader
				// has already tried an overlay mount. DFP2P_E2E_SNAPSHOTTER
				// forces one.
				c.Snapshotter = "native"
				for _, line := range strings.Split(out, "\n") {
					f := strings.Fields(line)
					if len(f) >= 4 && f[0] == "io.containerd.snapshotter.v1" && f[1] == "overlayfs" && f[len(f)-1] == "ok" {
						c.Snapshotter = "overlayfs"
					}
				}
				switch s := os.Getenv("DFP2P_E2E_SNAPSHOTTER"); s {
				case "":
				case "native", "overlayfs":
					c.Snapshotter = s
				default:
					return fmt.Errorf("DFP2P_E2E_SNAPSHOTTER=%q: want native or overlayfs", s)
				}
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %s (last ctr: %v %s); log:\n%s", c.Name, timeout, err, out, tailFile(c.LogPath, 30))
}

// Ctr runs `ctr -a SOCKET -n NAMESPACE args...` and returns its combined output.
func (c *Containerd) Ctr(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, c.ctr, append([]string{"-a", c.Socket, "-n", c.Namespace}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr %s: %w\n%s", strings.Join(args, " "), err, lastLines(string(out), 25))
	}
	return string(out), nil
}

// lastLines keeps the end of ctr's output (pull prints a progress table per tick).
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Mirror sets up hosts.d/REGISTRY/hosts.toml the way an operator would: a
// file naming the plain-HTTP registry, then `dfp2p init containerd` (the
// proxy/setup package) merges in the mirror. Pulls and resolves go to
// mirrorURL (a dfp2p daemon's proxy) first, then to serverURL.
func (c *Containerd) Mirror(registryHost, mirrorURL, serverURL string) error {
	d := filepath.Join(c.HostsDir, registryHost)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	// The operator's own hosts.toml for a plain-HTTP registry...
	if err := os.WriteFile(filepath.Join(d, "hosts.toml"), []byte(fmt.Sprintf("server = %q\n", serverURL)), 0o644); err != nil {
		return err
	}
	// ...into which `dfp2p init containerd` merges the mirror, exactly as on
	// a real host, so containerd here reads what the product writes.
	_, err := setup.Containerd(setup.ContainerdOptions{ConfigPath: c.HostsDir, Registries: []string{registryHost}, Proxy: mirrorURL})
	return err
}

// Pull runs `ctr images pull` (which fetches and unpacks) with the hosts dir
// and, if creds is not "", `--user creds`.
func (c *Containerd) Pull(ctx context.Context, ref, creds string) (string, error) {
	args := []string{"images", "pull", "--hosts-dir", c.HostsDir, "--plain-http", "--snapshotter", c.Snapshotter}
	if creds != "" {
		args = append(args, "--user", creds)
	}
	return c.Ctr(ctx, append(args, ref)...)
}

// CheckUnpacked verifies that ref is a complete image in the content store,
// unpacked for the snapshotter, and that every layer's file sits in a
// snapshot with the right size and sha256.
func (c *Containerd) CheckUnpacked(ctx context.Context, ref string, img *Image) error {
	out, err := c.Ctr(ctx, "images", "check", "--snapshotter", c.Snapshotter)
	if err != nil {
		return err
	}
	found := false
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != ref {
			continue
		}
		found = true
		// REF TYPE DIGEST STATUS SIZE UNPACKED; STATUS is "complete (N/N)".
		if !strings.Contains(line, "complete") || f[len(f)-1] != "true" {
			return fmt.Errorf("%s: image %s not complete and unpacked: %s", c.Name, ref, line)
		}
	}
	if !found {
		return fmt.Errorf("%s: image %s missing from `ctr images check`:\n%s", c.Name, ref, out)
	}
	snaps := filepath.Join(c.Root, "io.containerd.snapshotter.v1."+c.Snapshotter, "snapshots")
	entries, err := os.ReadDir(snaps)
	if err != nil {
		return err
	}
	for _, l := range img.Layers {
		var path string
		for _, e := range entries {
			p := filepath.Join(snaps, e.Name(), l.File)
			if c.Snapshotter == "overlayfs" {
				p = filepath.Join(snaps, e.Name(), "fs", l.File)
			}
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				path = p
				break
			}
		}
		if path == "" {
			return fmt.Errorf("%s: layer %s: %s is in no snapshot under %s", c.Name, shortDigest(l.Digest), l.File, snaps)
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		h := sha256.New()
		n, err := io.Copy(h, f)
		f.Close()
		if err != nil {
			return err
		}
		if got := hex.EncodeToString(h.Sum(nil)); n != l.FileSize || got != l.FileSHA256 {
			return fmt.Errorf("%s: unpacked %s: %d bytes sha256 %s, want %d bytes %s", c.Name, path, n, got, l.FileSize, l.FileSHA256)
		}
	}
	return nil
}

// Close stops containerd (SIGTERM, then SIGKILL), unmounts anything left
// mounted under its dir and removes its socket dir. Dir itself is the
// caller's.
func (c *Containerd) Close() error {
	var err error
	if c.proc != nil {
		err = c.proc.stop(5 * time.Second)
	}
	c.cleanup()
	return err
}

func (c *Containerd) cleanup() {
	unmountUnder(c.Dir)
	if c.sockDir != "" {
		_ = os.RemoveAll(c.sockDir)
	}
}

// unmountUnder lazily unmounts every mount point below dir, deepest first.
func unmountUnder(dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	prefix := filepath.Clean(dir) + "/"
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], prefix) {
			points = append(points, fields[4])
		}
	}
	for i := len(points) - 1; i >= 0; i-- {
		if err := syscall.Unmount(points[i], syscall.MNT_DETACH); err != nil && !errors.Is(err, fs.ErrNotExist) {
			continue
		}
	}
}
