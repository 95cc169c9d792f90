package setup

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	toml "github.com/pelletier/go-toml/v2"
)

type crioConf struct {
	Registry []registryEntry `toml:"registry"`
}

func decodeCRIO(t *testing.T, b []byte) crioConf {
	t.Helper()
	var c crioConf
	if err := toml.NewDecoder(bytes.NewReader(b)).DisallowUnknownFields().Decode(&c); err != nil {
		t.Fatalf("drop-in does not decode: %v\n%s", err, b)
	}
	return c
}

func TestCRIODropin(t *testing.T) {
	dir := t.TempDir()
	drop := filepath.Join(dir, "registries.conf.d", "50-dfp2p.conf")
	opts := CRIOOptions{Dropin: drop, MainConf: filepath.Join(dir, "registries.conf"), Registries: []string{"docker.io", "ghcr.io"}}
	rep, err := CRIO(opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(rep.Changes); !slices.Equal(got, []Action{Created}) {
		t.Fatalf("actions = %v", got)
	}
	b := []byte(read(t, drop))
	if !bytes.HasPrefix(b, []byte(ManagedHeader)) {
		t.Errorf("no header:\n%s", b)
	}
	c := decodeCRIO(t, b)
	if len(c.Registry) != 2 {
		t.Fatalf("registries = %+v", c.Registry)
	}
	for i, want := range []struct{ prefix, mirror string }{{"docker.io", "127.0.0.1:65001"}, {"ghcr.io", "127.0.0.1:65001/ghcr.io"}} {
		r := c.Registry[i]
		if r.Prefix != want.prefix || r.Location != want.prefix || len(r.Mirror) != 1 ||
			r.Mirror[0].Location != want.mirror || r.Mirror[0].Insecure == nil || !*r.Mirror[0].Insecure {
			t.Errorf("entry %d = %+v", i, r)
		}
	}
	if !strings.Contains(strings.Join(rep.Notes, " "), "ghcr.io") {
		t.Errorf("no note on ghcr.io: %v", rep.Notes)
	}

	rep, err = CRIO(opts)
	if err != nil || rep.Changes[0].Action != Unchanged || !bytes.Equal(b, []byte(read(t, drop))) {
		t.Fatalf("second run: %+v %v", rep, err)
	}
	rep, err = CRIO(CRIOOptions{Dropin: drop, Undo: true})
	if err != nil || rep.Changes[0].Action != Removed {
		t.Fatalf("undo: %+v %v", rep, err)
	}
	if _, err := os.Stat(drop); !os.IsNotExist(err) {
		t.Error("drop-in still there")
	}

	// Default registry, https proxy: no insecure.
	if _, err := CRIO(CRIOOptions{Dropin: drop, Proxy: "https://127.0.0.1:65001"}); err != nil {
		t.Fatal(err)
	}
	c = decodeCRIO(t, []byte(read(t, drop)))
	if len(c.Registry) != 1 || c.Registry[0].Prefix != "docker.io" || c.Registry[0].Mirror[0].Insecure != nil {
		t.Errorf("default = %+v", c.Registry)
	}

	if _, err := CRIO(CRIOOptions{Dropin: filepath.Join(dir, "dfp2p.toml")}); !isOptionError(err) {
		t.Errorf("bad extension: %v", err)
	}
	if _, err := CRIO(CRIOOptions{Dropin: drop, Registries: []string{"docker.io/library"}}); !isOptionError(err) {
		t.Errorf("bad registry: %v", err)
	}
}

func TestCRIOCarriesOverAndWarns(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "registries.conf")
	drop := filepath.Join(dir, "registries.conf.d", "50-dfp2p.conf")
	write(t, main, `unqualified-search-registries = ["docker.io"]

[[registry]]
prefix = "docker.io"
location = "docker.io"
blocked = false

[[registry.mirror]]
location = "mirror.corp/dockerhub"

[[registry]]
prefix = "docker.io/library"
location = "docker.io/library"
`)
	write(t, filepath.Join(dir, "registries.conf.d", "99-late.conf"), "[[registry]]\nlocation = \"quay.io\"\n")
	orig := read(t, main)
	rep, err := CRIO(CRIOOptions{Dropin: drop, MainConf: main, Registries: []string{"docker.io", "quay.io"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := checks(rep.Problems); !slices.Equal(got, []string{"registry-longer-prefix", "registry-shadowed"}) {
		t.Errorf("problems = %v", got)
	}
	c := decodeCRIO(t, []byte(read(t, drop)))
	hub := c.Registry[0]
	if hub.Prefix != "docker.io" || hub.Blocked == nil || len(hub.Mirror) != 2 ||
		hub.Mirror[0].Location != "127.0.0.1:65001" || hub.Mirror[1].Location != "mirror.corp/dockerhub" {
		t.Errorf("docker.io entry = %+v", hub)
	}
	if read(t, main) != orig {
		t.Error("main registries.conf changed")
	}

	write(t, main, "[[registry]\n")
	if _, err := CRIO(CRIOOptions{Dropin: drop, MainConf: main}); err == nil || isOptionError(err) {
		t.Errorf("bad main conf: %v", err)
	}
}
