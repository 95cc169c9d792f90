package crypto

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestLoadOrCreateCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etc", "dfp2p")
	ca, created, err := LoadOrCreateCA(dir)
	if err != nil || !created {
		t.Fatalf("create: created=%v err=%v", created, err)
	}
	for name, want := range map[string]os.FileMode{"": 0o700, CAKeyFile: 0o600, CAPubKeyFile: 0o644} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != want {
			t.Errorf("%q: mode %04o, want %04o", name, got, want)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("directory holds %d entries, want 2 (no temp files left)", len(ents))
	}
	pubText, _ := os.ReadFile(filepath.Join(dir, CAPubKeyFile))
	if string(pubText) != EncodePublicKey(ca.Public())+"\n" {
		t.Errorf("pub file %q", pubText)
	}
	pub, err := LoadPublicKey(filepath.Join(dir, CAPubKeyFile))
	if err != nil || !pub.Equal(ca.Public()) {
		t.Fatalf("LoadPublicKey: %v", err)
	}

	again, created, err := LoadOrCreateCA(dir)
	if err != nil || created {
		t.Fatalf("reload: created=%v err=%v", created, err)
	}
	if !again.Public().Equal(ca.Public()) || !bytes.Equal(again.priv, ca.priv) {
		t.Fatal("reload gave another key")
	}
	loaded, err := LoadCA(filepath.Join(dir, CAKeyFile))
	if err != nil || !loaded.Public().Equal(ca.Public()) {
		t.Fatalf("LoadCA: %v", err)
	}

	// A lost .pub is written again.
	os.Remove(filepath.Join(dir, CAPubKeyFile))
	if _, _, err := LoadOrCreateCA(dir); err != nil {
		t.Fatal(err)
	}
	if pub, err := LoadPublicKey(filepath.Join(dir, CAPubKeyFile)); err != nil || !pub.Equal(ca.Public()) {
		t.Fatalf("pub not restored: %v", err)
	}

	// Certificates issued by the reloaded CA verify with the original key.
	p := newPeer(t)
	if err := issue(t, loaded, p, RolePeer).Verify(ca.Public(), p, t0); err != nil {
		t.Fatal(err)
	}
}

func TestCARefusesOpenKey(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := LoadOrCreateCA(dir); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, CAKeyFile)
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := LoadOrCreateCA(dir)
	if err == nil || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("LoadOrCreateCA on a 0644 key: %v", err)
	}
	if _, err := LoadCA(key); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("LoadCA on a 0644 key: %v", err)
	}
	os.Chmod(key, 0o640)
	if _, err := LoadCA(key); err == nil {
		t.Fatal("LoadCA accepted a group-readable key")
	}
	os.Chmod(key, 0o400)
	if _, err := LoadCA(key); err != nil {
		t.Fatalf("0400 key refused: %v", err)
	}
}

func TestLoadCABadFiles(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadCA(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing key loaded")
	}
	garbage := filepath.Join(dir, CAKeyFile)
	os.WriteFile(garbage, []byte("not a key\n"), 0o600)
	if _, err := LoadCA(garbage); err == nil {
		t.Fatal("garbage key loaded")
	}
	// LoadOrCreateCA must not replace an unreadable key with a new one.
	if _, _, err := LoadOrCreateCA(dir); err == nil {
		t.Fatal("LoadOrCreateCA replaced a garbage key")
	}
	if b, _ := os.ReadFile(garbage); string(b) != "not a key\n" {
		t.Fatal("garbage key overwritten")
	}
	if _, err := LoadCA(dir); err == nil {
		t.Fatal("directory loaded as a key")
	}
	if _, _, err := LoadOrCreateCA(""); err == nil {
		t.Fatal("empty directory accepted")
	}
}

func TestFingerprintAndKeyEncoding(t *testing.T) {
	ca := newCA(t)
	fp := CAFingerprint(ca.Public())
	if len(fp) != 19 || !strings.HasPrefix(fp, "ca-") || strings.ToLower(fp) != fp || !validFingerprint(fp) {
		t.Fatalf("fingerprint %q", fp)
	}
	if fp == CAFingerprint(newCA(t).Public()) {
		t.Fatal("two CAs share a fingerprint")
	}
	if fp != ca.Fingerprint() {
		t.Fatal("Fingerprint differs from CAFingerprint")
	}
	s := EncodePublicKey(ca.Public())
	if strings.ContainsAny(s, "=+/") || len(s) != 43 {
		t.Fatalf("encoded key %q", s)
	}
	pub, err := DecodePublicKey(" " + s + "\n")
	if err != nil || !pub.Equal(ca.Public()) {
		t.Fatalf("decode: %v", err)
	}
	for _, bad := range []string{"", s[:42], s + "A", s + "==", "!" + s[1:], EncodePublicKey(make(ed25519.PublicKey, 31))} {
		if _, err := DecodePublicKey(bad); err == nil {
			t.Errorf("%q decoded", bad)
		} else {
			wantErr(t, err, ErrMalformed)
		}
	}
	// Public returns a copy.
	ca.Public()[0] ^= 1
	if CAFingerprint(ca.Public()) != fp {
		t.Fatal("Public exposes the CA's key")
	}
}

func TestParseRoleAndScopes(t *testing.T) {
	for _, r := range []Role{RolePeer, RoleSeed, RoleTracker} {
		if got, err := ParseRole(string(r)); err != nil || got != r {
			t.Errorf("ParseRole(%q) = %q, %v", r, got, err)
		}
	}
	for _, bad := range []string{"", "admin", "Seed", " peer"} {
		if _, err := ParseRole(bad); err == nil {
			t.Errorf("ParseRole(%q) accepted", bad)
		} else {
			wantErr(t, err, ErrMalformed)
		}
	}
	sc, err := ParseScopes("admin, read,read")
	if err != nil || FormatScopes(sc) != "read,admin" {
		t.Fatalf("ParseScopes = %v, %v", sc, err)
	}
	for _, bad := range []string{"", ",", "read,", "write", "read,root"} {
		if _, err := ParseScopes(bad); err == nil {
			t.Errorf("ParseScopes(%q) accepted", bad)
		}
	}
}

func TestLoadOrCreateCAConcurrent(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	type result struct {
		pub     ed25519.PublicKey
		created bool
		err     error
	}
	results := make(chan result, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			ca, created, err := LoadOrCreateCA(dir)
			if err != nil {
				results <- result{err: err}
				return
			}
			results <- result{pub: ca.Public(), created: created}
		})
	}
	wg.Wait()
	close(results)
	var first ed25519.PublicKey
	creators := 0
	for r := range results {
		if r.err != nil {
			t.Fatal(r.err)
		}
		if first == nil {
			first = r.pub
		} else if !first.Equal(r.pub) {
			t.Fatal("callers got different keys")
		}
		if r.created {
			creators++
		}
	}
	if creators != 1 {
		t.Fatalf("%d callers created the key", creators)
	}
}
