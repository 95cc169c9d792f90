package member

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/dfp2p/dfp2p/crypto"
	"github.com/dfp2p/dfp2p/internal/wire"
)

// JoinProtocolID is the join protocol a tracker serves:
//
//	request  {"type":"join","proof":"<base64>"}  proof = crypto.JoinProof(secret, member, tracker)
//	         {"type":"renew"}                    from a member: a new certificate, same role
//	         {"type":"crl"}                      from a member: the revocation list
//	response {"cert":"<base64 certificate>"} | {"crl":"<base64 list>"} | {"error":"..."}
//
// One request and one response per stream, each at most maxJoinMsg bytes,
// within ioTimeout.
const JoinProtocolID protocol.ID = "/dfp2p/join/1.0.0"

// maxJoinMsg bounds join messages (a revocation list may be long).
const maxJoinMsg = 1 << 20

type joinReq struct {
	Type  string `json:"type"`
	Proof []byte `json:"proof,omitempty"`
}

type joinResp struct {
	Cert  []byte `json:"cert,omitempty"`
	CRL   []byte `json:"crl,omitempty"`
	Error string `json:"error,omitempty"`
}

// Issuer serves the join protocol for a tracker that holds the cluster CA.
type Issuer struct {
	m      *Members
	ca     *crypto.CA
	secret []byte
	ttl    time.Duration
	crl    func() *crypto.RevocationList
}

// ServeJoin registers the join protocol on m's host: peers that prove secret
// get a certificate with role peer valid for ttl; members renew theirs and
// fetch the revocation list crl returns (may return nil).
func ServeJoin(m *Members, ca *crypto.CA, secret []byte, ttl time.Duration, crl func() *crypto.RevocationList) *Issuer {
	is := &Issuer{m: m, ca: ca, secret: secret, ttl: ttl, crl: crl}
	m.h.SetStreamHandler(JoinProtocolID, is.handle)
	return is
}

// Close removes the handler.
func (is *Issuer) Close() { is.m.h.RemoveStreamHandler(JoinProtocolID) }

func (is *Issuer) handle(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(ioTimeout))
	var req joinReq
	if err := wire.ReadMsg(bufio.NewReader(s), maxJoinMsg, &req); err != nil {
		_ = s.Reset()
		return
	}
	p := s.Conn().RemotePeer()
	resp := is.answer(p, &req)
	if resp.Error != "" {
		is.m.log.Info("member: join request refused", "peer", p, "type", req.Type, "err", resp.Error)
	}
	if err := wire.WriteMsg(s, resp); err != nil {
		_ = s.Reset()
	}
}

func (is *Issuer) answer(p peer.ID, req *joinReq) joinResp {
	m := is.m
	now := m.now()
	if rl := m.Revocations(); rl != nil && rl.Has(p) {
		return joinResp{Error: "revoked"}
	}
	issue := func(role crypto.Role) joinResp {
		c, err := is.ca.Issue(p, role, is.ttl, now)
		if err != nil {
			return joinResp{Error: err.Error()}
		}
		b, err := c.Encode()
		if err != nil {
			return joinResp{Error: err.Error()}
		}
		return joinResp{Cert: b}
	}
	switch req.Type {
	case "join":
		if !crypto.CheckJoinProof(is.secret, p, m.h.ID(), req.Proof) {
			return joinResp{Error: "wrong join secret"}
		}
		return issue(crypto.RolePeer)
	case "renew":
		if !m.Allowed(m.ctx, p) {
			return joinResp{Error: "not a member"}
		}
		role, _ := m.Role(p)
		return issue(role)
	case "crl":
		if !m.Allowed(m.ctx, p) {
			return joinResp{Error: "not a member"}
		}
		rl := is.crl()
		if rl == nil {
			return joinResp{}
		}
		b, err := rl.Encode()
		if err != nil {
			return joinResp{Error: err.Error()}
		}
		return joinResp{CRL: b}
	}
	return joinResp{Error: fmt.Sprintf("unknown request type %q", req.Type)}
}

// call sends one join request to tracker and returns the response.
func call(ctx context.Context, m *Members, tracker peer.ID, req joinReq) (*joinResp, error) {
	ctx, cancel := context.WithTimeout(ctx, ioTimeout)
	defer cancel()
	var resp joinResp
	if err := m.roundTrip(ctx, tracker, JoinProtocolID, req, maxJoinMsg, &resp); err != nil {
		return nil, err
	}
	if resp.Error != "" {
		return nil, fmt.Errorf("tracker %s: %s", tracker, resp.Error)
	}
	return &resp, nil
}

// certFrom decodes and checks a certificate a tracker issued to this node.
func certFrom(m *Members, resp *joinResp) (*crypto.Certificate, error) {
	c, err := crypto.DecodeCertificate(resp.Cert)
	if err != nil {
		return nil, err
	}
	if err := c.Verify(m.ca, m.h.ID(), m.now()); err != nil {
		return nil, err
	}
	return c, nil
}

// Source obtains certificates and revocation lists for a Keeper.
type Source interface {
	// Certificate returns a new certificate for this node; current is the
	// one it holds (nil at first).
	Certificate(ctx context.Context, current *crypto.Certificate) (*crypto.Certificate, error)
	// Revocations returns the current revocation list (nil if none).
	Revocations(ctx context.Context) (*crypto.RevocationList, error)
}

