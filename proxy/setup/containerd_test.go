package setup

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	toml "github.com/pelletier/go-toml/v2"
)

// hostsFile is the hosts.toml schema of containerd 2.1+. Decoding with
// DisallowUnknownFields proves dfp2p writes only keys containerd knows;
// containerd 1.6 has the same keys except dial_timeout, which its decoder
// (go-toml v1, not strict) ignores.
type hostsHost struct {
	Capabilities []string       `toml:"capabilities"`
	CA           any            `toml:"ca"`
	Client       any            `toml:"client"`
	SkipVerify   *bool          `toml:"skip_verify"`
	Header       map[string]any `toml:"header"`
	OverridePath *bool          `toml:"override_path"`
	DialTimeout  string         `toml:"dial_timeout"`
}

type hostsFile struct {
	Server string `toml:"server"`
	hostsHost
	Host map[string]hostsHost `toml:"host"`
}

func decodeHosts(t *testing.T, b []byte) hostsFile {
	t.Helper()
	var h hostsFile
	if err := toml.NewDecoder(bytes.NewReader(b)).DisallowUnknownFields().Decode(&h); err != nil {
		t.Fatalf("hosts.toml does not decode strictly: %v\n%s", err, b)
	}
	return h
}

func TestHostsTOMLKeys(t *testing.T) {
	for _, tc := range []struct{ registry, proxy, server, host string }{
		{"docker.io", "", "https://registry-1.docker.io", "http://127.0.0.1:65001"},
		{"ghcr.io", "127.0.0.1:7000", "https://ghcr.io", "http://127.0.0.1:7000"},
		{"registry.local:5000", "https://mirror.local:8443/", "https://registry.local:5000", "https://mirror.local:8443"},
		{"_default", "", "", "http://127.0.0.1:65001"},
	} {
		b, err := ContainerdHostsTOML(tc.registry, tc.proxy)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte(ManagedHeader)) {
			t.Errorf("%s: no header:\n%s", tc.registry, b)
		}
		h := decodeHosts(t, b)
		if h.Server != tc.server {
			t.Errorf("%s: server = %q, want %q", tc.registry, h.Server, tc.server)
		}
		m, ok := h.Host[tc.host]
		if !ok || len(h.Host) != 1 {
			t.Fatalf("%s: hosts = %v, want only %s", tc.registry, h.Host, tc.host)
		}
		if !slices.Equal(m.Capabilities, []string{"pull", "resolve"}) || m.OverridePath == nil || *m.OverridePath || m.DialTimeout != "200ms" {
			t.Errorf("%s: mirror = %+v", tc.registry, m)
		}
	}
	for _, bad := range []string{"", "https://ghcr.io", "ghcr.io/foo", "bad host", "registry-1.docker.io", "x:99999"} {
		if _, err := ContainerdHostsTOML(bad, ""); !isOptionError(err) {
			t.Errorf("registry %q: err = %v, want an option error", bad, err)
		}
	}
	for _, bad := range []string{"ftp://x:1", "http://", "http://x:1/path", "http://u:p@x:1", "x:0"} {
		if _, err := ContainerdHostsTOML("docker.io", bad); !isOptionError(err) {
			t.Errorf("proxy %q: err = %v, want an option error", bad, err)
		}
	}
}

func isOptionError(err error) bool {
	var oe *OptionError
	return errors.As(err, &oe)
}

func checks(ps []Problem) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Check)
	}
	slices.Sort(out)
	return out
}

