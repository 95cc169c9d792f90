package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/dfp2p/dfp2p/internal/limit"
)

func TestLimitUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"daemon", "--data-dir", dir, "--limit-download", "fast"},
		{"daemon", "--data-dir", dir, "--limit-upload", "-1MiB"},
		{"tracker", "--data-dir", dir, "--limit-origin", "10 MiB"},
		{"tracker", "--data-dir", dir, "--limit-download", "10Mbps"},
		{"limits", "--daemon", "http://127.0.0.1:1", "--tracker-api", "http://127.0.0.1:2"},
		{"limits", "--daemon", "ftp://x"},
		{"limits", "--daemon", "http://127.0.0.1:1", "--set", "download"},
		{"limits", "--daemon", "http://127.0.0.1:1", "--set", "sideways=1MiB"},
		{"limits", "--daemon", "http://127.0.0.1:1", "--set", "download=lots"},
		{"limits", "--daemon", "http://127.0.0.1:1", "--set", "download=1MiB", "--set", "download=2MiB"},
		{"limits", "extra-arg"},
	} {
		root := newRoot()
		root.SetArgs(args)
		root.SetOut(new(strings.Builder))
		root.SetErr(new(strings.Builder))
		err := root.Execute()
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: err = %v, want a usage error (exit 2)", args, err)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: error is not one line: %q", args, err)
		}
	}
}

// The limits come from flags, the environment or the config file, in human
// units or plain numbers.
func TestLimitFlagsAndConfig(t *testing.T) {
	v, err := loadYAML(t, "limit-download: 100MiB\nlimit-upload: 1048576\n", "--limit-origin", "800Mbit")
	if err != nil {
		t.Fatal(err)
	}
	r, err := limitFlags(v)
	if err != nil {
		t.Fatal(err)
	}
	if want := (limit.Rates{Download: 100 << 20, Upload: 1 << 20, Origin: 100_000_000}); r != want {
		t.Fatalf("limits %+v, want %+v", r, want)
	}
}
