package crypto

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestCertificateRoundTrip(t *testing.T) {
	ca := newCA(t)
	p := newPeer(t)
	now := t0.Add(500 * time.Millisecond).In(time.FixedZone("X", 3600))
	c, err := ca.Issue(p, RoleSeed, 90*time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	if !c.NotBefore.Equal(t0) || c.NotBefore.Location() != time.UTC || !c.NotAfter.Equal(t0.Add(90*time.Minute)) {
		t.Fatalf("validity %s .. %s", c.NotBefore, c.NotAfter)
	}
	if c.Version != 1 || c.CA != ca.Fingerprint() || len(c.Serial) != 32 || len(c.Sig) != 64 {
		t.Fatalf("certificate %+v", c)
	}
	if got := c.RenewAt(); !got.Equal(t0.Add(time.Hour)) {
		t.Errorf("RenewAt = %s", got)
	}
	b := encode(t, c)
	if bytes.ContainsAny(b, " \n\t") || !bytes.HasPrefix(b, []byte(`{"v":1,"peer":"`+p.String()+`","role":"seed","ca":"`)) {
		t.Fatalf("encoding %s", b)
	}
	d, err := DecodeCertificate(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(encode(t, d), b) {
		t.Fatal("re-encoding differs")
	}
	for _, at := range []time.Time{t0, t0.Add(-time.Minute), c.NotAfter, t0.Add(time.Hour)} {
		if err := d.Verify(ca.Public(), p, at); err != nil {
			t.Errorf("at %s: %v", at, err)
		}
	}
	if err := d.Verify(ca.Public(), "", t0); err != nil {
		t.Error(err)
	}
	other, err := ca.Issue(p, RoleSeed, 90*time.Minute, now)
	if err != nil || other.Serial == c.Serial {
		t.Fatalf("serials repeat: %v", err)
	}
}

func TestCertificateIssueErrors(t *testing.T) {
	ca := newCA(t)
	p := newPeer(t)
	for name, f := range map[string]func() error{
		"empty peer":   func() error { _, err := ca.Issue("", RolePeer, time.Hour, t0); return err },
		"garbage peer": func() error { _, err := ca.Issue("\x00\x05abc", RolePeer, time.Hour, t0); return err },
		"bad role":     func() error { _, err := ca.Issue(p, "admin", time.Hour, t0); return err },
		"zero ttl":     func() error { _, err := ca.Issue(p, RolePeer, 0, t0); return err },
		"negative ttl": func() error { _, err := ca.Issue(p, RolePeer, -time.Hour, t0); return err },
		"year 10000": func() error {
			_, err := ca.Issue(p, RolePeer, time.Hour, time.Date(9999, 12, 31, 23, 30, 0, 0, time.UTC))
			return err
		},
	} {
		if err := f(); err == nil {
			t.Errorf("%s: issued", name)
		} else {
			wantErr(t, err, ErrMalformed)
		}
	}
}

// tamper returns the encoding of a copy of c changed by f, not re-signed.
func tamper(t *testing.T, c *Certificate, f func(*Certificate)) []byte {
	t.Helper()
	u := *c
	f(&u)
	b, err := u.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCertificateVerifyFailures(t *testing.T) {
	ca, otherCA := newCA(t), newCA(t)
	p, q := newPeer(t), newPeer(t)
	c := issue(t, ca, p, RolePeer)
	good := encode(t, c)

	verify := func(b []byte, pub []byte, id string, now time.Time) error {
		d, err := DecodeCertificate(b)
		if err != nil {
			return err
		}
		return d.Verify(pub, peerID(id), now)
	}
	ps := string(p)
	cases := []struct {
		name string
		b    []byte
		ca   []byte
		peer string
		now  time.Time
		want error
	}{
		{"another peer", good, ca.Public(), string(q), t0, ErrWrongPeer},
		{"another CA", good, otherCA.Public(), ps, t0, ErrWrongCA},
		{"short CA key", good, ca.Public()[:31], ps, t0, ErrWrongCA},
		{"nil CA key", good, nil, ps, t0, ErrWrongCA},
		{"expired", good, ca.Public(), ps, c.NotAfter.Add(time.Second), ErrExpired},
		{"not yet valid", good, ca.Public(), ps, t0.Add(-time.Minute - time.Second), ErrNotYetValid},
		{"tampered role", tamper(t, c, func(u *Certificate) { u.Role = RoleTracker }), ca.Public(), ps, t0, ErrBadSignature},
		{"tampered peer", tamper(t, c, func(u *Certificate) { u.Peer = q }), ca.Public(), string(q), t0, ErrBadSignature},
		{"tampered expiry", tamper(t, c, func(u *Certificate) { u.NotAfter = u.NotAfter.Add(time.Hour) }), ca.Public(), ps, t0, ErrBadSignature},
		{"tampered start", tamper(t, c, func(u *Certificate) { u.NotBefore = u.NotBefore.Add(-time.Hour) }), ca.Public(), ps, t0, ErrBadSignature},
		{"tampered serial", tamper(t, c, func(u *Certificate) { u.Serial = strings.Repeat("0", 32) }), ca.Public(), ps, t0, ErrBadSignature},
		{"claims other CA", tamper(t, c, func(u *Certificate) { u.CA = otherCA.Fingerprint() }), otherCA.Public(), ps, t0, ErrBadSignature},
		{"flipped signature", tamper(t, c, func(u *Certificate) { u.Sig = flip(u.Sig, 17) }), ca.Public(), ps, t0, ErrBadSignature},
		{"signed by other CA", encode(t, issueAs(t, otherCA, ca.Fingerprint(), p)), ca.Public(), ps, t0, ErrBadSignature},
		{"wrong version", bytes.Replace(good, []byte(`{"v":1,`), []byte(`{"v":2,`), 1), ca.Public(), ps, t0, ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantErr(t, verify(tc.b, tc.ca, tc.peer, tc.now), tc.want) })
	}

	// Verify on a certificate built in memory checks it too.
	u := *c
	u.Role = "root"
	wantErr(t, u.Verify(ca.Public(), p, t0), ErrMalformed)
	u = *c
	u.Sig = nil
	wantErr(t, u.Verify(ca.Public(), p, t0), ErrBadSignature)
	var nilCert *Certificate
	wantErr(t, nilCert.Verify(ca.Public(), p, t0), ErrMalformed)
}

// issueAs signs a certificate with ca but labels it with fingerprint fp.
func issueAs(t *testing.T, ca *CA, fp string, p peerID) *Certificate {
	t.Helper()
	c := issue(t, ca, p, RolePeer)
	c.CA = fp
	c.Sig = nil
	msg, err := c.signedBytes()
	if err != nil {
		t.Fatal(err)
	}
	c.Sig = signWith(ca, msg)
	return c
}

func TestDecodeCertificateMalformed(t *testing.T) {
	ca := newCA(t)
	c := issue(t, ca, newPeer(t), RolePeer)
	good := string(encode(t, c))
	var generic map[string]any
	if err := json.Unmarshal([]byte(good), &generic); err != nil {
		t.Fatal(err)
	}
	with := func(k string, v any) string {
		m := map[string]any{}
		for k, v := range generic {
			m[k] = v
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		b, _ := json.Marshal(m) // map order: not canonical
		return string(b)
	}
	bad := map[string]string{
		"empty":            "",
		"null":             "null",
		"truncated":        good[:len(good)-1],
		"trailing data":    good + "{}",
		"trailing garbage": good + "x",
		"whitespace":       strings.Replace(good, `,"role"`, `, "role"`, 1),
		"unknown field":    strings.Replace(good, `{"v":1,`, `{"v":1,"x":0,`, 1),
		"duplicate field":  strings.Replace(good, `{"v":1,`, `{"v":1,"v":1,`, 1),
		"upper-case key":   strings.Replace(good, `"role"`, `"Role"`, 1),
		"field order":      with("v", 1.0),
		"no signature":     with("sig", nil),
		"bad role":         strings.Replace(good, `"role":"peer"`, `"role":"admin"`, 1),
		"bad peer":         strings.Replace(good, `"peer":"`, `"peer":"x`, 1),
		"empty peer":       strings.Replace(good, `"peer":"`+c.Peer.String()+`"`, `"peer":""`, 1),
		"fractional time":  strings.Replace(good, `:00Z","exp"`, `:00.5Z","exp"`, 1),
		"offset time":      strings.Replace(good, `T12:00:00Z`, `T13:00:00+01:00`, 1),
		"expiry first":     strings.Replace(good, `"exp":"2026-03-01T13:00:00Z"`, `"exp":"2026-03-01T12:00:00Z"`, 1),
		"bad serial":       strings.Replace(good, c.Serial, strings.ToUpper(c.Serial), 1),
		"bad fingerprint":  strings.Replace(good, c.CA, strings.ToUpper(c.CA), 1),
		"short signature":  strings.Replace(good, `"sig":"`, `"sig":"AAAA`, 1),
		"version 0":        strings.Replace(good, `{"v":1,`, `{"v":0,`, 1),
		"array":            "[" + good + "]",
		"oversized":        good[:len(good)-1] + `,"pad":"` + strings.Repeat("a", MaxCertificateSize) + `"}`,
	}
	for name, in := range bad {
		if in == good {
			t.Fatalf("%s: replacement did nothing", name)
		}
		if _, err := DecodeCertificate([]byte(in)); err == nil {
			t.Errorf("%s: decoded %s", name, in)
		} else {
			wantErr(t, err, ErrMalformed)
		}
	}
}
