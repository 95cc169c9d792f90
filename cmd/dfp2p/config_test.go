package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"gopkg.in/yaml.v3"
)

// daemonKeys are the option names the daemon command accepts.
func daemonKeys() map[string]bool {
	known := map[string]bool{}
	cmd := configCmd()
	_ = cmd.ParseFlags(nil) // merges the root's persistent flags, as running it does
	cmd.Flags().VisitAll(func(f *pflag.Flag) { known[f.Name] = true })
	return known
}

var validConfig = "api: 127.0.0.1:7000\nmax-uploads: 5\ntracker:\n  - /ip4/127.0.0.1/udp/1/quic-v1/p2p/x\nlog-level: debug\n"

func TestParseConfigFile(t *testing.T) {
	known := daemonKeys()
	for _, tc := range []struct {
		name, in string
		keys     []string // nil: want an error
		errHas   string
	}{
		{name: "valid", in: validConfig, keys: []string{"api", "log-level", "max-uploads", "tracker"}},
		{name: "empty", in: "", keys: []string{}},
		{name: "comments", in: "# nothing\n\n", keys: []string{}},
		{name: "null", in: "~\n", keys: []string{}},
		{name: "bare marker", in: "---\n", keys: []string{}},
		{name: "trailing empty doc", in: "api: x\n---\n", keys: []string{"api"}},
		{name: "end marker", in: "api: x\n...\n", keys: []string{"api"}},
		{name: "anchor and merge", in: "base: &b {api: x}\n", errHas: `unknown key "base"`},
		{name: "merge of known keys", in: "<<: {api: x, max-uploads: 3}\n", keys: []string{"api", "max-uploads"}},
		{name: "unknown", in: "api: x\nbogus-key: 1\n", errHas: `unknown key "bogus-key"`},
		{name: "config key", in: "config: other.yaml\n", errHas: `unknown key "config"`},
		{name: "flag spelling", in: "--api: x\n", errHas: "unknown key"},
		{name: "case", in: "API: x\n", errHas: `unknown key "API"`},
		{name: "number key", in: "1: x\n", errHas: `unknown key "1"`},
		{name: "list", in: "- api\n- x\n", errHas: "got a list"},
		{name: "scalar", in: "api\n", errHas: "got a single value"},
		{name: "two docs", in: "api: x\n---\nmax-uploads: 3\n", errHas: "more than one YAML document"},
		{name: "second doc a list", in: "api: x\n---\n- 1\n", errHas: "more than one YAML document"},
		{name: "duplicate", in: "api: x\napi: y\n", errHas: "already defined"},
		{name: "bad yaml", in: "api: [unclosed\n", errHas: "yaml"},
		{name: "tab indent", in: "api:\n\t- x\n", errHas: "yaml"},
		{name: "complex key", in: "? [a]\n: b\n", errHas: "cannot unmarshal"},
		{name: "too big", in: "api: x\n" + strings.Repeat("#", maxConfigSize), errHas: "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := parseConfigFile([]byte(tc.in), known)
			if tc.keys == nil {
				if err == nil {
					t.Fatalf("accepted: %v", m)
				}
				if !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("error %q does not contain %q", err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := sortedKeys(m); !reflect.DeepEqual(got, tc.keys) {
				t.Fatalf("keys %v, want %v", got, tc.keys)
			}
		})
	}
}

// loadConfig can hand parseConfigFile's map to viper (MergeConfigMap)
// instead of reading the file a second time: the settings are the same.
func TestParseConfigFileMatchesViper(t *testing.T) {
	known := daemonKeys()
	for _, in := range []string{validConfig, "", "api: x\n", "max-uploads: '7'\ntracker: []\n", "<<: {api: x}\nmax-uploads: 3\n"} {
		m, err := parseConfigFile([]byte(in), known)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		fromFile := viper.New()
		fromFile.SetConfigType("yaml")
		if err := fromFile.ReadConfig(strings.NewReader(in)); err != nil {
			t.Fatalf("%q: viper: %v", in, err)
		}
		fromMap := viper.New()
		if err := fromMap.MergeConfigMap(m); err != nil {
			t.Fatal(err)
		}
		if a, b := fromFile.AllSettings(), fromMap.AllSettings(); !reflect.DeepEqual(a, b) {
			t.Errorf("%q: viper read %v, the parsed map gives %v", in, a, b)
		}
	}
}

func TestReadConfigFileBounded(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small.yaml")
	os.WriteFile(small, []byte(validConfig), 0o600)
	if b, err := readConfigFile(small); err != nil || string(b) != validConfig {
		t.Fatalf("small: %q %v", b, err)
	}
	exact := filepath.Join(dir, "exact.yaml")
	os.WriteFile(exact, bytes.Repeat([]byte("#"), maxConfigSize), 0o600)
	if _, err := readConfigFile(exact); err != nil {
		t.Fatalf("file of exactly the limit: %v", err)
	}
	big := filepath.Join(dir, "big.yaml")
	os.WriteFile(big, bytes.Repeat([]byte("#"), maxConfigSize+1), 0o600)
	if _, err := readConfigFile(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("big: %v", err)
	}
	if _, err := readConfigFile("/dev/zero"); err == nil {
		t.Fatal("/dev/zero accepted")
	}
	if _, err := readConfigFile(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing file accepted")
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// FuzzConfigFile: no file crashes the parser or viper afterwards; what is
// accepted has only known keys, and survives a YAML round trip.
func FuzzConfigFile(f *testing.F) {
	for _, s := range []string{
		validConfig, "", "~", "---\n", "api: x\n---\n", "api: x\n---\nmax-uploads: 3\n",
		"config: x\n", "bogus: 1\n", "- a\n", "a\n", "api: x\napi: y\n", "api: [unclosed\n",
		"<<: {api: x}\n", "a: &a [*a]\n", "api: &x 1\nmax-uploads: *x\n", "? [a]\n: b\n",
		"api: !!binary aGVsbG8=\n", "api: {nested: {deep: [1, 2, {x: y}]}}\n", "1: x\n",
		"%YAML 1.2\n---\napi: x\n", "api: \"\\u0000\"\n", "tracker: [a, b, c]\nlog-format: json\n",
	} {
		f.Add([]byte(s))
	}
	known := daemonKeys()
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseConfigFile(b, known)
		if err != nil {
			if m != nil {
				t.Fatal("map returned with an error")
			}
			return
		}
		if m == nil {
			t.Fatal("nil map without an error")
		}
		if len(b) > maxConfigSize {
			t.Fatalf("accepted %d bytes", len(b))
		}
		for k := range m {
			if !known[k] || k == "config" {
				t.Fatalf("accepted key %q", k)
			}
		}
		v := viper.New()
		if err := v.MergeConfigMap(m); err != nil {
			t.Fatalf("viper refuses the parsed map: %v", err)
		}
		_ = v.AllSettings()
		out, err := yaml.Marshal(m)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		m2, err := parseConfigFile(out, known)
		if err != nil {
			t.Fatalf("re-encoded config rejected: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(sortedKeys(m), sortedKeys(m2)) {
			t.Fatalf("keys changed in a round trip: %v -> %v", sortedKeys(m), sortedKeys(m2))
		}
	})
}
