package crypto

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/dfp2p/dfp2p/content"
)

func TestSignedManifestRoundTrip(t *testing.T) {
	ca := newCA(t)
	sk, id := newKey(t)
	mb := testManifest(t)
	for _, role := range []Role{RoleSeed, RoleTracker} {
		cert := issue(t, ca, id, role)
		sm, err := SignManifest(mb, sk, cert)
		if err != nil {
			t.Fatal(err)
		}
		b := encode(t, sm)
		d, err := DecodeSignedManifest(b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(encode(t, d), b) || !bytes.Equal(d.Manifest, mb) {
			t.Fatal("round trip changed the bytes")
		}
		m, err := d.Verify(ca.Public(), t0.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := content.DecodeManifest(mb)
		if m.TaskID != want.TaskID || len(m.Pieces) != len(want.Pieces) {
			t.Fatalf("manifest %+v", m)
		}
		c, err := d.Certificate()
		if err != nil || c.Peer != id || c.Role != role {
			t.Fatalf("Certificate() = %+v, %v", c, err)
		}
	}
}

func TestSignManifestErrors(t *testing.T) {
	ca := newCA(t)
	sk, id := newKey(t)
	otherSK, _ := newKey(t)
	mb := testManifest(t)
	seedCert := issue(t, ca, id, RoleSeed)
	unsigned := *seedCert
	unsigned.Sig = nil
	for name, tc := range map[string]struct {
		err  error
		want error
	}{
		"key of another peer": {second(SignManifest(mb, otherSK, seedCert)), ErrWrongPeer},
		"peer role":           {second(SignManifest(mb, sk, issue(t, ca, id, RolePeer))), ErrBadSignature},
		"not a manifest":      {second(SignManifest([]byte(`{"v":1}`), sk, seedCert)), ErrMalformed},
		"unsigned cert":       {second(SignManifest(mb, sk, &unsigned)), ErrMalformed},
		"nil cert":            {second(SignManifest(mb, sk, nil)), ErrMalformed},
		"nil key":             {second(SignManifest(mb, nil, seedCert)), ErrMalformed},
	} {
		t.Run(name, func(t *testing.T) { wantErr(t, tc.err, tc.want) })
	}
}

func second[T any](_ T, err error) error { return err }

func TestSignedManifestVerifyFailures(t *testing.T) {
	ca, otherCA := newCA(t), newCA(t)
	sk, id := newKey(t)
	otherSK, otherID := newKey(t)
	mb := testManifest(t)
	cert := issue(t, ca, id, RoleSeed)
	sm, err := SignManifest(mb, sk, cert)
	if err != nil {
		t.Fatal(err)
	}
	good := encode(t, sm)

	// A peer-role certificate for the same key, with a valid signature.
	peerCert := encode(t, issue(t, ca, id, RolePeer))
	// A seed certificate for another peer, with the first peer's signature.
	otherCert := encode(t, issue(t, ca, otherID, RoleSeed))
	// A signature by another key under the original certificate.
	otherSig, _ := otherSK.Sign(domain(manifestDomain, mb))
	// A different, valid manifest under the original signature.
	m2, _ := content.DecodeManifest(mb)
	m2.SHA256 = "e" + m2.SHA256[1:]
	mb2, _ := m2.Encode()
	// A certificate from another CA.
	foreign, _ := SignManifest(mb, sk, issue(t, otherCA, id, RoleSeed))

	cases := []struct {
		name string
		sm   *SignedManifest
		now  time.Time
		want error
	}{
		{"peer-role cert", &SignedManifest{Manifest: mb, Cert: peerCert, Sig: sm.Sig}, t0, ErrBadSignature},
		{"cert swapped", &SignedManifest{Manifest: mb, Cert: otherCert, Sig: sm.Sig}, t0, ErrBadSignature},
		{"signed by another key", &SignedManifest{Manifest: mb, Cert: sm.Cert, Sig: otherSig}, t0, ErrBadSignature},
		{"other manifest", &SignedManifest{Manifest: mb2, Cert: sm.Cert, Sig: sm.Sig}, t0, ErrBadSignature},
		{"truncated signature", &SignedManifest{Manifest: mb, Cert: sm.Cert, Sig: sm.Sig[:63]}, t0, ErrBadSignature},
		{"other CA", foreign, t0, ErrWrongCA},
		{"expired cert", sm, t0.Add(2 * time.Hour), ErrExpired},
		{"cert not yet valid", sm, t0.Add(-time.Hour), ErrNotYetValid},
		{"garbage cert", &SignedManifest{Manifest: mb, Cert: []byte("{}"), Sig: sm.Sig}, t0, ErrMalformed},
		{"empty manifest", &SignedManifest{Cert: sm.Cert, Sig: sm.Sig}, t0, ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.sm.Verify(ca.Public(), tc.now)
			wantErr(t, err, tc.want)
		})
	}

	// Flipping any bit of the encoding breaks decoding or verification.
	for i := range good {
		for _, bit := range []byte{0x01, 0x80} {
			b := bytes.Clone(good)
			b[i] ^= bit
			d, err := DecodeSignedManifest(b)
			if err == nil {
				_, err = d.Verify(ca.Public(), t0)
			}
			if err == nil {
				t.Fatalf("flipping bit %#x of byte %d was accepted", bit, i)
			}
		}
	}
}

func TestDecodeSignedManifestMalformed(t *testing.T) {
	ca := newCA(t)
	sk, id := newKey(t)
	sm, err := SignManifest(testManifest(t), sk, issue(t, ca, id, RoleSeed))
	if err != nil {
		t.Fatal(err)
	}
	good := encode(t, sm)
	hdr := len(signedManifestMagic)
	big := make([]byte, 0, MaxSignedManifestSize+1)
	big = append(big, good...)
	big = big[:MaxSignedManifestSize+1]
	bad := map[string][]byte{
		"empty":           nil,
		"magic only":      []byte(signedManifestMagic),
		"wrong magic":     append([]byte("dfp2p-signed-manifest-v2\x00"), good[hdr:]...),
		"cert truncated":  good[:hdr+10],
		"no manifest":     good[:hdr+2+len(sm.Cert)+2+len(sm.Sig)],
		"cert len huge":   binary.BigEndian.AppendUint16([]byte(signedManifestMagic), 0xffff),
		"cert len zero":   append(binary.BigEndian.AppendUint16([]byte(signedManifestMagic), 0), good[hdr+2:]...),
		"oversized":       big,
		"one byte header": good[:hdr+1],
	}
	for name, b := range bad {
		if _, err := DecodeSignedManifest(b); err == nil {
			t.Errorf("%s: decoded", name)
		} else {
			wantErr(t, err, ErrMalformed)
		}
	}
	if _, err := (&SignedManifest{Manifest: []byte("x"), Cert: make([]byte, MaxCertificateSize+1), Sig: []byte("s")}).Encode(); err == nil {
		t.Fatal("oversized certificate encoded")
	}
}
