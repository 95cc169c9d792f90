package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/dfp2p/dfp2p/crypto"
	"github.com/dfp2p/dfp2p/crypto/member"
	"github.com/dfp2p/dfp2p/node"
)

// Hostile is a real libp2p host for bad-input tests: it connects to a
// running dfp2p process and writes arbitrary bytes on its protocols. With a
// certificate from the cluster CA it is a member (its streams pass the
// membership gate); without, it is an outsider.
type Hostile struct {
	Host    host.Host
	members *member.Members
}

// NewHostile starts a hostile host on loopback QUIC. caKey is the cluster
// CA's key file (Cluster.CAKey): with it the host issues itself a peer
// certificate and runs the certificate exchange like a daemon; with "" it
// is not a member.
func NewHostile(caKey string) (*Hostile, error) {
	h, err := node.New(node.WithListenAddrs("/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		return nil, err
	}
	x := &Hostile{Host: h}
	if caKey == "" {
		return x, nil
	}
	ca, err := crypto.LoadCA(caKey)
	if err != nil {
		h.Close()
		return nil, err
	}
	cert, err := ca.Issue(h.ID(), crypto.RolePeer, time.Hour, time.Now())
	if err != nil {
		h.Close()
		return nil, err
	}
	m, err := member.New(h, ca.Public())
	if err != nil {
		h.Close()
		return nil, err
	}
	if err := m.SetCertificate(cert); err != nil {
		m.Close()
		h.Close()
		return nil, err
	}
	x.members = m
	return x, nil
}

// Close stops the host.
func (x *Hostile) Close() {
	if x.members != nil {
		x.members.Close()
	}
	x.Host.Close()
}

// CAKey is the cluster CA key file of the first closed tracker ("" when
// none was started).
func (c *Cluster) CAKey() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.caKey
}

// Connect connects to p and returns its peer ID.
func (x *Hostile) Connect(ctx context.Context, p *Proc) (peer.ID, error) {
	var info *peer.AddrInfo
	for _, a := range p.Addrs {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			return "", err
		}
		ai, err := peer.AddrInfoFromP2pAddr(m)
		if err != nil {
			return "", err
		}
		if info == nil {
			info = ai
		} else {
			info.Addrs = append(info.Addrs, ai.Addrs...)
		}
	}
	if info == nil {
		return "", fmt.Errorf("%s has no addresses", p.Name)
	}
	if err := x.Host.Connect(ctx, *info); err != nil {
		return "", err
	}
	return info.ID, nil
}

// Outcome is how the remote side ended one hostile stream.
type Outcome struct {
	// Opened is false when the stream could not be opened at all (the
	// protocol was refused during negotiation).
	Opened bool
	// Reset: the remote reset the stream (or the connection) before or
	// after answering.
	Reset bool
	// Answer is what the remote wrote (at most 64 KiB kept).
	Answer []byte
	// TimedOut: the remote neither answered to the end nor reset within
	// the wait; the remote is holding the stream.
	TimedOut bool
	Elapsed  time.Duration
	Err      error
}

func (o Outcome) String() string {
	switch {
	case !o.Opened:
		return fmt.Sprintf("not opened (%v)", o.Err)
	case o.TimedOut:
		return fmt.Sprintf("held open after %s", o.Elapsed.Round(time.Millisecond))
	case o.Reset:
		return fmt.Sprintf("reset after %s (answer %d bytes)", o.Elapsed.Round(time.Millisecond), len(o.Answer))
	default:
		return fmt.Sprintf("closed after %s with %d bytes: %.120q", o.Elapsed.Round(time.Millisecond), len(o.Answer), o.Answer)
	}
}

// Send opens a stream of proto to pid, writes payload, and, unless hold is
// set, closes its write side. With hold the stream stays half-written, as a
// slow-loris client would leave it. It then reads until the remote closes
// or resets the stream, or wait passes.
func (x *Hostile) Send(ctx context.Context, pid peer.ID, proto protocol.ID, payload []byte, hold bool, wait time.Duration) Outcome {
	start := time.Now()
	s, err := x.Host.NewStream(ctx, pid, proto)
	if err != nil {
		return Outcome{Err: err, Elapsed: time.Since(start)}
	}
	o := Outcome{Opened: true}
	defer s.Reset()
	_ = s.SetDeadline(time.Now().Add(wait))
	if len(payload) > 0 {
		if _, err := s.Write(payload); err != nil {
			o.Reset, o.Err, o.Elapsed = true, err, time.Since(start)
			return o
		}
	}
	if !hold {
		_ = s.CloseWrite()
	}
	b, err := io.ReadAll(io.LimitReader(bufio.NewReader(s), 64<<10))
	o.Answer, o.Elapsed = b, time.Since(start)
	var ne interface{ Timeout() bool }
	switch {
	case err == nil:
	case errors.Is(err, network.ErrReset), errors.Is(err, network.ErrResourceLimitExceeded):
		o.Reset = true
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, os.ErrDeadlineExceeded):
		o.TimedOut = true
	default:
		// Stream or connection errors (QUIC application errors on reset).
		o.Reset, o.Err = true, err
	}
	return o
}
