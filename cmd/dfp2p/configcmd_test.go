package main

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// run executes the real root command with args; it returns stdout and the error.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	root.SetArgs(args)
	var out, errOut strings.Builder
	root.SetOut(&out)
	root.SetErr(&errOut)
	err := root.Execute()
	return out.String(), err
}

// The generated file holds every flag a file may set, at its default, and
// the real loader, the start checks and `config validate` all accept it.
func TestConfigDefault(t *testing.T) {
	for _, name := range configCommands {
		t.Run(name, func(t *testing.T) {
			out, err := run(t, "config", "default", name)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), name+".yaml")
			if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := configTarget(name)
			if err != nil {
				t.Fatal(err)
			}
			known := map[string]bool{}
			c.Flags().VisitAll(func(f *pflag.Flag) { known[f.Name] = true })
			raw, err := parseConfigFile([]byte(out), known)
			if err != nil {
				t.Fatalf("loader refuses the default file: %v\n%s", err, out)
			}
			var want []string
			for _, f := range fileFlags(c) {
				want = append(want, f.Name)
				if !strings.Contains(out, "\n# "+wrap(f.Usage, 76)[0]+"\n") {
					t.Errorf("%s: usage text missing as a comment", f.Name)
				}
			}
			if got := sortedKeys(raw); !reflect.DeepEqual(got, sortedStrings(want)) {
				t.Fatalf("keys %v, want every file flag %v", got, sortedStrings(want))
			}
			for _, k := range []string{"config", "help"} {
				if _, ok := raw[k]; ok {
					t.Errorf("key %q in the default file", k)
				}
			}
			// Through the real loader: every setting equals the flag default.
			cmd := c
			if err := cmd.ParseFlags([]string{"--config", path}); err != nil {
				t.Fatal(err)
			}
			v, err := loadConfig(cmd)
			if err != nil {
				t.Fatalf("loadConfig: %v", err)
			}
			if err := checkSettings(name, v); err != nil {
				t.Fatalf("start checks: %v", err)
			}
			fresh, _ := configTarget(name)
			for _, f := range fileFlags(fresh) {
				if got, want := fmt.Sprint(v.Get(f.Name)), canonical(f); got != want {
					t.Errorf("%s: loaded %q, flag default %q", f.Name, got, want)
				}
			}
			if probs := validateConfig([]byte(out), fresh); len(probs) != 0 {
				t.Fatalf("validate: %v", probs)
			}
			if got, err := run(t, "config", "validate", "--for", name, path); err != nil || got != "ok\n" {
				t.Fatalf("config validate: %q %v", got, err)
			}
		})
	}
	// No argument: the daemon's.
	a, err1 := run(t, "config", "default")
	b, err2 := run(t, "config", "default", "daemon")
	if err1 != nil || err2 != nil || a != b {
		t.Fatalf("config default without an argument differs from daemon's: %v %v", err1, err2)
	}
	if _, err := run(t, "config", "default", "get"); !isUsage(err) {
		t.Fatalf("config default get: %v, want a usage error", err)
	}
}

func canonical(f *pflag.Flag) string {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		if s := sv.GetSlice(); len(s) > 0 {
			return fmt.Sprint(s)
		}
		return "[]"
	}
	return f.Value.String()
}

func sortedStrings(s []string) []string {
	m := map[string]any{}
	for _, x := range s {
		m[x] = nil
	}
	return sortedKeys(m)
}

const badConfig = `gc-ttl: 10 minutes
dht: yes?
max-uploads: abc
gc-high-watermark: 0.5
gc-low-watermark: 0.7
listen: [/ip4/1.2.3.4/udp/x/quic-v1]
bootstrap: [not-an-addr]
security: plaintext
encrypt-cipher: rot13
gc-tll: 1h
origin-parallel: 3
config: x.yaml
api: [a, b]
API: x
api: y
tracker: /ip4/1.2.3.4/tcp/1
log-level: loud
max-concurrent-pieces: 1.5
proxy-registry: [nameonly]
join: not-a-token
gc-interval: 10
`

