package setup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	toml "github.com/pelletier/go-toml/v2"
)

const (
	// DefaultCRIODropin is the containers-registries.conf.d(5) drop-in dfp2p writes.
	DefaultCRIODropin = "/etc/containers/registries.conf.d/50-dfp2p.conf"
	// DefaultRegistriesConf is the main containers-registries.conf(5).
	DefaultRegistriesConf = "/etc/containers/registries.conf"
	// mirrorDefaultRegistry is the registry the dfp2p daemon serves mirror
	// requests that name none (its --proxy-default-registry).
	mirrorDefaultRegistry = "docker.io"
)

// CRIOOptions configures CRIO.
type CRIOOptions struct {
	Dropin     string   // the drop-in to write; default DefaultCRIODropin
	MainConf   string   // main registries.conf checked for entries the drop-in overrides; "" skips that
	Registries []string // HOST[:PORT]; none means docker.io
	Proxy      string   // the daemon's mirror, see ParseProxy; default DefaultProxy
	Undo       bool
	DryRun     bool
	Strict     bool
}

// registryEntry is one [[registry]] table of registries.conf version 2.
type registryEntry struct {
	Prefix             string        `toml:"prefix,omitempty"`
	Location           string        `toml:"location,omitempty"`
	Insecure           *bool         `toml:"insecure,omitempty"`
	Blocked            *bool         `toml:"blocked,omitempty"`
	MirrorByDigestOnly *bool         `toml:"mirror-by-digest-only,omitempty"`
	Mirror             []mirrorEntry `toml:"mirror,omitempty"`
}

type mirrorEntry struct {
	Location       string `toml:"location"`
	Insecure       *bool  `toml:"insecure,omitempty"`
	PullFromMirror string `toml:"pull-from-mirror,omitempty"`
}

func (e registryEntry) prefix() string {
	if e.Prefix != "" {
		return e.Prefix
	}
	return e.Location
}

type registriesFile struct {
	path    string
	entries []registryEntry
	unknown map[string]bool // prefixes whose tables have keys dfp2p does not carry over
}

// CRIO writes a containers-registries.conf.d drop-in that puts the dfp2p
// mirror in front of each registry for CRI-O (and Podman, Buildah, Skopeo).
// A [[registry]] entry for the same prefix in the main file or an earlier
// drop-in is replaced by the drop-in's, so its settings are carried over.
func CRIO(o CRIOOptions) (*Report, error) {
	if o.Dropin == "" {
		o.Dropin = DefaultCRIODropin
	}
	if filepath.Ext(o.Dropin) != ".conf" {
		return nil, optionErrorf("--registries-conf", "%q: drop-ins are read only when their name ends in .conf", o.Dropin)
	}
	proxy, err := ParseProxy(o.Proxy)
	if err != nil {
		return nil, err
	}
	for _, r := range o.Registries {
		if err := CheckRegistry(r); err != nil {
			return nil, err
		}
	}
	rep := &Report{DryRun: o.DryRun, Restart: "restart CRI-O to apply: systemctl restart crio"}
	if o.Undo {
		c, ok, err := undoManaged(o.Dropin, false, o.DryRun)
		if err != nil {
			return nil, err
		}
		if ok {
			rep.Changes = append(rep.Changes, c)
		} else {
			rep.Notes = append(rep.Notes, "nothing to undo: "+o.Dropin+" does not exist")
		}
		return rep, nil
	}
	regs := uniq(o.Registries)
	if len(regs) == 0 {
		regs = []string{mirrorDefaultRegistry}
	}

	others, err := otherRegistriesFiles(o.MainConf, o.Dropin)
	if err != nil {
		return nil, err
	}
	entries := make([]registryEntry, len(regs))
	for i, r := range regs {
		e := registryEntry{Prefix: r, Location: r}
		var from string
		for _, f := range others {
			later := f.path != o.MainConf && filepath.Base(f.path) > filepath.Base(o.Dropin)
			for _, fe := range f.entries {
				p := fe.prefix()
				switch {
				case p == r && later:
					rep.Problems = append(rep.Problems, Problem{Check: "registry-shadowed", Severity: Warning,
						Message: fmt.Sprintf("%s, read after %s, also has a [[registry]] for %s and replaces dfp2p's", f.path, o.Dropin, r),
						Fix:     fmt.Sprintf("add location = %q, insecure = %v as the first [[registry.mirror]] of that entry, or remove it", mirrorLocation(r, proxy), proxy.Scheme == "http")})
				case p == r:
					e, from = fe, f.path // the last earlier one is the one in force
					if f.unknown[p] {
						rep.Problems = append(rep.Problems, Problem{Check: "registry-unknown-keys", Severity: Warning,
							Message: fmt.Sprintf("the [[registry]] for %s in %s has settings dfp2p does not know, and the drop-in replaces that entry", r, f.path),
							Fix:     "copy those settings into " + o.Dropin + " by hand"})
					}
				case strings.HasPrefix(p, r+"/"):
					rep.Problems = append(rep.Problems, Problem{Check: "registry-longer-prefix", Severity: Note,
						Message: fmt.Sprintf("%s has a [[registry]] for %s, which wins over dfp2p's %s for those images (longest prefix)", f.path, p, r),
						Fix:     fmt.Sprintf("add location = %q as its first [[registry.mirror]] if those images should go through dfp2p too", mirrorLocation(r, proxy)+strings.TrimPrefix(p, r))})
				}
			}
		}
		if from != "" {
			rep.Notes = append(rep.Notes, fmt.Sprintf("the [[registry]] for %s in %s is carried into %s (a drop-in entry replaces an earlier one with the same prefix)", r, from, o.Dropin))
		}
		e.Prefix = r
		e.Mirror = append([]mirrorEntry{dfp2pMirror(r, proxy)}, withoutMirror(e.Mirror, mirrorLocation(r, proxy))...)
		entries[i] = e
	}
	if o.Strict && rep.Warnings() > 0 {
		return rep, &PreflightError{File: "the registries.conf files", Warnings: rep.Warnings()}
	}
	content, err := crioDropin(entries)
	if err != nil {
		return nil, err
	}
	c, err := applyManaged(o.Dropin, 0o644, func([]byte) ([]byte, string) { return content, "" }, o.DryRun)
	if err != nil {
		return nil, err
	}
	rep.Changes = append(rep.Changes, c)
	for _, r := range regs {
		if r != mirrorDefaultRegistry {
			rep.Notes = append(rep.Notes, fmt.Sprintf("CRI-O sends no ?ns= to a mirror, so %s goes to %s: the daemon must map the first path element to the registry; until it does, those pulls fall back to %s itself",
				r, mirrorLocation(r, proxy), r))
		}
	}
	return rep, nil
}

