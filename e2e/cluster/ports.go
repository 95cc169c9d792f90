package cluster

import (
	"fmt"
	"net"
)

// FixedListen returns a --listen value with loopback QUIC and TCP ports
// that are free now. A process restarted with it listens on the same
// addresses again (the harness's own addresses use port 0 and change on
// every restart), so a tracker's join token stays valid across restarts.
func FixedListen() (string, error) {
	u, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	udp := u.LocalAddr().(*net.UDPAddr).Port
	u.Close()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	tcp := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1,/ip4/127.0.0.1/tcp/%d", udp, tcp), nil
}
