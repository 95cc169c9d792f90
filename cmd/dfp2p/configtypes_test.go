package main

import (
	"strings"
	"testing"
)

// A value of the wrong type in --config or DFP2P_* is a usage error naming
// the key, not a silent zero value.
func TestConfigTypes(t *testing.T) {
	cmd, _, err := newRoot().Find([]string{"daemon"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		yaml, want string // want "" = accepted
	}{
		{"gc-interval: 15m", ""},
		{"gc-interval: banana", "invalid duration"},
		{"gc-interval: 15", "invalid duration"},
		{"gc-interval: [1, 2]", "got a list"},
		{"gc-interval: {a: 1}", "got a mapping"},
		{"gc-high-watermark: 0.9", ""},
		{"gc-high-watermark: 1", ""},
		{"gc-high-watermark: lots", "invalid number"},
		{"listen: /ip4/127.0.0.1/tcp/0", ""},
		{"listen: [/ip4/127.0.0.1/tcp/0, /ip4/127.0.0.1/udp/0/quic-v1]", ""},
		{"listen: [[[]]]", "list item 1 is not a single value"},
		{"listen: {a: 1}", "want a list, got a mapping"},
		{"api: [a]", "got a list"},
		{"api: 12", ""}, // a string flag takes any scalar; the listener says what is wrong
	} {
		raw, err := parseConfigFile([]byte(tc.yaml), map[string]bool{"gc-interval": true, "listen": true, "gc-high-watermark": true, "api": true})
		if err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		err = normalizeConfig(cmd, raw)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: refused: %v", tc.yaml, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: err = %v, want %q", tc.yaml, err, tc.want)
		}
	}
	t.Setenv("DFP2P_GC_INTERVAL", "soon")
	if err := checkEnv(cmd); err == nil || !strings.Contains(err.Error(), "DFP2P_GC_INTERVAL") {
		t.Errorf("bad environment value: %v", err)
	}
}
