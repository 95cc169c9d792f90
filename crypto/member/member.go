// Package member runs cluster membership on a libp2p host: it exchanges
// membership certificates with every peer right after connecting, keeps the
// verified ones, and gates protocol handlers so that a peer without a valid,
// unexpired, unrevoked certificate from the cluster CA is refused. It also
// runs the join protocol (a tracker issues certificates to daemons that prove
// the join secret, renews them and hands out the revocation list) and the
// Keeper that obtains and renews a node's own certificate.
//
// A PSK private network would be the libp2p way to close a cluster, but it
// does not work with QUIC, so membership is checked above the transport:
// connections are still made (encrypted, authenticated by peer ID), and every
// dfp2p protocol (tracker, exchange, status, DHT) refuses streams from
// non-members.
//
// It owns the protocols /dfp2p/member/1.0.0 and /dfp2p/join/1.0.0. It must
// not schedule, move pieces or decide what a member may fetch; formats and
// signatures are package crypto's.
package member

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/dfp2p/dfp2p/crypto"
	"github.com/dfp2p/dfp2p/internal/wire"
)

// ProtocolID is the certificate exchange: the opener sends its certificate,
// the other side verifies it and answers with its own.
const ProtocolID protocol.ID = "/dfp2p/member/1.0.0"

const (
	// maxCertMsg bounds one certificate message.
	maxCertMsg = crypto.MaxCertificateSize + 256
	// certWait is how long a gated stream waits for its peer's certificate.
	certWait = 5 * time.Second
	// ioTimeout bounds one exchange.
	ioTimeout = 10 * time.Second
	// maxPushes bounds concurrent certificate pushes.
	maxPushes = 32
)

// ErrNotMember is returned when a peer has no valid certificate.
var ErrNotMember = errors.New("member: peer has no valid membership certificate")

type certMsg struct {
	Cert []byte `json:"cert,omitempty"`
}

// Members tracks which connected peers are members. With a nil CA it is an
// open cluster: everyone is allowed and no certificates are exchanged.
type Members struct {
	h   host.Host
	ca  ed25519.PublicKey
	log *slog.Logger
	now func() time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sem    chan struct{}

	refused atomic.Int64

	mu       sync.Mutex
	own      []byte // encoded own certificate
	ownCert  *crypto.Certificate
	peers    map[peer.ID]*crypto.Certificate
	inflight map[peer.ID]chan struct{} // exchanges under way
	revoked  *crypto.RevocationList
}

// Option configures New.
type Option func(*Members)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(m *Members) { m.log = l } }

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(m *Members) { m.now = now } }

// New starts membership on h for the cluster whose CA is ca (nil: open
// cluster). Close stops it.
func New(h host.Host, ca ed25519.PublicKey, opts ...Option) (*Members, error) {
	m := &Members{h: h, ca: ca, log: slog.New(slog.DiscardHandler), now: time.Now,
		sem: make(chan struct{}, maxPushes), peers: map[peer.ID]*crypto.Certificate{}, inflight: map[peer.ID]chan struct{}{}}
	for _, o := range opts {
		o(m)
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	if m.Open() {
		return m, nil
	}
	sub, err := h.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		return nil, fmt.Errorf("member: %w", err)
	}
	h.SetStreamHandler(ProtocolID, m.handle)
	m.wg.Add(1)
	go m.watch(sub)
	return m, nil
}

// Open reports whether this is an open cluster (no membership checks).
func (m *Members) Open() bool { return m.ca == nil }

// CA is the cluster CA's public key (nil when open).
func (m *Members) CA() ed25519.PublicKey { return m.ca }

// Refused counts streams refused because the peer was not a member.
func (m *Members) Refused() int64 { return m.refused.Load() }

// Close stops the exchanges and removes the handler.
func (m *Members) Close() {
	m.cancel()
	if !m.Open() {
		m.h.RemoveStreamHandler(ProtocolID)
	}
	m.wg.Wait()
}

