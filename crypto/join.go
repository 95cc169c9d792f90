package crypto

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/libp2p/go-libp2p/core/peer"
)

const (
	joinTokenPrefix = "dfp2p-join-v1."
	// MaxJoinTokenSize bounds a join token string.
	MaxJoinTokenSize = 8 << 10
	// JoinSecretSize is the size of a join token's secret.
	JoinSecretSize  = 32
	joinProofDomain = "dfp2p-join-v1\x00"
)

// JoinToken is the one line a tracker prints for daemons to join: where to
// reach the trackers, which CA to trust, and a shared secret that proves the
// holder may ask for a certificate (see JoinProof).
type JoinToken struct {
	Addrs  []string          // tracker addresses (multiaddrs), at least one
	CA     ed25519.PublicKey // the cluster CA
	Secret []byte            // JoinSecretSize random bytes
}

// joinTokenJSON is the encoded form; field order is fixed.
type joinTokenJSON struct {
	Addrs  []string `json:"addrs"`
	CA     string   `json:"ca"`
	Secret string   `json:"secret"`
}

// NewJoinToken returns a token for addrs and ca with a fresh random secret.
func NewJoinToken(addrs []string, ca ed25519.PublicKey) (*JoinToken, error) {
	t := &JoinToken{Addrs: slices.Clone(addrs), CA: slices.Clone(ca), Secret: make([]byte, JoinSecretSize)}
	if _, err := rand.Read(t.Secret); err != nil {
		return nil, fmt.Errorf("crypto: random: %w", err)
	}
	if err := t.validate(); err != nil {
		return nil, err
	}
	if s := t.String(); len(s) > MaxJoinTokenSize {
		return nil, fail(ErrMalformed, "join token: %d bytes exceeds %d (too many addresses)", len(s), MaxJoinTokenSize)
	}
	return t, nil
}

func (t *JoinToken) validate() error {
	if len(t.Addrs) == 0 {
		return fail(ErrMalformed, "join token: no addresses")
	}
	for _, a := range t.Addrs {
		if !validAddr(a) {
			return fail(ErrMalformed, "join token: invalid address %q", a)
		}
	}
	if len(t.CA) != ed25519.PublicKeySize {
		return fail(ErrMalformed, "join token: CA key has %d bytes, want %d", len(t.CA), ed25519.PublicKeySize)
	}
	if len(t.Secret) != JoinSecretSize {
		return fail(ErrMalformed, "join token: secret has %d bytes, want %d", len(t.Secret), JoinSecretSize)
	}
	return nil
}

// validAddr accepts a non-empty printable string without spaces; the address
// syntax itself is checked by whoever dials it.
func validAddr(a string) bool {
	if a == "" {
		return false
	}
	for _, r := range a {
		if r == unicode.ReplacementChar || !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return false
		}
	}
	return true
}

// String returns the token as one line: "dfp2p-join-v1." followed by the
// base64url (no padding) of compact JSON {"addrs":[...],"ca":...,"secret":...}.
func (t *JoinToken) String() string {
	addrs := t.Addrs
	if addrs == nil {
		addrs = []string{}
	}
	b, err := marshal(joinTokenJSON{Addrs: addrs, CA: EncodePublicKey(t.CA), Secret: b64.EncodeToString(t.Secret)})
	if err != nil { // cannot happen: only strings
		return joinTokenPrefix
	}
	return joinTokenPrefix + b64.EncodeToString(b)
}

// ParseJoinToken parses the output of String. Surrounding spaces are ignored;
// anything else malformed gives an error wrapping ErrMalformed.
func ParseJoinToken(s string) (*JoinToken, error) {
	s = strings.TrimSpace(s)
	if len(s) > MaxJoinTokenSize {
		return nil, fail(ErrMalformed, "join token: %d bytes exceeds %d", len(s), MaxJoinTokenSize)
	}
	rest, ok := strings.CutPrefix(s, joinTokenPrefix)
	if !ok {
		return nil, fail(ErrMalformed, "join token: does not start with %q", joinTokenPrefix)
	}
	b, err := b64.DecodeString(rest)
	if err != nil {
		return nil, fail(ErrMalformed, "join token: not base64url: %v", err)
	}
	var j joinTokenJSON
	if err := decodeCanonical(b, &j, "join token"); err != nil {
		return nil, err
	}
	ca, err := DecodePublicKey(j.CA)
	if err != nil || EncodePublicKey(ca) != j.CA {
		return nil, fail(ErrMalformed, "join token: invalid CA key")
	}
	secret, err := b64.DecodeString(j.Secret)
	if err != nil {
		return nil, fail(ErrMalformed, "join token: secret is not base64url")
	}
	t := &JoinToken{Addrs: j.Addrs, CA: ca, Secret: secret}
	if err := t.validate(); err != nil {
		return nil, err
	}
	return t, nil
}

// JoinProof proves knowledge of a join token's secret for one member joining
// through one tracker: HMAC-SHA256(secret, "dfp2p-join-v1\x00" + member +
// "\x00" + tracker), the peer IDs in their binary form.
func JoinProof(secret []byte, member, tracker peer.ID) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(joinProofDomain))
	m.Write([]byte(member))
	m.Write([]byte{0})
	m.Write([]byte(tracker))
	return m.Sum(nil)
}

// CheckJoinProof reports, in constant time, whether proof is
// JoinProof(secret, member, tracker). A secret shorter than JoinSecretSize or
// an empty peer ID never checks.
func CheckJoinProof(secret []byte, member, tracker peer.ID, proof []byte) bool {
	if len(secret) < JoinSecretSize || member == "" || tracker == "" {
		return false
	}
	return hmac.Equal(JoinProof(secret, member, tracker), proof)
}
