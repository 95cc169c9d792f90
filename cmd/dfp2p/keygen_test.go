package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dfp2p/dfp2p/node"
)

// runKeygen runs `dfp2p keygen ARGS` through the root command, as main does.
func runKeygen(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := newRoot()
	if c, _, err := root.Find([]string{"keygen"}); err != nil || c == root {
		root.AddCommand(newKeygenCmd()) // until root.go adds it
	}
	var out, errOut strings.Builder
	root.SetArgs(append([]string{"keygen"}, args...))
	root.SetOut(&out)
	root.SetErr(&errOut)
	err = root.Execute()
	return out.String(), errOut.String(), err
}

func TestKeygen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, node.IdentityFile)
	out, errOut, err := runKeygen(t, "--out", path)
	if err != nil {
		t.Fatal(err)
	}
	if errOut != "" {
		t.Errorf("stderr: %q", errOut)
	}
	if !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 1 {
		t.Fatalf("stdout %q: want the peer ID on one line", out)
	}
	printed, err := peer.Decode(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("stdout %q is not a peer ID: %v", out, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Fatalf("key mode %04o, want 0600", perm)
	}
	// A node started on that data dir has the printed peer ID.
	sk, err := node.LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := peer.IDFromPrivateKey(sk); id != printed {
		t.Fatalf("key holds %s, keygen printed %s", id, printed)
	}
	if sk.Type().String() != "Ed25519" {
		t.Fatalf("key type %s", sk.Type())
	}

	// No overwrite without --force: exit 1 (not a usage error), one line
	// naming the file and the way out, key unchanged.
	before, _ := os.ReadFile(path)
	out, _, err = runKeygen(t, "--out", path)
	var ue usageError
	if err == nil || errors.As(err, &ue) || out != "" {
		t.Fatalf("second keygen: err %v, stdout %q", err, out)
	}
	if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, path) || !strings.Contains(msg, "--force") {
		t.Fatalf("error %q: want one line naming the file and --force", msg)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Fatal("refused keygen changed the key")
	}

	// --force replaces it.
	out, _, err = runKeygen(t, "--out", path, "--force")
	if err != nil {
		t.Fatal(err)
	}
	forced, err := peer.Decode(strings.TrimSpace(out))
	if err != nil || forced == printed {
		t.Fatalf("forced keygen printed %q (%v)", out, err)
	}
	sk, err = node.LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := peer.IDFromPrivateKey(sk); id != forced {
		t.Fatal("forced key is not the one printed")
	}

	// A key someone made readable by others is refused at start, with the fix.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = node.LoadOrCreateIdentity(dir)
	if err == nil || !strings.Contains(err.Error(), "mode 0644") || !strings.Contains(err.Error(), "chmod 600 "+path) {
		t.Fatalf("0644 key: %v", err)
	}
}

func TestKeygenDefaultOut(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	out, _, err := runKeygen(t)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := node.LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatalf("default --out is not ./%s: %v", node.IdentityFile, err)
	}
	if id, _ := peer.IDFromPrivateKey(sk); id.String() != strings.TrimSpace(out) {
		t.Fatal("printed peer ID does not match ./identity.key")
	}
}

func TestKeygenUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"extra-arg"},
		{"--out", filepath.Join(dir, "k"), "extra"},
		{"--no-such-flag"},
		{"--out"},
		{"--out", ""},
		{"--force=maybe"},
	} {
		_, _, err := runKeygen(t, args...)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: err = %v, want a usage error (exit 2)", args, err)
		}
	}
	// The command alone (before root.go adds it) maps flag errors too.
	cmd := newKeygenCmd()
	cmd.SetArgs([]string{"--bogus"})
	cmd.SetOut(new(strings.Builder))
	cmd.SetErr(new(strings.Builder))
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	var ue usageError
	if err := cmd.Execute(); !errors.As(err, &ue) {
		t.Errorf("standalone: %v, want a usage error", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("usage errors wrote %d files", len(ents))
	}
}
