package main

import (
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"time"
)

// UserspaceNetEnv is set (to "1") only by the local runner (cmd/sim). Under
// it the plan applies latency, jitter and loss itself, on egress, in a
// wrapper around QUIC's UDP socket, because the runner's kernel may lack
// netem. Real testground's sidecar applies netem, so the wrapper stays off
// there and shaping is never doubled.
const UserspaceNetEnv = "DFP2P_SIM_USERSPACE_NET"

func userspaceNet() bool { return os.Getenv(UserspaceNetEnv) == "1" }

// shape is the egress impairment a lossyConn applies.
type shape struct {
	Latency, Jitter time.Duration
	Loss            float64 // 0..1
	// Rules override the shape for destinations in a subnet (cross-region:
	// other regions' instances).
	Rules []rule
}

// rule is a per-destination shape (network.LinkRule's latency/jitter/loss).
type rule struct {
	net net.IPNet
	s   shape
}

func (s shape) zero() bool {
	return s.Latency == 0 && s.Jitter == 0 && s.Loss == 0 && len(s.Rules) == 0
}

// listenUDP returns the node.WithListenUDP function: plain sockets when the
// shape is zero, wrapped ones otherwise.
func listenUDP(s shape) func(network string, laddr *net.UDPAddr) (net.PacketConn, error) {
	return func(network string, laddr *net.UDPAddr) (net.PacketConn, error) {
		c, err := net.ListenUDP(network, laddr)
		if err != nil {
			return nil, err
		}
		if s.zero() {
			return c, nil
		}
		return newLossyConn(c, s), nil
	}
}

// lossyConn delays (latency ± jitter, FIFO) and drops (loss) outgoing
// datagrams. It holds the socket in a field and does not embed it, so quic-go
// sees a plain net.PacketConn and cannot take its OOB/GSO path around it.
// Each distinct shape (the default and each rule's) has its own FIFO lane,
// so a long inter-region delay never holds up intra-region packets.
type lossyConn struct {
	c      *net.UDPConn
	s      shape
	lanes  []*lane
	ruleLn []int // rule i uses lanes[ruleLn[i]]
	closed chan struct{}
	once   sync.Once
}

type lane struct {
	s  shape
	q  chan pkt
	mu sync.Mutex
	// last is the due time of the last queued packet: jitter never reorders.
	last time.Time
}

type pkt struct {
	b   []byte
	to  net.Addr
	due time.Time
}

func newLossyConn(c *net.UDPConn, s shape) *lossyConn {
	l := &lossyConn{c: c, s: s, closed: make(chan struct{})}
	type key struct {
		lat, jit time.Duration
		loss     float64
	}
	idx := map[key]int{}
	add := func(x shape) int {
		k := key{x.Latency, x.Jitter, x.Loss}
		if i, ok := idx[k]; ok {
			return i
		}
		idx[k] = len(l.lanes)
		l.lanes = append(l.lanes, &lane{s: shape{Latency: x.Latency, Jitter: x.Jitter, Loss: x.Loss}, q: make(chan pkt, 8192)})
		return len(l.lanes) - 1
	}
	add(s)
	for _, r := range s.Rules {
		l.ruleLn = append(l.ruleLn, add(r.s))
	}
	for _, ln := range l.lanes {
		go l.sendLoop(ln)
	}
	return l
}

func (l *lossyConn) sendLoop(ln *lane) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		var p pkt
		select {
		case p = <-ln.q:
		case <-l.closed:
			return
		}
		if d := time.Until(p.due); d > 0 {
			t.Reset(d)
			select {
			case <-t.C:
			case <-l.closed:
				return
			}
		}
		l.c.WriteTo(p.b, p.to) //nolint:errcheck // UDP: a lost datagram is a lost datagram
	}
}

// lane returns the lane for addr (the first matching rule's, else the default).
func (l *lossyConn) lane(addr net.Addr) *lane {
	if u, ok := addr.(*net.UDPAddr); ok {
		for i, r := range l.s.Rules {
			if r.net.Contains(u.IP) {
				return l.lanes[l.ruleLn[i]]
			}
		}
	}
	return l.lanes[0]
}

func (l *lossyConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ln := l.lane(addr)
	s := ln.s
	if s.Loss > 0 && rand.Float64() < s.Loss {
		return len(b), nil
	}
	d := s.Latency
	if s.Jitter > 0 {
		d += time.Duration((rand.Float64()*2 - 1) * float64(s.Jitter))
		if d < 0 {
			d = 0
		}
	}
	ln.mu.Lock()
	due := time.Now().Add(d)
	if due.Before(ln.last) {
		due = ln.last
	}
	ln.last = due
	ln.mu.Unlock()
	cp := append([]byte(nil), b...)
	select {
	case ln.q <- pkt{b: cp, to: addr, due: due}:
	case <-l.closed:
		return 0, net.ErrClosed
	default: // queue full: drop, as a full netem queue would
	}
	return len(b), nil
}

func (l *lossyConn) ReadFrom(b []byte) (int, net.Addr, error) { return l.c.ReadFrom(b) }
func (l *lossyConn) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.c.Close()
}
func (l *lossyConn) LocalAddr() net.Addr                { return l.c.LocalAddr() }
func (l *lossyConn) SetDeadline(t time.Time) error      { return l.c.SetDeadline(t) }
func (l *lossyConn) SetReadDeadline(t time.Time) error  { return l.c.SetReadDeadline(t) }
func (l *lossyConn) SetWriteDeadline(t time.Time) error { return l.c.SetWriteDeadline(t) }
func (l *lossyConn) SetReadBuffer(n int) error          { return l.c.SetReadBuffer(n) }
func (l *lossyConn) SetWriteBuffer(n int) error         { return l.c.SetWriteBuffer(n) }