func TestPreflightEachProblem(t *testing.T) {
	const want = "/etc/containerd/certs.d"
	for _, tc := range []struct {
		name, config string
		checks       []string
	}{
		// version 1: [plugins.cri]
		{"v1 unset", "[plugins.cri.registry]\n", []string{"config-path-unset"}},
		{"v1 multiple", "[plugins.cri.registry]\nconfig_path = \"/etc/containerd/certs.d:/etc/docker/certs.d\"\n", []string{"config-path-multiple"}},
		{"v1 mismatch", "[plugins.cri.registry]\nconfig_path = \"/etc/docker/certs.d\"\n", []string{"config-path-mismatch"}},
		{"v1 discard", "[plugins.cri.registry]\nconfig_path = \"/etc/containerd/certs.d\"\n[plugins.cri.containerd]\ndiscard_unpacked_layers = true\n",
			[]string{"discard-unpacked-layers"}},
		{"v1 mirrors", "[plugins.cri.registry]\nconfig_path = \"/etc/containerd/certs.d\"\n[plugins.cri.registry.mirrors.\"docker.io\"]\nendpoint = [\"https://m\"]\n",
			[]string{"legacy-mirrors"}},
		{"v1 cri disabled", "disabled_plugins = [\"cri\"]\n", []string{"config-path-unset", "cri-disabled"}},
		{"v1 file with v2 keys", "[plugins.\"io.containerd.grpc.v1.cri\".registry]\nconfig_path = \"/etc/containerd/certs.d\"\n", []string{"config-version"}},
		// version 2: [plugins."io.containerd.grpc.v1.cri"]
		{"v2 unset", "version = 2\n", []string{"config-path-unset"}},
		{"v2 multiple", "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\nconfig_path = \"/etc/containerd/certs.d:/etc/docker/certs.d\"\n",
			[]string{"config-path-multiple", "transfer-service"}},
		{"v2 multiple, local pull", "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\nconfig_path = \"/etc/containerd/certs.d:/etc/docker/certs.d\"\n[plugins.\"io.containerd.cri.v1.images\"]\nuse_local_image_pull = true\n",
			[]string{"config-path-multiple"}},
		{"v2 mismatch", "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\nconfig_path = \"/somewhere/else/\"\n", []string{"config-path-mismatch"}},
		{"v2 discard", "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\nconfig_path = \"/etc/containerd/certs.d/\"\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\ndiscard_unpacked_layers = true\n",
			[]string{"discard-unpacked-layers"}},
		{"v2 mirrors", "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"docker.io\"]\nendpoint = [\"https://m\"]\n",
			[]string{"config-path-unset", "legacy-mirrors"}},
		{"v2 configs tls", "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\nconfig_path = \"/etc/containerd/certs.d\"\n[plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"r.local\".tls]\ninsecure_skip_verify = true\n[plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"q.local\".auth]\nusername = \"u\"\n",
			[]string{"legacy-configs-tls"}},
		{"v2 cri disabled", "version = 2\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\nconfig_path = \"/etc/containerd/certs.d\"\n",
			[]string{"cri-disabled"}},
		// version 3 (containerd 2.x): [plugins."io.containerd.cri.v1.images"]
		{"v3 unset", "version = 3\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\nconfig_path = \"/etc/containerd/certs.d\"\n", []string{"config-path-unset"}},
		{"v3 EKS AL2023", "version = 3\n[plugins.'io.containerd.cri.v1.images']\ndiscard_unpacked_layers = true\n[plugins.\"io.containerd.cri.v1.images\".registry]\nconfig_path = \"/etc/containerd/certs.d:/etc/docker/certs.d\"\n",
			[]string{"config-path-multiple", "discard-unpacked-layers", "transfer-service"}},
		{"v3 transfer, use_local false", "version = 3\n[plugins.'io.containerd.cri.v1.images']\nuse_local_image_pull = false\n[plugins.\"io.containerd.cri.v1.images\".registry]\nconfig_path = \"/etc/containerd/certs.d:/etc/docker/certs.d\"\n",
			[]string{"config-path-multiple", "transfer-service"}},
		{"v3 mismatch", "version = 3\n[plugins.\"io.containerd.cri.v1.images\".registry]\nconfig_path = \"/etc/docker/certs.d\"\n", []string{"config-path-mismatch"}},
		{"v3 mirrors", "version = 3\n[plugins.\"io.containerd.cri.v1.images\".registry]\nconfig_path = \"/etc/containerd/certs.d\"\n[plugins.\"io.containerd.cri.v1.images\".registry.mirrors.\"docker.io\"]\nendpoint = [\"https://m\"]\n",
			[]string{"legacy-mirrors"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps, err := PreflightContainerd([]byte(tc.config), want)
			if err != nil {
				t.Fatal(err)
			}
			if got := checks(ps); !slices.Equal(got, tc.checks) {
				t.Errorf("checks = %v, want %v", got, tc.checks)
			}
			for _, p := range ps {
				if p.Message == "" || p.Fix == "" || strings.Contains(p.String(), "\n") {
					t.Errorf("problem not one complete line: %q", p.String())
				}
				if (p.Severity == Note) != (p.Check == "discard-unpacked-layers") {
					t.Errorf("%s: severity %s", p.Check, p.Severity)
				}
			}
		})
	}
	// The keys named are the layout's own.
	ps, _ := PreflightContainerd([]byte("version = 3\n"), want)
	if len(ps) != 1 || ps[0].Key != `plugins."io.containerd.cri.v1.images".registry.config_path` {
		t.Errorf("v3 key: %+v", ps)
	}
	ps, _ = PreflightContainerd([]byte("[plugins.cri]\n"), want)
	if len(ps) != 1 || ps[0].Key != `plugins.cri.registry.config_path` {
		t.Errorf("v1 key: %+v", ps)
	}
}

