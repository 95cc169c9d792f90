package crypto

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestRevocationListRoundTrip(t *testing.T) {
	ca := newCA(t)
	a, b, c, outsider := newPeer(t), newPeer(t), newPeer(t), newPeer(t)
	r, err := ca.SignRevocations([]peer.ID{c, a, b, a}, t0.Add(time.Second/2))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Peers) != 3 || !slices.IsSorted(r.Peers) || !r.Issued.Equal(t0) {
		t.Fatalf("list %+v", r)
	}
	enc := encode(t, r)
	if !bytes.HasPrefix(enc, []byte(`{"v":1,"issued":"2026-03-01T12:00:00Z","peers":["`)) {
		t.Fatalf("encoding %s", enc)
	}
	d, err := DecodeRevocationList(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(encode(t, d), enc) {
		t.Fatal("re-encoding differs")
	}
	if err := d.Verify(ca.Public()); err != nil {
		t.Fatal(err)
	}
	for _, p := range []peer.ID{a, b, c} {
		if !d.Has(p) {
			t.Errorf("%s missing", p)
		}
		wantErr(t, d.Check(p), ErrRevoked)
	}
	if d.Has(outsider) || d.Check(outsider) != nil {
		t.Error("outsider revoked")
	}
	// A hand-built, unsorted list still answers Has.
	if !(&RevocationList{Peers: []peer.ID{c, a}}).Has(a) {
		t.Error("unsorted list misses a peer")
	}
	var nilList *RevocationList
	if nilList.Has(a) {
		t.Error("nil list has a peer")
	}

	empty, err := ca.SignRevocations(nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	ee := encode(t, empty)
	if !strings.Contains(string(ee), `"peers":[]`) {
		t.Fatalf("empty list %s", ee)
	}
	de, err := DecodeRevocationList(ee)
	if err != nil || de.Verify(ca.Public()) != nil || de.Has(a) {
		t.Fatalf("empty list: %v", err)
	}
}

func TestRevocationListFailures(t *testing.T) {
	ca, otherCA := newCA(t), newCA(t)
	a, b, x := newPeer(t), newPeer(t), newPeer(t)
	r, err := ca.SignRevocations([]peer.ID{a, b}, t0)
	if err != nil {
		t.Fatal(err)
	}
	resign := func(f func(*RevocationList)) *RevocationList {
		u := *r
		u.Peers = slices.Clone(r.Peers)
		f(&u)
		return &u
	}
	foreign, _ := otherCA.SignRevocations([]peer.ID{a, b}, t0)
	for name, tc := range map[string]struct {
		r    *RevocationList
		want error
	}{
		"peer removed":  {resign(func(u *RevocationList) { u.Peers = u.Peers[:1] }), ErrBadSignature},
		"peer added":    {resign(func(u *RevocationList) { u.Peers = append(u.Peers, x); slices.Sort(u.Peers) }), ErrBadSignature},
		"peer replaced": {resign(func(u *RevocationList) { u.Peers = []peer.ID{x} }), ErrBadSignature},
		"issued later":  {resign(func(u *RevocationList) { u.Issued = u.Issued.Add(time.Hour) }), ErrBadSignature},
		"flipped sig":   {resign(func(u *RevocationList) { u.Sig = flip(u.Sig, 9) }), ErrBadSignature},
		"no sig":        {resign(func(u *RevocationList) { u.Sig = nil }), ErrBadSignature},
		"other CA":      {foreign, ErrBadSignature},
		"unsorted":      {resign(func(u *RevocationList) { slices.Reverse(u.Peers) }), ErrMalformed},
		"nil":           {nil, ErrMalformed},
	} {
		t.Run(name, func(t *testing.T) {
			if tc.r != nil && tc.want == ErrBadSignature {
				// Survives an encode/decode round trip first.
				d, err := DecodeRevocationList(encode(t, tc.r))
				if err == nil {
					tc.r = d
				}
			}
			wantErr(t, tc.r.Verify(ca.Public()), tc.want)
		})
	}
	wantErr(t, r.Verify(ca.Public()[:4]), ErrWrongCA)
	if _, err := ca.SignRevocations([]peer.ID{""}, t0); err == nil {
		t.Fatal("empty peer ID signed")
	}
}

func TestDecodeRevocationListMalformed(t *testing.T) {
	ca := newCA(t)
	a, b := newPeer(t), newPeer(t)
	r, err := ca.SignRevocations([]peer.ID{a, b}, t0)
	if err != nil {
		t.Fatal(err)
	}
	good := string(encode(t, r))
	first, second := r.Peers[0].String(), r.Peers[1].String()
	bad := map[string]string{
		"empty":          "",
		"truncated":      good[:len(good)-2],
		"trailing":       good + " ",
		"version 2":      strings.Replace(good, `"v":1`, `"v":2`, 1),
		"null peers":     strings.Replace(good, `["`+first+`","`+second+`"]`, `null`, 1),
		"unsorted":       strings.Replace(good, `["`+first+`","`+second+`"]`, `["`+second+`","`+first+`"]`, 1),
		"duplicate":      strings.Replace(good, `["`+first+`","`+second+`"]`, `["`+first+`","`+first+`"]`, 1),
		"bad peer":       strings.Replace(good, first, "nope", 1),
		"unknown field":  strings.Replace(good, `{"v":1,`, `{"v":1,"ca":"x",`, 1),
		"no sig":         good[:strings.Index(good, `,"sig"`)] + "}",
		"offset time":    strings.Replace(good, `2026-03-01T12:00:00Z`, `2026-03-01T13:00:00+01:00`, 1),
		"fractional":     strings.Replace(good, `12:00:00Z`, `12:00:00.1Z`, 1),
		"oversized":      good[:len(good)-1] + `,"x":"` + strings.Repeat("a", MaxRevocationListSize) + `"}`,
		"not an object":  "[]",
		"peers as bytes": strings.Replace(good, `"`+first+`"`, `1`, 1),
	}
	for name, in := range bad {
		if in == good {
			t.Fatalf("%s: replacement did nothing", name)
		}
		if _, err := DecodeRevocationList([]byte(in)); err == nil {
			t.Errorf("%s: decoded", name)
		} else {
			wantErr(t, err, ErrMalformed)
		}
	}
}
