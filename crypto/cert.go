package crypto

import (
	"crypto/ed25519"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// CertificateVersion is the certificate format version.
const CertificateVersion = 1

// MaxCertificateSize bounds an encoded certificate.
const MaxCertificateSize = 1 << 10

// ClockSkew is how far before NotBefore a certificate is already accepted.
const ClockSkew = time.Minute

// certDomain prefixes the bytes a certificate signature covers.
const certDomain = "dfp2p-cert-v1\x00"

// Certificate binds a libp2p peer ID to a role in a cluster, signed by the
// cluster CA. Its encoding is canonical: compact JSON with the fields in this
// order, times in UTC at second precision. The signature covers
// "dfp2p-cert-v1\x00" followed by the encoding without Sig.
type Certificate struct {
	Version   int       `json:"v"` // CertificateVersion
	Peer      peer.ID   `json:"peer"`
	Role      Role      `json:"role"`
	CA        string    `json:"ca"`     // CAFingerprint of the issuer
	Serial    string    `json:"serial"` // 16 random bytes, lower-case hex
	NotBefore time.Time `json:"nbf"`    // UTC, second precision
	NotAfter  time.Time `json:"exp"`
	Sig       []byte    `json:"sig,omitempty"`
}

// validate checks everything but the signature's validity. Sig may be absent.
func (c *Certificate) validate() error {
	if c.Version != CertificateVersion {
		return fail(ErrMalformed, "certificate: unsupported version %d", c.Version)
	}
	if !validPeer(c.Peer) {
		return fail(ErrMalformed, "certificate: invalid peer ID")
	}
	if !c.Role.Valid() {
		return fail(ErrMalformed, "certificate: unknown role %q", c.Role)
	}
	if !validFingerprint(c.CA) {
		return fail(ErrMalformed, "certificate: invalid CA fingerprint %q", c.CA)
	}
	if !validHexID(c.Serial) {
		return fail(ErrMalformed, "certificate: invalid serial %q", c.Serial)
	}
	if !isCanonTime(c.NotBefore) || !isCanonTime(c.NotAfter) {
		return fail(ErrMalformed, "certificate: validity times must be UTC with second precision")
	}
	if !c.NotAfter.After(c.NotBefore) {
		return fail(ErrMalformed, "certificate: expiry %s is not after start %s",
			c.NotAfter.Format(time.RFC3339), c.NotBefore.Format(time.RFC3339))
	}
	if len(c.Sig) != 0 && len(c.Sig) != ed25519.SignatureSize {
		return fail(ErrMalformed, "certificate: signature has %d bytes", len(c.Sig))
	}
	return nil
}

// Encode returns the certificate's canonical encoding, including Sig.
func (c *Certificate) Encode() ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	b, err := marshal(c)
	if err != nil {
		return nil, fail(ErrMalformed, "certificate: %v", err)
	}
	if len(b) > MaxCertificateSize {
		return nil, fail(ErrMalformed, "certificate: %d bytes exceeds %d", len(b), MaxCertificateSize)
	}
	return b, nil
}

// signedBytes returns what the CA signs: the domain prefix and the encoding
// without Sig.
func (c *Certificate) signedBytes() ([]byte, error) {
	u := *c
	u.Sig = nil
	b, err := u.Encode()
	if err != nil {
		return nil, err
	}
	return domain(certDomain, b), nil
}

// DecodeCertificate parses an encoded certificate. It accepts only the
// canonical encoding of a well-formed, signed certificate of at most
// MaxCertificateSize bytes; it does not check the signature (see Verify).
// Errors wrap ErrMalformed.
func DecodeCertificate(b []byte) (*Certificate, error) {
	if len(b) > MaxCertificateSize {
		return nil, fail(ErrMalformed, "certificate: %d bytes exceeds %d", len(b), MaxCertificateSize)
	}
	var c Certificate
	if err := decodeCanonical(b, &c, "certificate"); err != nil {
		return nil, err
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	if len(c.Sig) == 0 {
		return nil, fail(ErrMalformed, "certificate: not signed")
	}
	return &c, nil
}

// Verify checks that c was issued by the CA whose public key is ca (ErrWrongCA),
// that its signature is valid (ErrBadSignature), that it was issued to p
// (ErrWrongPeer; skipped when p is empty) and that now lies within
// [NotBefore-ClockSkew, NotAfter] (ErrNotYetValid, ErrExpired).
func (c *Certificate) Verify(ca ed25519.PublicKey, p peer.ID, now time.Time) error {
	if c == nil {
		return fail(ErrMalformed, "certificate: nil")
	}
	if err := checkCAKey(ca); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	if fp := CAFingerprint(ca); c.CA != fp {
		return fail(ErrWrongCA, "certificate issued by %s, not by cluster CA %s", c.CA, fp)
	}
	msg, err := c.signedBytes()
	if err != nil {
		return err
	}
	if len(c.Sig) != ed25519.SignatureSize || !ed25519.Verify(ca, msg, c.Sig) {
		return fail(ErrBadSignature, "certificate of %s: invalid CA signature", c.Peer)
	}
	if p != "" && c.Peer != p {
		return fail(ErrWrongPeer, "certificate is for %s, not %s", c.Peer, p)
	}
	if now.Before(c.NotBefore.Add(-ClockSkew)) {
		return fail(ErrNotYetValid, "certificate of %s is valid from %s (now %s)",
			c.Peer, c.NotBefore.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if now.After(c.NotAfter) {
		return fail(ErrExpired, "certificate of %s expired at %s (now %s)",
			c.Peer, c.NotAfter.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

// RenewAt returns when the holder should ask for a new certificate: after
// two thirds of its lifetime.
func (c *Certificate) RenewAt() time.Time {
	d := c.NotAfter.Sub(c.NotBefore)
	return c.NotBefore.Add(d - d/3)
}