// Certificate is this node's own certificate, or nil.
func (m *Members) Certificate() *crypto.Certificate {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ownCert
}

// SetCertificate installs this node's (new or renewed) certificate and sends
// it to every connected peer, so that none drops this node when the old one
// expires.
func (m *Members) SetCertificate(c *crypto.Certificate) error {
	if m.Open() {
		return nil
	}
	if err := c.Verify(m.ca, m.h.ID(), m.now()); err != nil {
		return fmt.Errorf("member: own certificate: %w", err)
	}
	b, err := c.Encode()
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.own, m.ownCert = b, c
	m.mu.Unlock()
	for _, p := range m.h.Network().Peers() {
		m.push(p)
	}
	return nil
}

// SetRevocations installs a revocation list signed by the CA and disconnects
// the revoked peers.
func (m *Members) SetRevocations(rl *crypto.RevocationList) error {
	if m.Open() || rl == nil {
		return nil
	}
	if err := rl.Verify(m.ca); err != nil {
		return fmt.Errorf("member: revocation list: %w", err)
	}
	m.mu.Lock()
	if m.revoked != nil && rl.Issued.Before(m.revoked.Issued) {
		m.mu.Unlock()
		return nil // older than what we have
	}
	m.revoked = rl
	var drop []peer.ID
	for p := range m.peers {
		if rl.Has(p) {
			drop = append(drop, p)
			delete(m.peers, p)
		}
	}
	m.mu.Unlock()
	for _, p := range drop {
		m.log.Warn("member: peer revoked; disconnecting", "peer", p)
		_ = m.h.Network().ClosePeer(p)
	}
	return nil
}

// Revocations is the revocation list in force, or nil.
func (m *Members) Revocations() *crypto.RevocationList {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.revoked
}

// Role is p's verified role, if p is a member now.
func (m *Members) Role(p peer.ID) (crypto.Role, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.validLocked(p)
	if c == nil {
		return "", false
	}
	return c.Role, true
}

func (m *Members) validLocked(p peer.ID) *crypto.Certificate {
	c := m.peers[p]
	if c == nil {
		return nil
	}
	if m.now().After(c.NotAfter) || (m.revoked != nil && m.revoked.Has(p)) {
		delete(m.peers, p)
		return nil
	}
	return c
}

// Allowed reports whether p is a member, asking p for its certificate (and
// waiting up to ctx or certWait) if it has not sent a valid one yet.
func (m *Members) Allowed(ctx context.Context, p peer.ID) bool {
	if m.Open() || p == m.h.ID() {
		return true
	}
	if _, ok := m.Role(p); ok {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, certWait)
	defer cancel()
	// Twice: the first may only have waited for an exchange already under
	// way, which the peer may have answered before it held a certificate
	// (it connected, then joined).
	for range 2 {
		_ = m.exchange(ctx, p)
		if _, ok := m.Role(p); ok {
			return true
		}
	}
	return false
}

// Gate wraps a stream handler so that streams from non-members are reset.
func (m *Members) Gate(h network.StreamHandler) network.StreamHandler {
	if m.Open() {
		return h
	}
	return func(s network.Stream) {
		p := s.Conn().RemotePeer()
		if !m.Allowed(m.ctx, p) {
			m.refused.Add(1)
			m.log.Info("member: refused a stream from a non-member", "peer", p, "protocol", s.Protocol())
			_ = s.Reset()
			return
		}
		h(s)
	}
}

// Host returns h with every stream handler set through it gated. Give it to
// libraries that register their own handlers (the DHT).
func (m *Members) Host() host.Host {
	if m.Open() {
		return m.h
	}
	return &gatedHost{Host: m.h, m: m}
}

type gatedHost struct {
	host.Host
	m *Members
}

func (g *gatedHost) SetStreamHandler(pid protocol.ID, h network.StreamHandler) {
	g.Host.SetStreamHandler(pid, g.m.Gate(h))
}

