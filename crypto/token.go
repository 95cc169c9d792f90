package crypto

import (
	"crypto/ed25519"
	"slices"
	"strings"
	"time"
)

const (
	tokenPrefix = "dfp2p-api-v1."
	tokenDomain = "dfp2p-api-v1\x00"
	// MaxTokenSize bounds an API token string.
	MaxTokenSize = 2 << 10
)

// Token is a verified API bearer token. Tokens are stateless: the CA signs
// them (CA.IssueToken) and any holder of the CA public key checks them
// (ParseToken); they cannot be revoked one by one, only by expiry or by
// replacing the CA.
type Token struct {
	ID       string // 16 random bytes, hex; for logs
	Scopes   []Scope
	NotAfter time.Time
}

// tokenPayload is the signed part of a token; field order is fixed.
type tokenPayload struct {
	ID     string    `json:"id"`
	Scopes []Scope   `json:"scopes"`
	CA     string    `json:"ca"`
	Exp    time.Time `json:"exp"`
}

// Allows reports whether the token grants s: admin allows everything, preheat
// allows preheat and read, read allows read.
func (t *Token) Allows(s Scope) bool {
	if t == nil || !s.Valid() {
		return false
	}
	for _, held := range t.Scopes {
		if held.rank() >= s.rank() {
			return true
		}
	}
	return false
}

// Require returns nil when the token allows s, and otherwise an error wrapping
// ErrScope.
func (t *Token) Require(s Scope) error {
	if t.Allows(s) {
		return nil
	}
	held := ""
	if t != nil {
		held = FormatScopes(t.Scopes)
	}
	return fail(ErrScope, "token with scopes %q does not allow %q", held, s)
}

// ParseToken checks an API token against the cluster CA at time now. The
// format is "dfp2p-api-v1." + base64url(payload) + "." + base64url(signature),
// where payload is compact JSON {"id","scopes","ca","exp"} and the ed25519
// signature covers "dfp2p-api-v1\x00" + payload. Surrounding spaces are
// ignored. Errors wrap ErrMalformed, ErrWrongCA, ErrBadSignature or ErrExpired.
func ParseToken(s string, ca ed25519.PublicKey, now time.Time) (*Token, error) {
	s = strings.TrimSpace(s)
	if len(s) > MaxTokenSize {
		return nil, fail(ErrMalformed, "token: %d bytes exceeds %d", len(s), MaxTokenSize)
	}
	rest, ok := strings.CutPrefix(s, tokenPrefix)
	if !ok {
		return nil, fail(ErrMalformed, "token: does not start with %q", tokenPrefix)
	}
	p64, s64, ok := strings.Cut(rest, ".")
	if !ok {
		return nil, fail(ErrMalformed, "token: missing signature")
	}
	payload, err := b64.DecodeString(p64)
	if err != nil {
		return nil, fail(ErrMalformed, "token: payload is not base64url")
	}
	sig, err := b64.DecodeString(s64)
	if err != nil {
		return nil, fail(ErrMalformed, "token: signature is not base64url")
	}
	var p tokenPayload
	if err := decodeCanonical(payload, &p, "token"); err != nil {
		return nil, err
	}
	if !validHexID(p.ID) {
		return nil, fail(ErrMalformed, "token: invalid id")
	}
	if sc, err := normalizeScopes(p.Scopes); err != nil || !slices.Equal(sc, p.Scopes) {
		return nil, fail(ErrMalformed, "token: invalid scopes")
	}
	if !validFingerprint(p.CA) {
		return nil, fail(ErrMalformed, "token: invalid CA fingerprint")
	}
	if !isCanonTime(p.Exp) {
		return nil, fail(ErrMalformed, "token: expiry must be UTC with second precision")
	}
	if err := checkCAKey(ca); err != nil {
		return nil, err
	}
	if fp := CAFingerprint(ca); p.CA != fp {
		return nil, fail(ErrWrongCA, "token issued by %s, not by cluster CA %s", p.CA, fp)
	}
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(ca, domain(tokenDomain, payload), sig) {
		return nil, fail(ErrBadSignature, "token %s: invalid CA signature", p.ID)
	}
	if now.After(p.Exp) {
		return nil, fail(ErrExpired, "token %s expired at %s", p.ID, p.Exp.Format(time.RFC3339))
	}
	return &Token{ID: p.ID, Scopes: p.Scopes, NotAfter: p.Exp}, nil
}
