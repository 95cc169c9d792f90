package crypto

import (
	"bytes"
	"strings"
	"testing"
)

func TestJoinTokenRoundTrip(t *testing.T) {
	ca := newCA(t)
	addrs := []string{"/ip4/10.0.0.1/udp/4001/quic-v1/p2p/" + newPeer(t).String(), "/dns4/tracker.example/tcp/4001"}
	tok, err := NewJoinToken(addrs, ca.Public())
	if err != nil {
		t.Fatal(err)
	}
	if len(tok.Secret) != 32 || bytes.Equal(tok.Secret, make([]byte, 32)) {
		t.Fatalf("secret %x", tok.Secret)
	}
	s := tok.String()
	if !strings.HasPrefix(s, "dfp2p-join-v1.") || strings.ContainsAny(s, " \n=+/") {
		t.Fatalf("token %q", s)
	}
	got, err := ParseJoinToken("  " + s + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if !got.CA.Equal(ca.Public()) || !bytes.Equal(got.Secret, tok.Secret) || strings.Join(got.Addrs, " ") != strings.Join(addrs, " ") {
		t.Fatalf("parsed %+v", got)
	}
	if got.String() != s {
		t.Fatal("String of parsed token differs")
	}
	payload, _ := b64.DecodeString(strings.TrimPrefix(s, "dfp2p-join-v1."))
	want := `{"addrs":["` + addrs[0] + `","` + addrs[1] + `"],"ca":"` + EncodePublicKey(ca.Public()) + `","secret":"` + b64.EncodeToString(tok.Secret) + `"}`
	if string(payload) != want {
		t.Fatalf("payload %s\nwant    %s", payload, want)
	}
	other, _ := NewJoinToken(addrs, ca.Public())
	if bytes.Equal(other.Secret, tok.Secret) {
		t.Fatal("secrets repeat")
	}
}

func TestNewJoinTokenErrors(t *testing.T) {
	ca := newCA(t)
	for name, f := range map[string]func() error{
		"no addrs":      func() error { _, err := NewJoinToken(nil, ca.Public()); return err },
		"empty addr":    func() error { _, err := NewJoinToken([]string{""}, ca.Public()); return err },
		"space in addr": func() error { _, err := NewJoinToken([]string{"a b"}, ca.Public()); return err },
		"short key":     func() error { _, err := NewJoinToken([]string{"/ip4/1.2.3.4"}, ca.Public()[:5]); return err },
		"too many": func() error {
			_, err := NewJoinToken(strings.Split(strings.Repeat("/ip4/10.0.0.1/tcp/4001,", 400), ","), ca.Public())
			return err
		},
	} {
		if err := f(); err == nil {
			t.Errorf("%s: accepted", name)
		} else {
			wantErr(t, err, ErrMalformed)
		}
	}
}

func TestParseJoinTokenMalformed(t *testing.T) {
	ca := newCA(t)
	tok, err := NewJoinToken([]string{"/ip4/10.0.0.1/tcp/4001"}, ca.Public())
	if err != nil {
		t.Fatal(err)
	}
	s := tok.String()
	payload := func(j string) string { return "dfp2p-join-v1." + b64.EncodeToString([]byte(j)) }
	k := EncodePublicKey(ca.Public())
	sec := b64.EncodeToString(tok.Secret)
	bad := map[string]string{
		"empty":          "",
		"prefix only":    "dfp2p-join-v1.",
		"wrong prefix":   "dfp2p-join-v2." + strings.TrimPrefix(s, "dfp2p-join-v1."),
		"api prefix":     "dfp2p-api-v1." + strings.TrimPrefix(s, "dfp2p-join-v1."),
		"no prefix":      strings.TrimPrefix(s, "dfp2p-join-v1."),
		"truncated":      s[:len(s)-5],
		"last char":      s[:len(s)-1],
		"padded":         s + "=",
		"inner space":    s[:20] + " " + s[20:],
		"garbage":        "dfp2p-join-v1.!!!!",
		"oversized":      s + strings.Repeat("A", MaxJoinTokenSize),
		"not json":       payload("hello"),
		"no addrs":       payload(`{"addrs":[],"ca":"` + k + `","secret":"` + sec + `"}`),
		"null addrs":     payload(`{"addrs":null,"ca":"` + k + `","secret":"` + sec + `"}`),
		"empty addr":     payload(`{"addrs":[""],"ca":"` + k + `","secret":"` + sec + `"}`),
		"short secret":   payload(`{"addrs":["x"],"ca":"` + k + `","secret":"` + sec[:40] + `"}`),
		"short key":      payload(`{"addrs":["x"],"ca":"` + k[:40] + `","secret":"` + sec + `"}`),
		"unknown field":  payload(`{"addrs":["x"],"ca":"` + k + `","secret":"` + sec + `","x":1}`),
		"field order":    payload(`{"ca":"` + k + `","addrs":["x"],"secret":"` + sec + `"}`),
		"spaces":         payload(`{"addrs": ["x"],"ca":"` + k + `","secret":"` + sec + `"}`),
		"trailing data":  payload(`{"addrs":["x"],"ca":"` + k + `","secret":"` + sec + `"}{}`),
		"std base64 key": payload(`{"addrs":["x"],"ca":"` + k + `=","secret":"` + sec + `"}`),
	}
	if _, err := ParseJoinToken(payload(`{"addrs":["x"],"ca":"` + k + `","secret":"` + sec + `"}`)); err != nil {
		t.Fatalf("hand-made token: %v", err)
	}
	for name, in := range bad {
		if _, err := ParseJoinToken(in); err == nil {
			t.Errorf("%s: parsed", name)
		} else {
			wantErr(t, err, ErrMalformed)
		}
	}
}

func TestJoinProof(t *testing.T) {
	secret := bytes.Repeat([]byte{1}, 32)
	other := bytes.Repeat([]byte{2}, 32)
	m, tr, x := newPeer(t), newPeer(t), newPeer(t)
	proof := JoinProof(secret, m, tr)
	if len(proof) != 32 {
		t.Fatalf("proof of %d bytes", len(proof))
	}
	if !CheckJoinProof(secret, m, tr, proof) {
		t.Fatal("valid proof rejected")
	}
	for name, ok := range map[string]bool{
		"wrong secret":  CheckJoinProof(other, m, tr, proof),
		"wrong member":  CheckJoinProof(secret, x, tr, proof),
		"wrong tracker": CheckJoinProof(secret, m, x, proof),
		"swapped":       CheckJoinProof(secret, tr, m, proof),
		"flipped":       CheckJoinProof(secret, m, tr, flip(proof, 3)),
		"truncated":     CheckJoinProof(secret, m, tr, proof[:31]),
		"empty":         CheckJoinProof(secret, m, tr, nil),
		"short secret":  CheckJoinProof(secret[:16], m, tr, JoinProof(secret[:16], m, tr)),
		"empty member":  CheckJoinProof(secret, "", tr, JoinProof(secret, "", tr)),
	} {
		if ok {
			t.Errorf("%s: accepted", name)
		}
	}
	// The separator keeps the split between member and tracker unambiguous.
	if bytes.Equal(JoinProof(secret, "ab", "c"), JoinProof(secret, "a", "bc")) {
		t.Fatal("ambiguous proof input")
	}
}
