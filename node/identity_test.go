package node

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestGenerateIdentity(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "data")
	path := filepath.Join(dir, IdentityFile)
	id, err := GenerateIdentity(path, false)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Fatalf("key file mode %04o, want 0600", perm)
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Fatalf("created directory mode %04o, want 0700", st.Mode().Perm())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("directory holds %d entries, want only the key (temp file left behind?)", len(ents))
	}
	// The node started on that data dir uses the generated key.
	sk, err := LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := peer.IDFromPrivateKey(sk)
	if got != id {
		t.Fatalf("loaded key has peer ID %s, GenerateIdentity said %s", got, id)
	}
	if pub, err := id.ExtractPublicKey(); err != nil || pub.Type().String() != "Ed25519" {
		t.Fatalf("key type: %v %v", pub, err)
	}

	// No overwrite without force; the old key stays.
	before, _ := os.ReadFile(path)
	if _, err := GenerateIdentity(path, false); !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), path) {
		t.Fatalf("second GenerateIdentity: %v, want fs.ErrExist naming the file", err)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Fatal("refused overwrite changed the key")
	}

	// force replaces it, with a new peer ID, and tightens a loose mode.
	os.Chmod(path, 0o644)
	id2, err := GenerateIdentity(path, true)
	if err != nil {
		t.Fatal(err)
	}
	if id2 == id {
		t.Fatal("forced key has the same peer ID")
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("forced key mode %04o", st.Mode().Perm())
	}
	sk, err = LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := peer.IDFromPrivateKey(sk); got != id2 {
		t.Fatal("forced key not the one loaded")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("directory holds %d entries after force", len(ents))
	}
}

func TestGenerateIdentityNeverReplacesOtherThings(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "adir")
	os.Mkdir(sub, 0o700)
	dangling := filepath.Join(dir, "dangling")
	if err := os.Symlink(filepath.Join(dir, "nowhere"), dangling); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{sub, dangling} {
		if _, err := GenerateIdentity(p, false); !errors.Is(err, fs.ErrExist) {
			t.Errorf("%s: %v, want fs.ErrExist", p, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, "nowhere")); err == nil {
		t.Error("symlink target was created")
	}
	if _, err := GenerateIdentity(sub, true); err == nil {
		t.Error("force replaced a directory")
	}
	if _, err := GenerateIdentity("", false); err == nil {
		t.Error("empty path accepted")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("directory holds %d entries, want 2 (temp files left behind?)", len(ents))
	}
}