// Every bad key and every bad value is reported, each at its line.
func TestConfigValidateReportsEveryProblem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(path, []byte(badConfig), 0o600)
	out, err := run(t, "config", "validate", path)
	if err == nil || isUsage(err) {
		t.Fatalf("err = %v, want a failure (exit 1)", err)
	}
	want := []string{
		`:1: key "gc-ttl": invalid duration "10 minutes"`,
		`:2: key "dht": invalid boolean "yes?"`,
		`:3: key "max-uploads": invalid int "abc"`,
		`:4: watermarks must satisfy`,
		`:6: --listen "/ip4/1.2.3.4/udp/x/quic-v1"`,
		`:7: dht: bootstrap address "not-an-addr"`,
		`:8: --security "plaintext"`,
		`:9: --encrypt-cipher "rot13"`,
		`:10: key "gc-tll": unknown (did you mean "gc-ttl"?)`,
		`:11: key "origin-parallel": not a daemon option (it is a tracker option)`,
		`:12: key "config": not allowed in a config file`,
		`:13: key "api": want a single value (string), got a list`,
		`:14: key "API": unknown (did you mean "api"?)`,
		`:15: key "api": repeated (first at line 13)`,
		`:16: --tracker: tracker address "/ip4/1.2.3.4/tcp/1" must end in /p2p/`,
		`:17: --log-level`,
		`:18: key "max-concurrent-pieces": invalid int "1.5"`,
		`:19: --proxy-registry "nameonly": want NAME=URL`,
		`:20: --join:`,
		`:21: key "gc-interval": invalid duration "10"`,
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), out)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], path+w) {
			t.Errorf("line %d: %q, want prefix %q", i+1, lines[i], path+w)
		}
	}
	// The daemon refuses the same file at start, as a usage error.
	if _, err := run(t, "daemon", "--config", path, "--data-dir", t.TempDir()); !isUsage(err) {
		t.Fatalf("daemon started with a bad config: %v", err)
	}
}

// A value the loader used to turn into a silent zero now stops the start.
func TestLoaderRejectsBadValues(t *testing.T) {
	for _, body := range []string{"gc-ttl: 10 minutes\n", "max-uploads: abc\n", "dht: yes?\n", "gc-interval: 10\n", "listen: {a: b}\n"} {
		if _, err := loadYAML(t, body); !isUsage(err) {
			t.Errorf("%q: err = %v, want a usage error", body, err)
		}
	}
	// Good values are read as the flag parser reads them.
	v, err := loadYAML(t, "gc-ttl: 90m\nmax-uploads: '7'\ndht: false\nlisten: /ip4/127.0.0.1/tcp/1 /ip4/127.0.0.1/tcp/2\ngc-high-watermark: 1\n")
	if err != nil {
		t.Fatal(err)
	}
	if v.GetDuration("gc-ttl") != 90*time.Minute || v.GetInt("max-uploads") != 7 || v.GetBool("dht") ||
		len(v.GetStringSlice("listen")) != 2 || v.GetFloat64("gc-high-watermark") != 1 {
		t.Fatalf("settings: %v", v.AllSettings())
	}
}

