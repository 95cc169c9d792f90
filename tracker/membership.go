package tracker

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/crypto"
	"github.com/dfp2p/dfp2p/crypto/member"
	"github.com/dfp2p/dfp2p/exchange"
	"github.com/dfp2p/dfp2p/internal/fsutil"
	"github.com/dfp2p/dfp2p/internal/httpapi"
	"github.com/dfp2p/dfp2p/node"
)

// Files in a closed cluster tracker's data dir.
const (
	// JoinTokenFile holds the one line daemons join with (mode 0600).
	JoinTokenFile = "join-token"
	// RevokedFile holds the revocation list signed by the CA; `dfp2p cluster
	// revoke` writes it, the tracker reloads it within a second.
	RevokedFile    = "revoked"
	joinSecretFile = "join-secret"
)

// DefaultCertTTL is how long membership certificates last; members renew at
// two thirds of it.
const DefaultCertTTL = 24 * time.Hour

// cluster is a closed cluster's membership state in a tracker.
type cluster struct {
	ca     *crypto.CA
	keeper *member.Keeper
	issuer *member.Issuer
	token  *crypto.JoinToken

	mu       sync.Mutex
	crl      *crypto.RevocationList
	crlMtime time.Time
}

// startMembership sets up a closed cluster: the CA (created on first start),
// the tracker's own certificate, the join protocol, DIR/join-token and the
// API's token check.
func (t *Tracker) startMembership() error {
	cfg := t.cfg
	var ca *crypto.CA
	var err error
	if cfg.CAKeyFile != "" {
		ca, err = crypto.LoadCA(cfg.CAKeyFile)
	} else {
		var created bool
		ca, created, err = crypto.LoadOrCreateCA(cfg.DataDir)
		if created {
			t.log.Info("created the cluster CA", "key", filepath.Join(cfg.DataDir, "cluster-ca.key"), "ca", crypto.CAFingerprint(ca.Public()))
		}
	}
	if err != nil {
		return err
	}
	secret, err := loadOrCreateSecret(filepath.Join(cfg.DataDir, joinSecretFile))
	if err != nil {
		return err
	}
	cl := &cluster{ca: ca}
	t.cluster = cl
	m, err := member.New(t.h, ca.Public(), member.WithLogger(t.log))
	if err != nil {
		return err
	}
	t.members = m
	t.reloadRevocations()
	ttl := cfg.CertTTL
	if ttl <= 0 {
		ttl = DefaultCertTTL
	}
	cl.keeper, err = member.StartKeeper(t.ctx, m, &member.Self{CA: ca, ID: t.h.ID(), Role: crypto.RoleTracker, TTL: ttl, CRL: cl.revocations}, nil, nil)
	if err != nil {
		return err
	}
	cl.issuer = member.ServeJoin(m, ca, secret, ttl, cl.revocations)
	cl.token = &crypto.JoinToken{Addrs: node.Addrs(t.h), CA: ca.Public(), Secret: secret}
	if err := fsutil.WriteFileAtomic(filepath.Join(cfg.DataDir, JoinTokenFile), []byte(cl.token.String()+"\n"), 0o600); err != nil {
		return err
	}
	t.auth, err = httpapi.NewAuth(ca.Public(), cfg.DataDir)
	return err
}

// JoinToken is the line daemons join this closed cluster with ("" when open).
func (t *Tracker) JoinToken() string {
	if t.cluster == nil {
		return ""
	}
	return t.cluster.token.String()
}

func (t *Tracker) closeMembership() {
	if t.cluster != nil {
		if t.cluster.issuer != nil {
			t.cluster.issuer.Close()
		}
		if t.cluster.keeper != nil {
			t.cluster.keeper.Close()
		}
	}
	if t.members != nil {
		t.members.Close()
	}
}

func (cl *cluster) revocations() *crypto.RevocationList {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.crl
}

// reloadRevocations reads DIR/revoked when it changed and applies it.
func (t *Tracker) reloadRevocations() {
	cl := t.cluster
	if cl == nil {
		return
	}
	path := filepath.Join(t.cfg.DataDir, RevokedFile)
	fi, err := os.Stat(path)
	if err != nil {
		return
	}
	cl.mu.Lock()
	same := fi.ModTime().Equal(cl.crlMtime)
	cl.mu.Unlock()
	if same {
		return
	}
	rl, err := ReadRevocations(path, cl.ca.Public())
	if err != nil {
		t.log.Warn("revocation list ignored", "file", path, "err", err)
		return
	}
	cl.mu.Lock()
	cl.crl, cl.crlMtime = rl, fi.ModTime()
	cl.mu.Unlock()
	if err := t.members.SetRevocations(rl); err != nil {
		t.log.Warn("revocation list refused", "err", err)
	}
}

