//go:build linux || darwin || freebsd

package store

import "syscall"

// statfs returns the bytes used on the filesystem holding dir and its size as
// df reports them (size = used + available to unprivileged users).
func statfs(dir string) (used, capacity int64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	bs := int64(st.Bsize)
	used = (int64(st.Blocks) - int64(st.Bfree)) * bs
	return used, used + int64(st.Bavail)*bs, nil
}