// mirrorLocation is where a registry's images are on the dfp2p mirror. The
// daemon serves its default registry (docker.io) at the root; any other
// registry is named by the first path element, because containers/image,
// unlike containerd, does not tell a mirror which registry it stands for.
func mirrorLocation(registry string, p ProxyURL) string {
	if registry == mirrorDefaultRegistry {
		return p.Host
	}
	return p.Host + "/" + registry
}

func dfp2pMirror(registry string, p ProxyURL) mirrorEntry {
	m := mirrorEntry{Location: mirrorLocation(registry, p)}
	if p.Scheme == "http" {
		t := true
		m.Insecure = &t
	}
	return m
}

func withoutMirror(ms []mirrorEntry, loc string) []mirrorEntry {
	var out []mirrorEntry
	for _, m := range ms {
		if m.Location != loc {
			out = append(out, m)
		}
	}
	return out
}

func crioDropin(entries []registryEntry) ([]byte, error) {
	body, err := toml.Marshal(struct {
		Registry []registryEntry `toml:"registry"`
	}{entries})
	if err != nil {
		return nil, err
	}
	head := ManagedHeader + ": `dfp2p init crio` wrote this file; `dfp2p init crio --undo` removes it.\n" +
		"# containers-registries.conf(5) version 2 drop-in: pulls try the dfp2p daemon's\n" +
		"# registry mirror first and fall back to the next mirror, then to the registry.\n\n"
	return append([]byte(head), body...), nil
}

// otherRegistriesFiles reads the main registries.conf and the drop-ins next
// to ours, in the order containers/image reads them.
func otherRegistriesFiles(main, dropin string) ([]registriesFile, error) {
	var paths []string
	if main != "" {
		paths = append(paths, main)
	}
	dir := filepath.Dir(dropin)
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".conf") && e.Name() != filepath.Base(dropin) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, n := range names {
		paths = append(paths, filepath.Join(dir, n))
	}
	var out []registriesFile
	for _, p := range paths {
		b, _, ok, err := readOptional(p)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		var doc struct {
			Registry []map[string]any `toml:"registry"`
		}
		if err := toml.Unmarshal(b, &doc); err != nil {
			return nil, fmt.Errorf("%s is not valid TOML: %v", p, oneLine(err))
		}
		f := registriesFile{path: p, unknown: map[string]bool{}}
		for _, raw := range doc.Registry {
			var e registryEntry
			rb, err := toml.Marshal(raw)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", p, err)
			}
			dec := toml.NewDecoder(strings.NewReader(string(rb)))
			if err := dec.DisallowUnknownFields().Decode(&e); err != nil {
				var sm *toml.StrictMissingError
				if !errors.As(err, &sm) {
					return nil, fmt.Errorf("%s: [[registry]]: %v", p, oneLine(err))
				}
				_ = toml.Unmarshal(rb, &e)
				f.unknown[e.prefix()] = true
			}
			f.entries = append(f.entries, e)
		}
		out = append(out, f)
	}
	return out, nil
}
