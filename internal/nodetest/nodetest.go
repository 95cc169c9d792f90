// Package nodetest builds libp2p hosts for the tests of packages that run on
// one (dht, exchange, swarm, crypto/member). It owns nothing else and must
// not be imported by product code.
package nodetest

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/host"

	"github.com/dfp2p/dfp2p/node"
)

// Host is a host listening on loopback QUIC, closed when the test ends.
func Host(t testing.TB) host.Host {
	t.Helper()
	h, err := node.New(node.WithListenAddrs("/ip4/127.0.0.1/udp/0/quic-v1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}
