//go:build !unix

package node

func numFDs() int { return 1 << 12 }
