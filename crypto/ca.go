package crypto

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dfp2p/dfp2p/internal/fsutil"
)

// Names of the CA files inside the directory given to LoadOrCreateCA.
const (
	CAKeyFile    = "cluster-ca.key"
	CAPubKeyFile = "cluster-ca.pub"
)

// maxKeyFileSize bounds how much of a key file is read.
const maxKeyFileSize = 64 << 10

// pemType is the PEM block type of the CA key file (PKCS #8).
const pemType = "PRIVATE KEY"

// CA is a cluster certificate authority: an ed25519 key pair. It issues
// membership certificates and API tokens and signs revocation lists. A CA is
// immutable and safe for concurrent use.
type CA struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
}

// NewCA generates a new CA key pair in memory.
func NewCA() (*CA, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("crypto: generate CA key: %w", err)
	}
	return &CA{priv: priv, pub: pub}, nil
}

// Public returns the CA's public key.
func (ca *CA) Public() ed25519.PublicKey { return slices.Clone(ca.pub) }

// Fingerprint returns CAFingerprint(ca.Public()).
func (ca *CA) Fingerprint() string { return CAFingerprint(ca.pub) }

// LoadOrCreateCA returns the CA whose private key is stored in
// dir/cluster-ca.key. On first use it creates dir (0700), generates a key,
// writes it (PKCS #8 PEM, mode 0600, never overwriting a key another process
// wrote meanwhile) and writes the public key to dir/cluster-ca.pub (0644, one
// line in EncodePublicKey form). created reports whether the key was created
// by this call. A key file readable by group or others is refused. When the
// key exists but the .pub file is missing it is written again, best effort.
func LoadOrCreateCA(dir string) (ca *CA, created bool, err error) {
	if dir == "" {
		return nil, false, errors.New("crypto: empty CA directory")
	}
	keyPath := filepath.Join(dir, CAKeyFile)
	pubPath := filepath.Join(dir, CAPubKeyFile)
	ca, err = loadCA(keyPath)
	if err == nil {
		if _, statErr := os.Stat(pubPath); errors.Is(statErr, fs.ErrNotExist) {
			_ = writePub(pubPath, ca.pub) // convenience copy; the key is what matters
		}
		return ca, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("crypto: create CA directory: %w", err)
	}
	ca, err = NewCA()
	if err != nil {
		return nil, false, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(ca.priv)
	if err != nil {
		return nil, false, fmt.Errorf("crypto: encode CA key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der})
	if err := createExclusive(keyPath, keyPEM); err != nil {
		if errors.Is(err, fs.ErrExist) { // another process created it first
			ca, err = loadCA(keyPath)
			if err != nil {
				return nil, false, err
			}
			return ca, false, nil
		}
		return nil, false, fmt.Errorf("crypto: write CA key: %w", err)
	}
	if err := writePub(pubPath, ca.pub); err != nil {
		return nil, false, fmt.Errorf("crypto: write CA public key: %w", err)
	}
	return ca, true, nil
}

// LoadCA reads a CA private key file written by LoadOrCreateCA. A file readable
// by group or others is refused.
func LoadCA(keyFile string) (*CA, error) {
	ca, err := loadCA(keyFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("crypto: CA key %s: %w", keyFile, err)
	}
	return ca, err
}

// LoadPublicKey reads a public key file such as dir/cluster-ca.pub (one line
// in EncodePublicKey form).
func LoadPublicKey(file string) (ed25519.PublicKey, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("crypto: public key: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1025))
	if err != nil {
		return nil, fmt.Errorf("crypto: public key %s: %w", file, err)
	}
	if len(b) > 1024 {
		return nil, fmt.Errorf("crypto: public key %s: file too large", file)
	}
	pub, err := DecodePublicKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("crypto: public key %s: %w", file, err)
	}
	return pub, nil
}

func writePub(path string, pub ed25519.PublicKey) error {
	return fsutil.WriteFileAtomic(path, []byte(EncodePublicKey(pub)+"\n"), 0o644)
}

// createExclusive writes b to path with mode 0600 so that path appears whole or
// not at all and an existing file is never replaced: the bytes go to a temp
// file that is hard-linked into place. Where hard links are unsupported it
// falls back to O_EXCL. An existing path gives an error wrapping fs.ErrExist.
func createExclusive(path string, b []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := writeSync(f, b); err != nil {
		return err
	}
	err = os.Link(tmp, path)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		// No hard links here: create the file itself exclusively.
		g, oerr := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if oerr != nil {
			return oerr
		}
		if werr := writeSync(g, b); werr != nil {
			os.Remove(path)
			return werr
		}
		err = nil
	}
	if err != nil {
		return err
	}
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// writeSync writes b to f, sets mode 0600, fsyncs and closes f.
func writeSync(f *os.File, b []byte) error {
	_, err := f.Write(b)
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func loadCA(path string) (*CA, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // fs.ErrNotExist is handled by callers
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("crypto: CA key %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("crypto: CA key %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("crypto: CA key %s has mode %04o and is accessible by group or others; "+
			"refusing to use it (fix with: chmod 600 %s)", path, perm, path)
	}
	if st.Size() > maxKeyFileSize {
		return nil, fmt.Errorf("crypto: CA key %s is too large (%d bytes)", path, st.Size())
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("crypto: read CA key %s: %w", path, err)
	}
	ca, err := parseCAKey(b)
	if err != nil {
		return nil, fmt.Errorf("crypto: CA key %s: %w", path, err)
	}
	return ca, nil
}

func parseCAKey(b []byte) (*CA, error) {
	block, rest := pem.Decode(b)
	if block == nil || block.Type != pemType {
		return nil, errors.New("not a PEM \"" + pemType + "\" block")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("trailing data after the key")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key is %T, want ed25519", k)
	}
	return &CA{priv: priv, pub: priv.Public().(ed25519.PublicKey)}, nil
}

// Issue signs a certificate binding p to role, valid from now (truncated to
// the second) for ttl (at least a second).
func (ca *CA) Issue(p peer.ID, role Role, ttl time.Duration, now time.Time) (*Certificate, error) {
	if !validPeer(p) {
		return nil, fail(ErrMalformed, "issue certificate: invalid peer ID %q", string(p))
	}
	if !role.Valid() {
		return nil, fail(ErrMalformed, "issue certificate: unknown role %q", role)
	}
	if ttl < time.Second {
		return nil, fail(ErrMalformed, "issue certificate: lifetime %v is shorter than a second", ttl)
	}
	serial, err := randomHex(idBytes)
	if err != nil {
		return nil, err
	}
	nbf := canonTime(now)
	c := &Certificate{
		Version:   CertificateVersion,
		Peer:      p,
		Role:      role,
		CA:        ca.Fingerprint(),
		Serial:    serial,
		NotBefore: nbf,
		NotAfter:  canonTime(nbf.Add(ttl)),
	}
	msg, err := c.signedBytes()
	if err != nil {
		return nil, err
	}
	c.Sig = ed25519.Sign(ca.priv, msg)
	return c, nil
}

// IssueToken signs an API bearer token carrying scopes, valid until now+ttl
// (truncated to the second; ttl at least a second).
func (ca *CA) IssueToken(scopes []Scope, ttl time.Duration, now time.Time) (string, error) {
	sc, err := normalizeScopes(scopes)
	if err != nil {
		return "", err
	}
	if ttl < time.Second {
		return "", fail(ErrMalformed, "issue token: lifetime %v is shorter than a second", ttl)
	}
	id, err := randomHex(idBytes)
	if err != nil {
		return "", err
	}
	payload, err := marshal(tokenPayload{
		ID:     id,
		Scopes: sc,
		CA:     ca.Fingerprint(),
		Exp:    canonTime(canonTime(now).Add(ttl)),
	})
	if err != nil {
		return "", fmt.Errorf("crypto: encode token: %w", err)
	}
	sig := ed25519.Sign(ca.priv, domain(tokenDomain, payload))
	return tokenPrefix + b64.EncodeToString(payload) + "." + b64.EncodeToString(sig), nil
}

// SignRevocations signs a list revoking peers, issued now (truncated to the
// second). The list is sorted and deduplicated; it may be empty.
func (ca *CA) SignRevocations(peers []peer.ID, now time.Time) (*RevocationList, error) {
	ps := slices.Clone(peers)
	for _, p := range ps {
		if !validPeer(p) {
			return nil, fail(ErrMalformed, "sign revocations: invalid peer ID %q", string(p))
		}
	}
	slices.Sort(ps)
	ps = slices.Compact(ps)
	if ps == nil {
		ps = []peer.ID{}
	}
	r := &RevocationList{Issued: canonTime(now), Peers: ps}
	msg, err := r.signedBytes()
	if err != nil {
		return nil, err
	}
	r.Sig = ed25519.Sign(ca.priv, msg)
	return r, nil
}