func (g *gatedHost) SetStreamHandlerMatch(pid protocol.ID, match func(protocol.ID) bool, h network.StreamHandler) {
	g.Host.SetStreamHandlerMatch(pid, match, g.m.Gate(h))
}

// watch pushes this node's certificate to every peer that connects.
func (m *Members) watch(sub event.Subscription) {
	defer m.wg.Done()
	defer sub.Close()
	for {
		select {
		case <-m.ctx.Done():
			return
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			ev := e.(event.EvtPeerConnectednessChanged)
			switch ev.Connectedness {
			case network.Connected:
				m.push(ev.Peer)
			case network.NotConnected:
				m.mu.Lock()
				delete(m.peers, ev.Peer)
				m.mu.Unlock()
			}
		}
	}
}

// push runs an exchange with p in the background, if a slot is free (a
// peer that is missed asks for it through Allowed).
func (m *Members) push(p peer.ID) {
	select {
	case m.sem <- struct{}{}:
	default:
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer func() { <-m.sem }()
		ctx, cancel := context.WithTimeout(m.ctx, ioTimeout)
		defer cancel()
		if err := m.exchange(ctx, p); err != nil {
			m.log.Debug("member: certificate exchange failed", "peer", p, "err", err)
		}
	}()
}

// exchange sends our certificate to p and verifies the one p answers with.
// Concurrent exchanges with one peer share one stream.
func (m *Members) exchange(ctx context.Context, p peer.ID) error {
	m.mu.Lock()
	if ch, ok := m.inflight[p]; ok {
		m.mu.Unlock()
		select {
		case <-ch:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	ch := make(chan struct{})
	m.inflight[p] = ch
	own := m.own
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.inflight, p)
		m.mu.Unlock()
		close(ch)
	}()
	var resp certMsg
	if err := m.roundTrip(network.WithAllowLimitedConn(ctx, "member"), p, ProtocolID, certMsg{Cert: own}, maxCertMsg, &resp); err != nil {
		return err
	}
	return m.accept(p, resp.Cert)
}

// roundTrip sends req to p on a new stream of proto and reads one answer of
// at most max bytes into resp, all within ioTimeout.
func (m *Members) roundTrip(ctx context.Context, p peer.ID, proto protocol.ID, req any, max int, resp any) error {
	s, err := m.h.NewStream(ctx, p, proto)
	if err != nil {
		return err
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(ioTimeout))
	if err := wire.WriteMsg(s, req); err != nil {
		_ = s.Reset()
		return err
	}
	if err := wire.ReadMsg(bufio.NewReader(s), max, resp); err != nil {
		_ = s.Reset()
		return err
	}
	return nil
}

// handle answers an exchange: it verifies the opener's certificate and
// sends ours.
func (m *Members) handle(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(ioTimeout))
	var req certMsg
	if err := wire.ReadMsg(bufio.NewReader(s), maxCertMsg, &req); err != nil {
		_ = s.Reset()
		return
	}
	p := s.Conn().RemotePeer()
	if err := m.accept(p, req.Cert); err != nil {
		m.log.Debug("member: peer's certificate refused", "peer", p, "err", err)
	}
	m.mu.Lock()
	own := m.own
	m.mu.Unlock()
	if err := wire.WriteMsg(s, certMsg{Cert: own}); err != nil {
		_ = s.Reset()
	}
}

// accept verifies a certificate p sent and records it.
func (m *Members) accept(p peer.ID, b []byte) error {
	if len(b) == 0 {
		return ErrNotMember
	}
	c, err := crypto.DecodeCertificate(b)
	if err != nil {
		return err
	}
	if err := c.Verify(m.ca, p, m.now()); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.revoked != nil && m.revoked.Has(p) {
		return crypto.ErrRevoked
	}
	if cur := m.peers[p]; cur == nil || c.NotAfter.After(cur.NotAfter) {
		m.peers[p] = c
	}
	return nil
}
