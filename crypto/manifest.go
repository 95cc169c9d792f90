package crypto

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"time"

	lpcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dfp2p/dfp2p/content"
)

const (
	manifestDomain = "dfp2p-manifest-v1\x00"
	// signedManifestMagic starts an encoded SignedManifest.
	signedManifestMagic = "dfp2p-signed-manifest-v1\x00"
	// maxManifestSigSize bounds the signer's signature (ed25519: 64 bytes).
	maxManifestSigSize = 1 << 10
	// MaxSignedManifestSize bounds an encoded SignedManifest.
	MaxSignedManifestSize = content.MaxManifestSize + 4<<10
)

// SignedManifest is a manifest signed by the seed (or tracker) that built it
// with its libp2p identity key, together with that signer's certificate, which
// chains to the cluster CA.
//
// Encoded, it is binary: the magic "dfp2p-signed-manifest-v1\x00", a 2-byte
// big-endian length and the certificate, a 2-byte big-endian length and the
// signature, then the manifest bytes to the end. The signature covers
// "dfp2p-manifest-v1\x00" + Manifest.
type SignedManifest struct {
	Manifest []byte // content.Manifest encoding
	Cert     []byte // the signer's encoded certificate
	Sig      []byte
}

// maySignManifests reports whether a certificate of role r may sign
// manifests.
func maySignManifests(r Role) bool { return r == RoleSeed || r == RoleTracker }

// SignManifest signs manifest (a content.Manifest encoding, checked here) with
// key, whose peer ID must be cert.Peer (ErrWrongPeer) and whose role must be
// seed or tracker. The result shares manifest's memory.
func SignManifest(manifest []byte, key lpcrypto.PrivKey, cert *Certificate) (*SignedManifest, error) {
	if key == nil || cert == nil {
		return nil, fail(ErrMalformed, "sign manifest: nil key or certificate")
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, fail(ErrMalformed, "sign manifest: key: %v", err)
	}
	if id != cert.Peer {
		return nil, fail(ErrWrongPeer, "sign manifest: key is %s but the certificate is for %s", id, cert.Peer)
	}
	if !maySignManifests(cert.Role) {
		return nil, fail(ErrBadSignature, "sign manifest: signer role %s may not sign manifests", cert.Role)
	}
	cb, err := cert.Encode()
	if err != nil {
		return nil, err
	}
	if len(cert.Sig) == 0 {
		return nil, fail(ErrMalformed, "sign manifest: certificate is not signed")
	}
	if _, err := content.DecodeManifest(manifest); err != nil {
		return nil, fail(ErrMalformed, "sign manifest: %v", err)
	}
	sig, err := key.Sign(domain(manifestDomain, manifest))
	if err != nil {
		return nil, fail(ErrBadSignature, "sign manifest: %v", err)
	}
	if len(sig) > maxManifestSigSize {
		return nil, fail(ErrMalformed, "sign manifest: %d-byte signature is too large", len(sig))
	}
	return &SignedManifest{Manifest: manifest, Cert: cb, Sig: sig}, nil
}

func (s *SignedManifest) check() error {
	if len(s.Manifest) == 0 || len(s.Manifest) > content.MaxManifestSize {
		return fail(ErrMalformed, "signed manifest: manifest of %d bytes", len(s.Manifest))
	}
	if len(s.Cert) == 0 || len(s.Cert) > MaxCertificateSize {
		return fail(ErrMalformed, "signed manifest: certificate of %d bytes", len(s.Cert))
	}
	if len(s.Sig) == 0 || len(s.Sig) > maxManifestSigSize {
		return fail(ErrMalformed, "signed manifest: signature of %d bytes", len(s.Sig))
	}
	return nil
}

// Encode returns the binary encoding described on SignedManifest.
func (s *SignedManifest) Encode() ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, len(signedManifestMagic)+4+len(s.Cert)+len(s.Sig)+len(s.Manifest))
	b = append(b, signedManifestMagic...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(s.Cert)))
	b = append(b, s.Cert...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(s.Sig)))
	b = append(b, s.Sig...)
	return append(b, s.Manifest...), nil
}

// DecodeSignedManifest splits an encoded SignedManifest of at most
// MaxSignedManifestSize bytes. It checks the framing only (see Verify); the
// fields share b's memory. Errors wrap ErrMalformed.
func DecodeSignedManifest(b []byte) (*SignedManifest, error) {
	if len(b) > MaxSignedManifestSize {
		return nil, fail(ErrMalformed, "signed manifest: %d bytes exceeds %d", len(b), MaxSignedManifestSize)
	}
	rest, ok := bytes.CutPrefix(b, []byte(signedManifestMagic))
	if !ok {
		return nil, fail(ErrMalformed, "signed manifest: bad magic")
	}
	cert, rest, ok := cutField(rest)
	if !ok {
		return nil, fail(ErrMalformed, "signed manifest: truncated certificate")
	}
	sig, rest, ok := cutField(rest)
	if !ok {
		return nil, fail(ErrMalformed, "signed manifest: truncated signature")
	}
	s := &SignedManifest{Manifest: rest, Cert: cert, Sig: sig}
	if err := s.check(); err != nil {
		return nil, err
	}
	return s, nil
}

// cutField splits a 2-byte big-endian length and that many bytes off b.
func cutField(b []byte) (field, rest []byte, ok bool) {
	if len(b) < 2 {
		return nil, nil, false
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if len(b) < n {
		return nil, nil, false
	}
	return b[:n:n], b[n:], true
}

// Certificate decodes the signer's certificate without verifying it, for
// example to look its peer up in a revocation list after Verify.
func (s *SignedManifest) Certificate() (*Certificate, error) { return DecodeCertificate(s.Cert) }

// Verify checks that the signer's certificate is valid for the cluster CA at
// now and has role seed or tracker, that Sig is the signature of the
// certificate's peer over the manifest, and returns the decoded manifest. Any
// change to Manifest, Cert or Sig makes it fail. It does not consult a
// revocation list: check Certificate().Peer against one.
func (s *SignedManifest) Verify(ca ed25519.PublicKey, now time.Time) (*content.Manifest, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	cert, err := DecodeCertificate(s.Cert)
	if err != nil {
		return nil, err
	}
	if err := cert.Verify(ca, "", now); err != nil {
		return nil, err
	}
	if !maySignManifests(cert.Role) {
		return nil, fail(ErrBadSignature, "signed manifest: signer role %s may not sign manifests", cert.Role)
	}
	pk, err := cert.Peer.ExtractPublicKey()
	if err != nil {
		return nil, fail(ErrBadSignature, "signed manifest: no public key in signer ID %s: %v", cert.Peer, err)
	}
	ok, err := pk.Verify(domain(manifestDomain, s.Manifest), s.Sig)
	if err != nil || !ok {
		return nil, fail(ErrBadSignature, "signed manifest: invalid signature by %s", cert.Peer)
	}
	m, err := content.DecodeManifest(s.Manifest)
	if err != nil {
		return nil, fail(ErrMalformed, "signed manifest: %v", err)
	}
	return m, nil
}
