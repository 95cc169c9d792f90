//go:build unix

package node

import "syscall"

// numFDs returns the soft limit on open file descriptors.
func numFDs() int {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil || l.Cur > 1<<20 {
		return 1 << 16
	}
	return int(l.Cur)
}
