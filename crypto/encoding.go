package crypto

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// b64 is the base64 used in every text format here: URL alphabet, no padding,
// strict (unused bits must be zero, so every value has one encoding).
var b64 = base64.RawURLEncoding.Strict()

// fpEncoding is lower-case base32 without padding.
var fpEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

const (
	fingerprintPrefix = "ca-"
	fingerprintBytes  = 10
	// fingerprintLen is len("ca-") + base32 of 10 bytes.
	fingerprintLen = len(fingerprintPrefix) + 16
	// idBytes is the size of certificate serials and token IDs.
	idBytes = 16
)

// CAFingerprint names a cluster CA: "ca-" + lower-case base32 (no padding) of
// the first 10 bytes of sha256(pub).
func CAFingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return fingerprintPrefix + fpEncoding.EncodeToString(sum[:fingerprintBytes])
}

// validFingerprint reports whether s has the shape of a CAFingerprint.
func validFingerprint(s string) bool {
	if len(s) != fingerprintLen || !strings.HasPrefix(s, fingerprintPrefix) {
		return false
	}
	b, err := fpEncoding.DecodeString(s[len(fingerprintPrefix):])
	return err == nil && len(b) == fingerprintBytes && fpEncoding.EncodeToString(b) == s[len(fingerprintPrefix):]
}

// EncodePublicKey returns pub as base64url without padding.
func EncodePublicKey(pub ed25519.PublicKey) string { return b64.EncodeToString(pub) }

// DecodePublicKey parses the output of EncodePublicKey. Surrounding spaces are
// ignored.
func DecodePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := b64.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fail(ErrMalformed, "public key: not base64url: %v", err)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fail(ErrMalformed, "public key: %d bytes, want %d", len(b), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// checkCAKey rejects a CA public key of the wrong size (ed25519.Verify would
// panic on it).
func checkCAKey(ca ed25519.PublicKey) error {
	if len(ca) != ed25519.PublicKeySize {
		return fail(ErrWrongCA, "CA public key has %d bytes, want %d", len(ca), ed25519.PublicKeySize)
	}
	return nil
}

// canonTime returns t in UTC truncated to the second, the form every encoded
// time takes.
func canonTime(t time.Time) time.Time { return t.UTC().Truncate(time.Second) }

// isCanonTime reports whether t is already in canonical form and encodable.
func isCanonTime(t time.Time) bool {
	_, off := t.Zone()
	return off == 0 && t.Nanosecond() == 0 && t.Year() >= 1 && t.Year() <= 9999
}

// randomHex returns n random bytes as lower-case hex.
func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("crypto: random: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// validHexID reports whether s is idBytes bytes of lower-case hex.
func validHexID(s string) bool {
	if len(s) != 2*idBytes {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// validPeer reports whether p is a well-formed peer ID: a multihash that, when
// it inlines a public key (identity multihash), inlines a valid one.
func validPeer(p peer.ID) bool {
	if p.Validate() != nil {
		return false
	}
	if _, err := peer.IDFromBytes([]byte(p)); err != nil {
		return false
	}
	if _, err := p.ExtractPublicKey(); err != nil && !errors.Is(err, peer.ErrNoPublicKey) {
		return false
	}
	return true
}

// marshal is json.Marshal; every type encoded here has a fixed field order and
// no map, so the output is canonical.
func marshal(v any) ([]byte, error) { return json.Marshal(v) }

// decodeCanonical decodes b into v strictly (unknown fields and trailing data
// rejected) and then checks that b is exactly what encoding v gives, so every
// accepted value has one encoding. what names the thing in errors.
func decodeCanonical(b []byte, v any, what string) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fail(ErrMalformed, "%s: %v", what, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fail(ErrMalformed, "%s: trailing data", what)
	}
	re, err := marshal(v)
	if err != nil {
		return fail(ErrMalformed, "%s: %v", what, err)
	}
	if !bytes.Equal(re, b) {
		return fail(ErrMalformed, "%s: not in canonical form", what)
	}
	return nil
}

// domain returns prefix followed by msg, the bytes a signature covers.
func domain(prefix string, msg []byte) []byte {
	out := make([]byte, 0, len(prefix)+len(msg))
	return append(append(out, prefix...), msg...)
}