// Trackers is the Source of a daemon: it joins through the trackers with
// the join secret, then renews with its certificate.
type Trackers struct {
	M        *Members
	Trackers []peer.ID // their addresses must be in the peerstore
	Secret   []byte    // from the join token; nil once unknown
}

// Certificate renews current with a tracker, or joins with the secret.
func (t *Trackers) Certificate(ctx context.Context, current *crypto.Certificate) (*crypto.Certificate, error) {
	var errs []error
	for _, tr := range t.Trackers {
		if current != nil && !t.M.now().After(current.NotAfter) {
			resp, err := call(ctx, t.M, tr, joinReq{Type: "renew"})
			if err == nil {
				return certFrom(t.M, resp)
			}
			errs = append(errs, err)
		}
		if len(t.Secret) > 0 {
			resp, err := call(ctx, t.M, tr, joinReq{Type: "join", Proof: crypto.JoinProof(t.Secret, t.M.h.ID(), tr)})
			if err == nil {
				return certFrom(t.M, resp)
			}
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		return nil, errors.New("member: no tracker to join through")
	}
	return nil, fmt.Errorf("member: joining the cluster: %w", errors.Join(errs...))
}

// Revocations fetches the list from the first tracker that answers.
func (t *Trackers) Revocations(ctx context.Context) (*crypto.RevocationList, error) {
	var errs []error
	for _, tr := range t.Trackers {
		resp, err := call(ctx, t.M, tr, joinReq{Type: "crl"})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(resp.CRL) == 0 {
			return nil, nil
		}
		return crypto.DecodeRevocationList(resp.CRL)
	}
	return nil, errors.Join(errs...)
}

// Self is the Source of a node that holds the CA (a tracker): it issues its
// own certificate and reads the revocation list from CRL (may return nil).
type Self struct {
	CA   *crypto.CA
	ID   peer.ID
	Role crypto.Role
	TTL  time.Duration
	CRL  func() *crypto.RevocationList
}

// Certificate issues a new certificate for s.ID.
func (s *Self) Certificate(_ context.Context, _ *crypto.Certificate) (*crypto.Certificate, error) {
	return s.CA.Issue(s.ID, s.Role, s.TTL, time.Now())
}

// Revocations returns s.CRL().
func (s *Self) Revocations(context.Context) (*crypto.RevocationList, error) {
	if s.CRL == nil {
		return nil, nil
	}
	return s.CRL(), nil
}

// Keeper keeps a node's certificate valid (renewing it at two thirds of its
// lifetime, retrying every minute on failure) and its revocation list
// current (every crlEvery).
type Keeper struct {
	m      *Members
	src    Source
	save   func(*crypto.Certificate) error
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// crlEvery is how often a Keeper fetches the revocation list.
const crlEvery = 30 * time.Second

// StartKeeper installs current (if still valid) or obtains a certificate
// from src, waiting up to ctx, then keeps it renewed in the background;
// save (may be nil) persists every new certificate.
func StartKeeper(ctx context.Context, m *Members, src Source, current *crypto.Certificate, save func(*crypto.Certificate) error) (*Keeper, error) {
	k := &Keeper{m: m, src: src, save: save}
	if current == nil || current.Verify(m.ca, m.h.ID(), m.now()) != nil || !m.now().Before(current.RenewAt()) {
		c, err := k.obtain(ctx, current)
		if err != nil {
			return nil, err
		}
		current = c
	} else if err := m.SetCertificate(current); err != nil {
		return nil, err
	}
	if rl, err := src.Revocations(ctx); err == nil {
		_ = m.SetRevocations(rl)
	}
	kctx, cancel := context.WithCancel(context.Background())
	k.cancel = cancel
	k.wg.Add(1)
	go k.loop(kctx, current)
	return k, nil
}

func (k *Keeper) obtain(ctx context.Context, current *crypto.Certificate) (*crypto.Certificate, error) {
	c, err := k.src.Certificate(ctx, current)
	if err != nil {
		return nil, err
	}
	if err := k.m.SetCertificate(c); err != nil {
		return nil, err
	}
	if k.save != nil {
		if err := k.save(c); err != nil {
			k.m.log.Warn("member: saving the certificate", "err", err)
		}
	}
	k.m.log.Info("member: certificate", "role", c.Role, "expires", c.NotAfter)
	return c, nil
}

func (k *Keeper) loop(ctx context.Context, cur *crypto.Certificate) {
	defer k.wg.Done()
	crl := time.NewTicker(crlEvery)
	defer crl.Stop()
	renew := time.NewTimer(time.Until(cur.RenewAt()))
	defer renew.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-crl.C:
			cctx, cancel := context.WithTimeout(ctx, ioTimeout)
			rl, err := k.src.Revocations(cctx)
			cancel()
			if err == nil {
				if err := k.m.SetRevocations(rl); err != nil {
					k.m.log.Warn("member: revocation list refused", "err", err)
				}
			}
		case <-renew.C:
			cctx, cancel := context.WithTimeout(ctx, time.Minute)
			c, err := k.obtain(cctx, cur)
			cancel()
			if err != nil {
				k.m.log.Warn("member: renewing the certificate failed; retrying in a minute", "err", err, "expires", cur.NotAfter)
				renew.Reset(time.Minute)
				continue
			}
			cur = c
			renew.Reset(time.Until(cur.RenewAt()))
		}
	}
}

// Close stops renewing.
func (k *Keeper) Close() {
	k.cancel()
	k.wg.Wait()
}
