package crypto

import (
	"bytes"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// fuzzCA is a fixed CA so that inputs saved in the corpus stay meaningful.
var fuzzCA = func() *CA {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{42}, ed25519.SeedSize))
	return &CA{priv: priv, pub: priv.Public().(ed25519.PublicKey)}
}()

// FuzzDecodeCertificate: no input crashes decoding or verification, and
// whatever decodes re-encodes to the same bytes.
func FuzzDecodeCertificate(f *testing.F) {
	p := newPeer(f)
	c := issue(f, fuzzCA, p, RoleSeed)
	good := encode(f, c)
	f.Add(good)
	f.Add(bytes.Replace(good, []byte(`"seed"`), []byte(`"peer"`), 1))
	f.Add(bytes.Replace(good, []byte(`{"v":1`), []byte(`{"v":2`), 1))
	f.Add(good[:len(good)-3])
	f.Add(append(bytes.Clone(good), ' '))
	f.Add(flip(good, len(good)-10))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := DecodeCertificate(in)
		if err != nil {
			return
		}
		out, err := c.Encode()
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("accepted %q re-encodes to %q, %v", in, out, err)
		}
		_ = c.Verify(fuzzCA.pub, "", t0)
		_ = c.Verify(fuzzCA.pub, p, c.NotBefore)
		_ = c.RenewAt()
	})
}

// FuzzParseJoinToken: no input crashes the parser; accepted tokens print back
// as they were read.
func FuzzParseJoinToken(f *testing.F) {
	tok, err := NewJoinToken([]string{"/ip4/10.0.0.1/udp/4001/quic-v1", "/dns4/t.example/tcp/4001"}, fuzzCA.pub)
	if err != nil {
		f.Fatal(err)
	}
	s := tok.String()
	f.Add(s)
	f.Add(" " + s + "\n")
	f.Add(s[:len(s)-4])
	f.Add("dfp2p-join-v1." + b64.EncodeToString([]byte(`{"addrs":[],"ca":"","secret":""}`)))
	f.Add("dfp2p-join-v1.")
	f.Add("")
	f.Fuzz(func(t *testing.T, in string) {
		tok, err := ParseJoinToken(in)
		if err != nil {
			return
		}
		if got := tok.String(); got != strings.TrimSpace(in) {
			t.Fatalf("accepted %q prints as %q", in, got)
		}
		if len(tok.Secret) != JoinSecretSize || len(tok.CA) != ed25519.PublicKeySize || len(tok.Addrs) == 0 {
			t.Fatalf("accepted invalid token %+v", tok)
		}
	})
}

// FuzzParseToken: no input crashes the parser; an accepted token is one the CA
// signed and is not expired.
func FuzzParseToken(f *testing.F) {
	s, err := fuzzCA.IssueToken([]Scope{ScopePreheat}, time.Hour, t0)
	if err != nil {
		f.Fatal(err)
	}
	parts := strings.Split(s, ".")
	f.Add(s)
	f.Add(s[:len(s)-2])
	f.Add(parts[0] + "." + parts[1] + ".")
	f.Add(parts[0] + "." + b64.EncodeToString([]byte(`{"id":"","scopes":["admin"],"ca":"","exp":"2026-03-01T12:00:00Z"}`)) + "." + parts[2])
	f.Add("dfp2p-api-v1..")
	f.Fuzz(func(t *testing.T, in string) {
		tok, err := ParseToken(in, fuzzCA.pub, t0)
		if err != nil {
			return
		}
		if tok.NotAfter.Before(t0) || len(tok.Scopes) == 0 || !tok.Allows(tok.Scopes[0]) {
			t.Fatalf("accepted invalid token %+v", tok)
		}
	})
}

// FuzzDecodeSignedManifest: no input crashes decoding or verification; what
// decodes re-encodes to the same bytes.
func FuzzDecodeSignedManifest(f *testing.F) {
	sk, id := newKey(f)
	sm, err := SignManifest(testManifest(f), sk, issue(f, fuzzCA, id, RoleSeed))
	if err != nil {
		f.Fatal(err)
	}
	good := encode(f, sm)
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(flip(good, len(signedManifestMagic)+40))
	f.Add(flip(good, len(good)-20))
	f.Add([]byte(signedManifestMagic + "\x00\x02{}\x00\x01x{}"))
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := DecodeSignedManifest(in)
		if err != nil {
			return
		}
		out, err := s.Encode()
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("accepted input re-encodes differently: %v", err)
		}
		if m, err := s.Verify(fuzzCA.pub, t0); err == nil {
			if _, err := m.Encode(); err != nil {
				t.Fatalf("verified manifest does not encode: %v", err)
			}
		}
	})
}

// FuzzDecodeRevocationList: no input crashes decoding or verification; what
// decodes re-encodes to the same bytes.
func FuzzDecodeRevocationList(f *testing.F) {
	r, err := fuzzCA.SignRevocations([]peer.ID{newPeer(f), newPeer(f)}, t0)
	if err != nil {
		f.Fatal(err)
	}
	good := encode(f, r)
	empty, _ := fuzzCA.SignRevocations(nil, t0)
	f.Add(good)
	f.Add(encode(f, empty))
	f.Add(good[:len(good)-2])
	f.Add(flip(good, len(good)-12))
	f.Add([]byte(`{"v":1,"issued":"2026-03-01T12:00:00Z","peers":[],"sig":""}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := DecodeRevocationList(in)
		if err != nil {
			return
		}
		out, err := r.Encode()
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("accepted %q re-encodes to %q, %v", in, out, err)
		}
		_ = r.Verify(fuzzCA.pub)
		for _, p := range r.Peers {
			if !r.Has(p) {
				t.Fatalf("list lacks its own peer %s", p)
			}
		}
	})
}
