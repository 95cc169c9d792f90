package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runInit(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := newRoot()
	var out, errOut strings.Builder
	root.SetArgs(append([]string{"init"}, args...))
	root.SetOut(&out)
	root.SetErr(&errOut)
	err = root.Execute()
	return out.String(), errOut.String(), err
}

func TestInitContainerdEndToEnd(t *testing.T) {
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs.d")
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte("version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d:/etc/docker/certs.d\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := runInit(t, "containerd", "--config-path", certs, "--containerd-config", cfg, "--registry", "docker.io")
	if err != nil {
		t.Fatal(err)
	}
	hosts := filepath.Join(certs, "docker.io", "hosts.toml")
	b, err := os.ReadFile(hosts)
	if err != nil || !strings.Contains(string(b), `[host."http://127.0.0.1:65001"]`) {
		t.Fatalf("hosts.toml: %v\n%s", err, b)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if lines[0] != "created "+hosts || lines[len(lines)-1] != "restart containerd to apply: systemctl restart containerd" {
		t.Errorf("stdout:\n%s", out)
	}
	for _, want := range []string{"warning: config-path-multiple:", "warning: transfer-service:", "fix: set config_path = \"" + certs + "\""} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	for _, l := range strings.Split(strings.TrimSpace(errOut), "\n") {
		if !strings.HasPrefix(l, "warning: ") {
			t.Errorf("stderr line %q", l)
		}
	}

	out, _, err = runInit(t, "containerd", "--config-path", certs, "--containerd-config", cfg, "--registry", "docker.io")
	if err != nil || !strings.HasPrefix(out, "unchanged "+hosts) {
		t.Errorf("second run: %v\n%s", err, out)
	}
	_, _, err = runInit(t, "containerd", "--config-path", certs, "--containerd-config", cfg, "--registry", "docker.io", "--strict")
	var ue usageError
	if err == nil || errors.As(err, &ue) || !strings.Contains(err.Error(), "--strict") {
		t.Errorf("strict: %v", err)
	}
	out, _, err = runInit(t, "containerd", "--config-path", certs, "--undo")
	if err != nil || !strings.HasPrefix(out, "removed "+hosts) {
		t.Errorf("undo: %v\n%s", err, out)
	}
	if _, err := os.Stat(hosts); !os.IsNotExist(err) {
		t.Error("undo left hosts.toml")
	}
}

func TestInitDockerAndCRIO(t *testing.T) {
	dir := t.TempDir()
	dj := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(dj, []byte(`{"debug": true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err := runInit(t, "docker", "--daemon-json", dj, "--systemd-dropin", filepath.Join(dir, "docker.service.d"))
	if err != nil || !strings.Contains(out, "updated "+dj) || !strings.HasSuffix(out, "systemctl daemon-reload && systemctl restart docker\n") {
		t.Errorf("docker: %v\n%s", err, out)
	}
	drop := filepath.Join(dir, "registries.conf.d", "50-dfp2p.conf")
	out, _, err = runInit(t, "crio", "--registries-conf", drop, "--main-registries-conf", "", "--registry", "quay.io", "--dry-run")
	if err != nil || !strings.Contains(out, "would be created "+drop) || !strings.Contains(out, "127.0.0.1:65001/quay.io") {
		t.Errorf("crio dry run: %v\n%s", err, out)
	}
	if _, err := os.Stat(drop); !os.IsNotExist(err) {
		t.Error("dry run wrote")
	}
}

func TestInitErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(bad, []byte("version = [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{},
		{"podman"},
		{"containerd", "extra"},
		{"containerd", "--registry", "https://ghcr.io"},
		{"containerd", "--proxy", "ftp://x"},
		{"containerd", "--no-such-flag"},
		{"docker", "--proxy", "http://x/path"},
		{"crio", "--registries-conf", filepath.Join(dir, "x.toml")},
	} {
		_, _, err := runInit(t, args...)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: err = %v, want a usage error (exit 2)", args, err)
		}
	}
	// Bad input files are failures (exit 1), named in one line.
	_, _, err := runInit(t, "containerd", "--config-path", filepath.Join(dir, "certs.d"), "--containerd-config", bad)
	var ue usageError
	if err == nil || errors.As(err, &ue) || !strings.Contains(err.Error(), bad) {
		t.Errorf("bad TOML: %v", err)
	}
	dj := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(dj, []byte("{nope"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runInit(t, "docker", "--daemon-json", dj); err == nil || errors.As(err, &ue) || !strings.Contains(err.Error(), dj) {
		t.Errorf("bad JSON: %v", err)
	}
}