// Hostile files: one clear problem each, quickly.
func TestConfigValidateHostile(t *testing.T) {
	lol := "a0: &a0 [x,x,x,x,x,x,x,x,x,x]\n"
	for i := 1; i < 10; i++ {
		refs := strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d,", i-1), 10), ",")
		lol += fmt.Sprintf("a%d: &a%d [%s]\n", i, i, refs)
	}
	bomb := strings.Replace(lol, "a0: &a0 [x", "tracker: &a0 [x", 1) + "listen: *a9\n"
	for _, tc := range []struct {
		name, in string
		want     []string // substrings, one per reported problem
	}{
		{"deep", "listen: " + strings.Repeat("[", 300000) + strings.Repeat("]", 300000) + "\n", []string{"YAML: exceeded max depth"}},
		{"deep mapping", strings.Repeat("{a: ", 100000) + "x" + strings.Repeat("}", 100000) + "\n", []string{"YAML: exceeded max depth"}},
		{"billion laughs", bomb, []string{`:1: --tracker: tracker address "x"`, `:2: key "a1": unknown`, "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", ":11: key \"listen\": document contains excessive aliasing"}},
		{"tab", "listen:\n\t- /ip4/1.2.3.4/tcp/1\n", []string{":2: YAML: found character that cannot start any token (tabs cannot indent YAML"}},
		{"non-UTF-8", "api: x\nregion: \xff\xfe\n", []string{":2: not UTF-8: byte 0xff at column 9"}},
		{"duplicates", "api: x\napi: y\napi: z\n", []string{`:2: key "api": repeated (first at line 1)`, `:3: key "api": repeated`}},
		{"two documents", "api: x\n---\napi: y\n", []string{":2: more than one YAML document"}},
		{"list", "- api\n", []string{":1: want a mapping"}},
		{"complex key", "? [a]\n: b\n", []string{`:1: key "": not an option name`}},
		{"unclosed", "api: [x\n", []string{"YAML: "}},
		{"merge of a scalar", "<<: 3\n", []string{`"<<" merges only mappings`}},
		{"huge value", "api: " + strings.Repeat("x", maxConfigSize-10) + "\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := configTarget("daemon")
			start := time.Now()
			probs := validateConfig([]byte(tc.in), c)
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %v", d)
			}
			if len(probs) != len(tc.want) {
				t.Fatalf("%d problems, want %d: %v", len(probs), len(tc.want), probs)
			}
			for i, w := range tc.want {
				got := fmt.Sprintf(":%d: %s", probs[i].line, probs[i].msg)
				if !strings.Contains(got, w) {
					t.Errorf("problem %d: %q, want %q", i, got, w)
				}
			}
		})
	}
	// Larger than the limit: refused before parsing.
	path := filepath.Join(t.TempDir(), "big.yaml")
	os.WriteFile(path, []byte(strings.Repeat("#", maxConfigSize+1)), 0o600)
	if _, err := run(t, "config", "validate", path); err == nil || !strings.Contains(err.Error(), "larger than") || isUsage(err) {
		t.Fatalf("big file: %v", err)
	}
}

func TestConfigValidateExitCodes(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("api: 127.0.0.1:7000\ngc-ttl: 2h\n<<: {max-uploads: 3}\n"), 0o600)
	empty := filepath.Join(dir, "empty.yaml")
	os.WriteFile(empty, []byte("# nothing\n"), 0o600)
	for _, p := range []string{good, empty} {
		if out, err := run(t, "config", "validate", p); err != nil || out != "ok\n" {
			t.Errorf("%s: %q %v", p, out, err)
		}
	}
	for _, args := range [][]string{
		{"config", "validate"},
		{"config", "validate", good, good},
		{"config", "validate", "--for", "get", good},
		{"config", "validate", "--bogus", good},
		{"config"},
	} {
		if _, err := run(t, args...); !isUsage(err) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
	if _, err := run(t, "config", "validate", filepath.Join(dir, "missing.yaml")); err == nil || isUsage(err) {
		t.Errorf("missing file: %v, want a failure", err)
	}
	// A tracker key in a daemon file, and the other way round.
	tr := filepath.Join(dir, "tracker.yaml")
	os.WriteFile(tr, []byte("open: true\n"), 0o600)
	if _, err := run(t, "config", "validate", "--for", "tracker", tr); err != nil {
		t.Errorf("tracker file for the tracker: %v", err)
	}
	if out, _ := run(t, "config", "validate", tr); !strings.Contains(out, `not a daemon option (it is a tracker option)`) {
		t.Errorf("tracker file for the daemon: %q", out)
	}
}

func TestCompletion(t *testing.T) {
	for shell, marker := range map[string]string{
		"bash":       "__start_dfp2p",
		"zsh":        "#compdef dfp2p",
		"fish":       "complete -c dfp2p",
		"powershell": "Register-ArgumentCompleter",
	} {
		out, err := run(t, "completion", shell)
		if err != nil || !strings.Contains(out, marker) {
			t.Errorf("completion %s: %v, output has no %q", shell, err, marker)
		}
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"daemon", "--security", ""}, []string{"noise", "tls"}},
		{[]string{"tracker", "--encrypt-cipher", ""}, []string{"aes-256-gcm", "xchacha20-poly1305"}},
		{[]string{"daemon", "--log-level", ""}, []string{"debug", "info", "warn", "error"}},
		{[]string{"config", "default", ""}, []string{"daemon", "tracker"}},
		{[]string{"config", "validate", "--for", ""}, []string{"daemon", "tracker"}},
	} {
		out, err := run(t, append([]string{"__complete"}, tc.args...)...)
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Split(strings.TrimSpace(out), "\n")
		got = got[:len(got)-1] // the last line is the directive
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%v: %v, want %v", tc.args, got, tc.want)
		}
	}
}
