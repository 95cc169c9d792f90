//go:build !(linux || darwin || freebsd)

package store

import "errors"

func statfs(string) (int64, int64, error) {
	return 0, 0, errors.New("filesystem size unknown on this platform; use WithQuota")
}