func TestPreflightClean(t *testing.T) {
	def, err := os.ReadFile("testdata/containerd-1.6.20-default.toml")
	if err != nil {
		t.Fatal(err)
	}
	// containerd 1.6's own default config: everything fine but config_path.
	ps, err := PreflightContainerd(def, DefaultContainerdConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if got := checks(ps); !slices.Equal(got, []string{"config-path-unset"}) {
		t.Errorf("default config: %v", got)
	}
	fixed := bytes.Replace(def, []byte(`config_path = ""`), []byte(`config_path = "/etc/containerd/certs.d"`), 1)
	for name, cfg := range map[string]string{
		"1.6 default with config_path": string(fixed),
		"v1":                           "[plugins.cri.registry]\nconfig_path = \"/etc/containerd/certs.d\"\n",
		"v2":                           "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\nconfig_path = \"/etc/containerd/certs.d\"\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\ndiscard_unpacked_layers = false\n",
		"v3":                           "version = 3\n[plugins.'io.containerd.cri.v1.images']\ndiscard_unpacked_layers = false\n[plugins.'io.containerd.cri.v1.images'.registry]\nconfig_path = '/etc/containerd/certs.d'\n",
		"v3 local pull":                "version = 3\n[plugins.'io.containerd.cri.v1.images']\nuse_local_image_pull = true\n[plugins.'io.containerd.cri.v1.images'.registry]\nconfig_path = '/etc/containerd/certs.d'\n",
	} {
		ps, err := PreflightContainerd([]byte(cfg), DefaultContainerdConfigPath)
		if err != nil {
			t.Fatal(name, err)
		}
		if len(ps) != 0 {
			t.Errorf("%s: %v", name, ps)
		}
	}
	if _, err := PreflightContainerd([]byte("version = [unclosed\n"), DefaultContainerdConfigPath); err == nil {
		t.Error("bad TOML accepted")
	}
}

func TestPreflightFileMissingAndImports(t *testing.T) {
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs.d")
	rep, err := Containerd(ContainerdOptions{ConfigPath: certs, ContainerdConfig: filepath.Join(dir, "nope.toml")})
	if err != nil {
		t.Fatal(err)
	}
	if got := checks(rep.Problems); !slices.Equal(got, []string{"config-missing"}) {
		t.Errorf("missing config: %v", got)
	}

	// EKS AL2 style: config_path comes from an imported drop-in.
	cfg := filepath.Join(dir, "config.toml")
	write(t, cfg, "version = 2\nimports = [\"conf.d/*.toml\", \"/no/such/file.toml\"]\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\ndiscard_unpacked_layers = true\n")
	write(t, filepath.Join(dir, "conf.d", "10-dfp2p.toml"),
		"version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\nconfig_path = \""+certs+"\"\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\ndiscard_unpacked_layers = false\n")
	rep, err = Containerd(ContainerdOptions{ConfigPath: certs, ContainerdConfig: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if got := checks(rep.Problems); !slices.Equal(got, []string{"import-missing"}) {
		t.Errorf("imports: %v", got)
	}

	write(t, filepath.Join(dir, "conf.d", "20-bad.toml"), "[unclosed\n")
	if _, err := Containerd(ContainerdOptions{ConfigPath: certs, ContainerdConfig: cfg}); err == nil || isOptionError(err) || !strings.Contains(err.Error(), "20-bad.toml") {
		t.Errorf("bad import: %v", err)
	}
	write(t, cfg, "version = 2\n[plugins\n")
	if _, err := Containerd(ContainerdOptions{ConfigPath: certs, ContainerdConfig: cfg}); err == nil || !strings.Contains(err.Error(), "not valid TOML") {
		t.Errorf("bad config: %v", err)
	}
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func actions(cs []Change) []Action {
	var out []Action
	for _, c := range cs {
		out = append(out, c.Action)
	}
	return out
}

func TestContainerdIdempotentAndUndo(t *testing.T) {
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs.d")
	// A hosts.toml the user had, with a server over plain HTTP and a mirror of their own.
	orig := "server = \"http://registry.local:5000\"\nskip_verify = true\n\n# our own mirror\n[host.\"https://mirror.local\"]\n  capabilities = [\"pull\"]\n  ca = \"mirror.crt\"\n"
	origPath := filepath.Join(certs, "registry.local:5000", "hosts.toml")
	write(t, origPath, orig)
	if err := os.Chmod(origPath, 0o600); err != nil {
		t.Fatal(err)
	}
	opts := ContainerdOptions{ConfigPath: certs, Registries: []string{"registry.local:5000", "docker.io", "docker.io"}}

	rep, err := Containerd(opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(rep.Changes); !slices.Equal(got, []Action{Replaced, Created}) {
		t.Fatalf("first run: %v", got)
	}
	if got := read(t, origPath+BackupSuffix); got != orig {
		t.Errorf("backup = %q", got)
	}
	merged := read(t, origPath)
	h := decodeHosts(t, []byte(merged))
	if h.Server != "http://registry.local:5000" || h.SkipVerify == nil || !*h.SkipVerify || len(h.Host) != 2 {
		t.Errorf("merged file lost settings:\n%s", merged)
	}
	order, err := hostTableOrder([]byte(merged))
	if err != nil || !slices.Equal(order, []string{"http://127.0.0.1:65001", "https://mirror.local"}) {
		t.Errorf("host order = %v, %v", order, err)
	}
	if !strings.Contains(merged, "# our own mirror\n[host.\"https://mirror.local\"]") {
		t.Errorf("comment separated from its table:\n%s", merged)
	}
	if fi, _ := os.Stat(origPath); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v", fi.Mode())
	}
	hub := read(t, filepath.Join(certs, "docker.io", "hosts.toml"))

	// Twice changes nothing.
	rep, err = Containerd(opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(rep.Changes); !slices.Equal(got, []Action{Unchanged, Unchanged}) {
		t.Fatalf("second run: %v", got)
	}
	if read(t, origPath) != merged || read(t, filepath.Join(certs, "docker.io", "hosts.toml")) != hub || read(t, origPath+BackupSuffix) != orig {
		t.Error("second run changed a file")
	}
	// Another proxy address updates dfp2p's files, keeping the first backup.
	opts.Proxy = "http://127.0.0.1:7777"
	rep, err = Containerd(opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(rep.Changes); !slices.Equal(got, []Action{Updated, Updated}) {
		t.Fatalf("new proxy: %v", got)
	}
	if read(t, origPath+BackupSuffix) != orig || !strings.Contains(read(t, origPath), "127.0.0.1:7777") {
		t.Error("update lost the backup or the new proxy")
	}

	// Undo: the backup comes back byte for byte; the created file and its
	// directory go.
	rep, err = Containerd(ContainerdOptions{ConfigPath: certs, Undo: true, DryRun: true})
	if err != nil || !slices.Equal(actions(rep.Changes), []Action{Removed, Restored}) {
		t.Fatalf("dry-run undo: %v %v", actions(rep.Changes), err)
	}
	if read(t, origPath) == orig {
		t.Fatal("dry run restored")
	}
	rep, err = Containerd(ContainerdOptions{ConfigPath: certs, Undo: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(rep.Changes); !slices.Equal(got, []Action{Removed, Restored}) {
		t.Fatalf("undo: %v", got)
	}
	if read(t, origPath) != orig {
		t.Error("undo did not restore byte for byte")
	}
	if fi, _ := os.Stat(origPath); fi.Mode().Perm() != 0o600 {
		t.Errorf("restored mode = %v", fi.Mode())
	}
	for _, p := range []string{origPath + BackupSuffix, filepath.Join(certs, "docker.io")} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still there", p)
		}
	}
	rep, err = Containerd(ContainerdOptions{ConfigPath: certs, Undo: true})
	if err != nil || len(rep.Changes) != 0 || len(rep.Notes) != 1 {
		t.Errorf("second undo: %+v %v", rep, err)
	}
}

func TestContainerdForeignFiles(t *testing.T) {
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs.d")
	p := filepath.Join(certs, "ghcr.io", "hosts.toml")

	// Not TOML: replaced by a fresh file, original in the backup.
	write(t, p, "this is [not toml\n")
	rep, err := Containerd(ContainerdOptions{ConfigPath: certs, Registries: []string{"ghcr.io"}})
	if err != nil {
		t.Fatal(err)
	}
	if c := rep.Changes[0]; c.Action != Replaced || !strings.Contains(c.Note, "backup") {
		t.Errorf("change = %+v", c)
	}
	if h := decodeHosts(t, []byte(read(t, p))); h.Server != "https://ghcr.io" {
		t.Errorf("server = %q", h.Server)
	}

	// Rewritten by someone else while a backup exists: refuse, change nothing.
	write(t, p, "server = \"https://ghcr.io\"\n")
	if _, err := Containerd(ContainerdOptions{ConfigPath: certs, Registries: []string{"ghcr.io"}}); err == nil || !strings.Contains(err.Error(), "move one of them away") {
		t.Errorf("err = %v", err)
	}
	// Undo leaves a file dfp2p did not write alone.
	rep, err = Containerd(ContainerdOptions{ConfigPath: certs, Registries: []string{"ghcr.io"}, Undo: true})
	if err != nil || rep.Changes[0].Action != Skipped || read(t, p) != "server = \"https://ghcr.io\"\n" {
		t.Errorf("undo of a foreign file: %+v %v", rep, err)
	}

	// Hosts given as dotted keys cannot be ordered safely: replace instead.
	p2 := filepath.Join(certs, "quay.io", "hosts.toml")
	write(t, p2, "server = \"https://quay.io\"\nhost.\"https://m.local\".capabilities = [\"pull\"]\n")
	if _, err := Containerd(ContainerdOptions{ConfigPath: certs, Registries: []string{"quay.io"}}); err != nil {
		t.Fatal(err)
	}
	if h := decodeHosts(t, []byte(read(t, p2))); len(h.Host) != 1 {
		t.Errorf("dotted hosts kept: %v", h.Host)
	}

	// containerd reads HOST_PORT_ before HOST:PORT; an existing one is used.
	if err := os.MkdirAll(filepath.Join(certs, "reg.local_5000_"), 0o755); err != nil {
		t.Fatal(err)
	}
	rep, err = Containerd(ContainerdOptions{ConfigPath: certs, Registries: []string{"reg.local:5000"}})
	if err != nil || rep.Changes[0].Path != filepath.Join(certs, "reg.local_5000_", "hosts.toml") {
		t.Errorf("HOST_PORT_ dir: %+v %v", rep, err)
	}

	// Docker-style certificate files are listed so containerd keeps using them.
	regDir := filepath.Join(certs, "registry.corp:443")
	write(t, filepath.Join(regDir, "ca.crt"), "x")
	write(t, filepath.Join(regDir, "client.cert"), "x")
	write(t, filepath.Join(regDir, "client.key"), "x")
	rep, err = Containerd(ContainerdOptions{ConfigPath: certs, Registries: []string{"registry.corp:443"}})
	if err != nil {
		t.Fatal(err)
	}
	h := decodeHosts(t, []byte(read(t, filepath.Join(regDir, "hosts.toml"))))
	if h.CA == nil || h.Client == nil || rep.Changes[0].Note == "" {
		t.Errorf("cert files not carried over: %+v", h)
	}
}

func TestContainerdDryRunStrictAndErrors(t *testing.T) {
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs.d")
	cfg := filepath.Join(dir, "config.toml")
	write(t, cfg, "version = 2\n")

	rep, err := Containerd(ContainerdOptions{ConfigPath: certs, ContainerdConfig: cfg, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Changes) != 1 || rep.Changes[0].Action != Created || len(rep.Changes[0].Content) == 0 || len(rep.Problems) != 1 {
		t.Errorf("dry run: %+v", rep)
	}
	if _, err := os.Stat(certs); !os.IsNotExist(err) {
		t.Error("dry run wrote")
	}

	rep, err = Containerd(ContainerdOptions{ConfigPath: certs, ContainerdConfig: cfg, Strict: true})
	var pe *PreflightError
	if !errors.As(err, &pe) || pe.Warnings != 1 || rep == nil || len(rep.Problems) != 1 {
		t.Errorf("strict: %v %+v", err, rep)
	}
	if _, err := os.Stat(certs); !os.IsNotExist(err) {
		t.Error("strict wrote despite warnings")
	}
	// Notes do not fail --strict.
	write(t, cfg, "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\nconfig_path = \""+certs+"\"\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\ndiscard_unpacked_layers = true\n")
	if _, err := Containerd(ContainerdOptions{ConfigPath: certs, ContainerdConfig: cfg, Strict: true}); err != nil {
		t.Errorf("strict with a note: %v", err)
	}

	// An unwritable place is an error, not a panic or a usage error.
	blocker := filepath.Join(dir, "file")
	write(t, blocker, "x")
	if _, err := Containerd(ContainerdOptions{ConfigPath: blocker}); err == nil || isOptionError(err) {
		t.Errorf("unwritable: %v", err)
	}
	if _, err := Containerd(ContainerdOptions{ConfigPath: certs, Registries: []string{"http://x"}}); !isOptionError(err) {
		t.Errorf("bad registry: %v", err)
	}
}
