package crypto

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestTokenRoundTrip(t *testing.T) {
	ca := newCA(t)
	s, err := ca.IssueToken([]Scope{ScopeAdmin, ScopeRead, ScopeRead}, 24*time.Hour, t0.Add(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s, "dfp2p-api-v1.") || strings.Count(s, ".") != 2 || len(s) > MaxTokenSize {
		t.Fatalf("token %q", s)
	}
	tok, err := ParseToken(" "+s+"\n", ca.Public(), t0.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(tok.ID) != 32 || FormatScopes(tok.Scopes) != "read,admin" || !tok.NotAfter.Equal(t0.Add(24*time.Hour)) {
		t.Fatalf("token %+v", tok)
	}
	payload, _ := b64.DecodeString(strings.Split(s, ".")[1])
	want := `{"id":"` + tok.ID + `","scopes":["read","admin"],"ca":"` + ca.Fingerprint() + `","exp":"2026-03-02T12:00:00Z"}`
	if string(payload) != want {
		t.Fatalf("payload %s\nwant    %s", payload, want)
	}
	s2, _ := ca.IssueToken([]Scope{ScopeRead}, time.Hour, t0)
	tok2, err := ParseToken(s2, ca.Public(), t0)
	if err != nil || tok2.ID == tok.ID {
		t.Fatalf("second token: %v", err)
	}
}

func TestTokenScopes(t *testing.T) {
	all := []Scope{ScopeRead, ScopePreheat, ScopeAdmin}
	for _, tc := range []struct {
		held  []Scope
		allow string
	}{
		{[]Scope{ScopeRead}, "read"},
		{[]Scope{ScopePreheat}, "read,preheat"},
		{[]Scope{ScopeAdmin}, "read,preheat,admin"},
		{[]Scope{ScopeRead, ScopePreheat}, "read,preheat"},
		{nil, ""},
	} {
		tok := &Token{Scopes: tc.held}
		var got []Scope
		for _, s := range all {
			if tok.Allows(s) {
				got = append(got, s)
				if err := tok.Require(s); err != nil {
					t.Error(err)
				}
			} else {
				wantErr(t, tok.Require(s), ErrScope)
			}
		}
		if FormatScopes(got) != tc.allow {
			t.Errorf("%v allows %v, want %s", tc.held, got, tc.allow)
		}
		if tok.Allows("root") || tok.Allows("") {
			t.Errorf("%v allows an unknown scope", tc.held)
		}
	}
	var nilTok *Token
	if nilTok.Allows(ScopeRead) {
		t.Fatal("nil token allows read")
	}
	wantErr(t, nilTok.Require(ScopeRead), ErrScope)
}

func TestIssueTokenErrors(t *testing.T) {
	ca := newCA(t)
	for name, f := range map[string]func() error{
		"no scopes":     func() error { _, err := ca.IssueToken(nil, time.Hour, t0); return err },
		"unknown scope": func() error { _, err := ca.IssueToken([]Scope{"root"}, time.Hour, t0); return err },
		"zero ttl":      func() error { _, err := ca.IssueToken([]Scope{ScopeRead}, 0, t0); return err },
	} {
		if err := f(); err == nil {
			t.Errorf("%s: issued", name)
		} else {
			wantErr(t, err, ErrMalformed)
		}
	}
}

func TestParseTokenFailures(t *testing.T) {
	ca, otherCA := newCA(t), newCA(t)
	s, err := ca.IssueToken([]Scope{ScopeRead}, time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(s, ".")
	payload, _ := b64.DecodeString(parts[1])
	var p tokenPayload
	if err := json.Unmarshal(payload, &p); err != nil {
		t.Fatal(err)
	}
	// withPayload re-encodes a changed payload and keeps the old signature.
	withPayload := func(f func(*tokenPayload)) string {
		q := p
		f(&q)
		b, _ := json.Marshal(q)
		return "dfp2p-api-v1." + b64.EncodeToString(b) + "." + parts[2]
	}
	sigBytes, _ := b64.DecodeString(parts[2])
	otherTok, _ := otherCA.IssueToken([]Scope{ScopeRead}, time.Hour, t0)

	cases := []struct {
		name string
		s    string
		now  time.Time
		want error
	}{
		{"expired", s, t0.Add(time.Hour + time.Second), ErrExpired},
		{"other CA", otherTok, t0, ErrWrongCA},
		{"tampered scopes", withPayload(func(q *tokenPayload) { q.Scopes = []Scope{ScopeAdmin} }), t0, ErrBadSignature},
		{"tampered expiry", withPayload(func(q *tokenPayload) { q.Exp = q.Exp.Add(time.Hour) }), t0, ErrBadSignature},
		{"tampered id", withPayload(func(q *tokenPayload) { q.ID = strings.Repeat("0", 32) }), t0, ErrBadSignature},
		{"flipped signature", "dfp2p-api-v1." + parts[1] + "." + b64.EncodeToString(flip(sigBytes, 0)), t0, ErrBadSignature},
		{"short signature", "dfp2p-api-v1." + parts[1] + "." + b64.EncodeToString(sigBytes[:63]), t0, ErrBadSignature},
		{"claims our CA", forge(t, otherCA, p), t0, ErrBadSignature},
		{"empty", "", t0, ErrMalformed},
		{"wrong prefix", strings.Replace(s, "dfp2p-api-v1.", "dfp2p-join-v1.", 1), t0, ErrMalformed},
		{"no signature", "dfp2p-api-v1." + parts[1], t0, ErrMalformed},
		{"extra part", s + ".x", t0, ErrMalformed},
		{"truncated", s[:len(s)-1], t0, ErrMalformed},
		{"padded", s + "=", t0, ErrMalformed},
		{"oversized", s + strings.Repeat("A", MaxTokenSize), t0, ErrMalformed},
		{"payload not json", "dfp2p-api-v1." + b64.EncodeToString([]byte("hi")) + "." + parts[2], t0, ErrMalformed},
		{"unknown scope", withPayload(func(q *tokenPayload) { q.Scopes = []Scope{"root"} }), t0, ErrMalformed},
		{"no scopes", withPayload(func(q *tokenPayload) { q.Scopes = []Scope{} }), t0, ErrMalformed},
		{"unsorted scopes", withPayload(func(q *tokenPayload) { q.Scopes = []Scope{ScopeAdmin, ScopeRead} }), t0, ErrMalformed},
		{"duplicate scopes", withPayload(func(q *tokenPayload) { q.Scopes = []Scope{ScopeRead, ScopeRead} }), t0, ErrMalformed},
		{"bad id", withPayload(func(q *tokenPayload) { q.ID = "x" }), t0, ErrMalformed},
		{"fractional expiry", withPayload(func(q *tokenPayload) { q.Exp = q.Exp.Add(time.Millisecond) }), t0, ErrMalformed},
		{"bad fingerprint", withPayload(func(q *tokenPayload) { q.CA = "ca-x" }), t0, ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseToken(tc.s, ca.Public(), tc.now)
			wantErr(t, err, tc.want)
		})
	}
	if _, err := ParseToken(s, ca.Public()[:10], t0); err == nil {
		t.Fatal("short CA key accepted")
	}
}

// forge signs payload p, labelled with p.CA, with another CA's key.
func forge(t *testing.T, signer *CA, p tokenPayload) string {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return "dfp2p-api-v1." + b64.EncodeToString(b) + "." + b64.EncodeToString(signWith(signer, domain(tokenDomain, b)))
}
