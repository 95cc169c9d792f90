package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"
)

func TestParseHeaders(t *testing.T) {
	h, err := parseHeaders([]string{"Authorization: Bearer x", "x-custom:  v "})
	if err != nil {
		t.Fatal(err)
	}
	if h.Get("Authorization") != "Bearer x" || h.Get("X-Custom") != "v" {
		t.Fatalf("got %v", h)
	}
	for _, bad := range []string{"NoColon", ": empty", "Bad Name: v", "X: a\r\nInjected: b", "X: a\nB: c", "Na\x00me: v"} {
		if _, err := parseHeaders([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// configCmd is a command with the same config plumbing as the real ones.
func configCmd() *cobra.Command {
	root := newRoot()
	cmd, _, _ := root.Find([]string{"daemon"})
	return cmd
}

// loadYAML loads the settings of configCmd from a config file holding body
// and the extra flags args, through the real loader.
func loadYAML(t *testing.T, body string, args ...string) (*viper.Viper, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := configCmd()
	if err := cmd.ParseFlags(append([]string{"--config", p}, args...)); err != nil {
		t.Fatal(err)
	}
	return loadConfig(cmd)
}

func TestConfigPrecedence(t *testing.T) {
	t.Setenv("DFP2P_API", "127.0.0.1:7001")
	v, err := loadYAML(t, "api: 127.0.0.1:7000\nmax-uploads: 5\ntracker:\n  - /ip4/127.0.0.1/udp/1/quic-v1/p2p/x\n", "--max-uploads", "9")
	if err != nil {
		t.Fatal(err)
	}
	if got := v.GetString("api"); got != "127.0.0.1:7001" {
		t.Errorf("api = %q, want the env value", got)
	}
	if got := v.GetInt("max-uploads"); got != 9 {
		t.Errorf("max-uploads = %d, want the flag value", got)
	}
	if got := v.GetStringSlice("tracker"); len(got) != 1 {
		t.Errorf("tracker = %v, want the file value", got)
	}
	if got := v.GetInt("max-concurrent-pieces"); got != 16 {
		t.Errorf("default lost: %d", got)
	}
}

func TestConfigRejectsUnknownAndBadYAML(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"unknown.yaml": "api: x\nbogus-key: 1\n",
		"bad.yaml":     "api: [unclosed\n",
	} {
		_, err := loadYAML(t, body)
		var ue usageError
		if err == nil || !errors.As(err, &ue) {
			t.Errorf("%s: err = %v, want a usage error", name, err)
		}
	}
	cmd := configCmd()
	_ = cmd.ParseFlags([]string{"--config", filepath.Join(dir, "missing.yaml")})
	if _, err := loadConfig(cmd); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", err)
	}
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"get"},
		{"get", "http://x/"},
		{"get", "ftp://x/", "-O", "f"},
		{"get", "http://x/", "-O", "f", "--digest", "md5:00"},
		{"get", "http://x/", "-O", "f", "-H", "bad header"},
		{"get", "--no-such-flag"},
		{"daemon", "--data-dir", dir, "--bootstrap", "/ip4/10.0.0.1/udp/4001/quic-v1"},
		{"daemon", "--data-dir", dir, "--bootstrap", "not-a-multiaddr"},
		{"tracker", "--data-dir", dir, "--region", "two words"},
		{"tracker", "--data-dir", dir, "--zone", strings.Repeat("z", 65)},
		{"daemon", "--data-dir", dir, "--encrypt-cipher", "xchacha20-poly1305"},
		{"daemon", "--data-dir", dir, "--encrypt-cipher", "rot13", "--encrypt-key-file", "/nonexistent"},
		{"daemon", "--data-dir", dir, "--encrypt-key-file", "/nonexistent"},
		{"tracker", "--data-dir", dir, "--security", "plaintext"},
		{"daemon", "--data-dir", dir, "--join", "not-a-token"},
	} {
		root := newRoot()
		root.SetArgs(args)
		root.SetOut(new(strings.Builder))
		root.SetErr(new(strings.Builder))
		err := root.Execute()
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: err = %v, want a usage error (exit 2)", args, err)
		}
	}
}