// ReadRevocations reads and verifies a revocation list file.
func ReadRevocations(path string, ca ed25519.PublicKey) (*crypto.RevocationList, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	rl, err := crypto.DecodeRevocationList(b)
	if err != nil {
		return nil, err
	}
	if err := rl.Verify(ca); err != nil {
		return nil, err
	}
	return rl, nil
}

// Revoke adds p to the revocation list in dir (signed by ca) and returns the
// new list. A running tracker using dir applies it within a second.
func Revoke(dir string, ca *crypto.CA, p peer.ID) (*crypto.RevocationList, error) {
	path := filepath.Join(dir, RevokedFile)
	var peers []peer.ID
	if old, err := ReadRevocations(path, ca.Public()); err == nil {
		peers = old.Peers
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("existing revocation list %s: %w", path, err)
	}
	for _, q := range peers {
		if q == p {
			return ReadRevocations(path, ca.Public())
		}
	}
	rl, err := ca.SignRevocations(append(peers, p), time.Now())
	if err != nil {
		return nil, err
	}
	b, err := rl.Encode()
	if err != nil {
		return nil, err
	}
	return rl, fsutil.WriteFileAtomic(path, b, 0o644)
}

// signManifest signs an encoded manifest with the tracker's identity key
// under its tracker certificate, for members to verify against the CA. In
// an open cluster it returns nil.
func (t *Tracker) signManifest(manifest []byte) ([]byte, error) {
	sm, err := t.sign(manifest)
	if sm == nil || err != nil {
		return nil, err
	}
	return sm.Encode()
}

// sign signs an encoded manifest (nil in an open cluster).
func (t *Tracker) sign(manifest []byte) (*crypto.SignedManifest, error) {
	if t.cluster == nil {
		return nil, nil
	}
	cert := t.members.Certificate()
	if cert == nil {
		return nil, errors.New("tracker has no certificate yet")
	}
	return crypto.SignManifest(manifest, t.h.Peerstore().PrivKey(t.h.ID()), cert)
}

// signedStatus adds the seed's signature to the manifests in the status
// answers of its store, for other regions' seeds and trackerless members.
func (t *Tracker) signedStatus(fn func(content.TaskID) (*exchange.Status, error)) func(content.TaskID) (*exchange.Status, error) {
	return func(id content.TaskID) (*exchange.Status, error) {
		st, err := fn(id)
		if err != nil || st == nil || len(st.Manifest) == 0 {
			return st, err
		}
		if sm, err := t.sign(st.Manifest); err == nil && sm != nil {
			st.Signer, st.Sig = sm.Cert, sm.Sig
		}
		return st, nil
	}
}

// revokeHandler is POST /api/v1/cluster/revoke {"peer": ID} (scope admin).
func (t *Tracker) revokeHandler(w http.ResponseWriter, r *http.Request) {
	if t.cluster == nil {
		httpapi.Error(w, http.StatusConflict, "open cluster: there is nothing to revoke")
		return
	}
	var req struct {
		Peer string `json:"peer"`
	}
	_ = httpapi.BodyDeadline(w) // a short answer follows: the deadline may stay
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
		httpapi.Error(w, http.StatusBadRequest, "want {\"peer\": \"<peer ID>\"}")
		return
	}
	p, err := peer.Decode(req.Peer)
	if err != nil {
		httpapi.Error(w, http.StatusBadRequest, "bad peer ID: "+httpapi.OneLine(err.Error(), 200))
		return
	}
	rl, err := Revoke(t.cfg.DataDir, t.cluster.ca, p)
	if err != nil {
		httpapi.Error(w, http.StatusInternalServerError, httpapi.OneLine(err.Error(), 200))
		return
	}
	t.reloadRevocations()
	httpapi.JSON(w, http.StatusOK, map[string]any{"revoked": len(rl.Peers)})
}

// loadOrCreateSecret reads a 32-byte secret file, creating it (0600) with
// random bytes on first use. A file others can read is refused.
func loadOrCreateSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("%s is readable by others (mode %04o); run chmod 600 %s", path, fi.Mode().Perm(), path)
		}
		if len(b) != 32 {
			return nil, fmt.Errorf("%s: want 32 bytes, have %d", path, len(b))
		}
		return b, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return b, fsutil.WriteFileAtomic(path, b, 0o600)
}
