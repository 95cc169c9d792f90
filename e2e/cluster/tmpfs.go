package cluster

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// MountTmpfs mounts a tmpfs of size bytes on dir (created if needed; root
// needed) and returns the function that unmounts it, lazily if something
// still holds it open. Kill the processes using it before unmounting.
func MountTmpfs(dir string, size int64) (unmount func() error, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("mount tmpfs on %s: %v: %s", dir, err, strings.TrimSpace(string(out)))
	}
	return func() error {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			if out2, err2 := exec.Command("umount", "-l", dir).CombinedOutput(); err2 != nil {
				return fmt.Errorf("umount %s: %v: %s; lazy: %v: %s", dir, err, out, err2, out2)
			}
		}
		return nil
	}, nil
}

// MoveToTmpfs puts a stopped process's data dir on a tmpfs of size bytes:
// the dir's files move onto the new file system mounted in its place. Kill
// the process first; Restart it afterwards. The returned function unmounts
// (kill the process before calling it).
func (p *Proc) MoveToTmpfs(size int64) (unmount func() error, err error) {
	if p.Alive() {
		return nil, fmt.Errorf("%s is running", p.Name)
	}
	aside := p.DataDir + ".moved"
	if err := os.Rename(p.DataDir, aside); err != nil {
		return nil, err
	}
	unmount, err = MountTmpfs(p.DataDir, size)
	if err != nil {
		return nil, err
	}
	if out, err := exec.Command("cp", "-a", aside+"/.", p.DataDir+"/").CombinedOutput(); err != nil {
		_ = unmount()
		return nil, fmt.Errorf("copy %s onto the tmpfs: %v: %s", p.DataDir, err, out)
	}
	return unmount, os.RemoveAll(aside)
}
