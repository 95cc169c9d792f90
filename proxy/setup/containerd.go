package setup

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"

	toml "github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

const (
	// DefaultContainerdConfigPath is where hosts.toml files go: the value
	// containerd's CRI registry config_path should have.
	DefaultContainerdConfigPath = "/etc/containerd/certs.d"
	// DefaultContainerdConfig is containerd's own configuration file.
	DefaultContainerdConfig = "/etc/containerd/config.toml"
	// DefaultRegistry is the hosts.toml namespace used when no registry is
	// named: containerd falls back to it for every registry without its own
	// directory.
	DefaultRegistry = "_default"

	restartContainerd = "restart containerd to apply: systemctl restart containerd"
)

// ContainerdOptions configures Containerd.
type ContainerdOptions struct {
	ConfigPath       string   // hosts directory; default DefaultContainerdConfigPath
	Registries       []string // HOST[:PORT] or "_default"; none means "_default" (undo: every file dfp2p manages)
	Proxy            string   // the daemon's mirror, see ParseProxy; default DefaultProxy
	ContainerdConfig string   // containerd's config.toml to check; "" skips the preflight
	Undo             bool     // restore backups, remove the files dfp2p created
	DryRun           bool     // report, write nothing
	Strict           bool     // preflight warnings are an error (*PreflightError) and nothing is written
}

// Containerd writes CONFIG_PATH/REGISTRY/hosts.toml for each registry so
// that containerd tries the dfp2p mirror first and falls back to the
// registry when the mirror fails or is down, and checks containerd's
// config.toml for what would make it ignore those files.
func Containerd(o ContainerdOptions) (*Report, error) {
	if o.ConfigPath == "" {
		o.ConfigPath = DefaultContainerdConfigPath
	}
	if abs, err := filepath.Abs(o.ConfigPath); err == nil {
		o.ConfigPath = abs // config_path in config.toml is absolute
	}
	proxy, err := ParseProxy(o.Proxy)
	if err != nil {
		return nil, err
	}
	for _, r := range o.Registries {
		if r == DefaultRegistry {
			continue
		}
		if err := CheckRegistry(r); err != nil {
			return nil, err
		}
	}
	rep := &Report{DryRun: o.DryRun, Restart: restartContainerd}
	if o.Undo {
		return rep, containerdUndo(o, rep)
	}
	if o.ContainerdConfig != "" {
		probs, err := preflightContainerdFile(o.ContainerdConfig, o.ConfigPath)
		if err != nil {
			return nil, err
		}
		rep.Problems = probs
		if o.Strict && rep.Warnings() > 0 {
			return rep, &PreflightError{File: o.ContainerdConfig, Warnings: rep.Warnings()}
		}
	}
	regs := uniq(o.Registries)
	if len(regs) == 0 {
		regs = []string{DefaultRegistry}
	}
	for _, r := range regs {
		dir := hostsDir(o.ConfigPath, r)
		certs, err := dockerCertFiles(dir)
		if err != nil {
			return nil, err
		}
		c, err := applyManaged(filepath.Join(dir, "hosts.toml"), 0o644, func(base []byte) ([]byte, string) {
			return hostsTOML(r, proxy, base, certs)
		}, o.DryRun)
		if err != nil {
			return nil, err
		}
		rep.Changes = append(rep.Changes, c)
	}
	return rep, nil
}

func containerdUndo(o ContainerdOptions, rep *Report) error {
	var dirs []string
	for _, r := range uniq(o.Registries) {
		dirs = append(dirs, hostsDir(o.ConfigPath, r))
	}
	if len(dirs) == 0 {
		entries, err := os.ReadDir(o.ConfigPath)
		if errors.Is(err, fs.ErrNotExist) {
			rep.Notes = append(rep.Notes, "nothing to undo: "+o.ConfigPath+" does not exist")
			return nil
		}
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.IsDir() {
				dirs = append(dirs, filepath.Join(o.ConfigPath, e.Name()))
			}
		}
	}
	for _, dir := range dirs {
		c, ok, err := undoManaged(filepath.Join(dir, "hosts.toml"), true, o.DryRun)
		if err != nil {
			return err
		}
		// A directory scan reports only what dfp2p touched.
		if ok && (len(o.Registries) > 0 || c.Action != Skipped) {
			rep.Changes = append(rep.Changes, c)
		}
	}
	if len(rep.Changes) == 0 {
		rep.Notes = append(rep.Notes, "nothing to undo under "+o.ConfigPath)
	}
	return nil
}

// hostsDir is the directory containerd reads for registry: for HOST:PORT it
// looks at HOST_PORT_ first, then HOST:PORT, so an existing HOST_PORT_ wins.
func hostsDir(configPath, registry string) string {
	if i := strings.LastIndex(registry, ":"); i > 0 && !strings.HasSuffix(registry, "]") {
		alt := filepath.Join(configPath, registry[:i]+"_"+registry[i+1:]+"_")
		if fi, err := os.Stat(alt); err == nil && fi.IsDir() {
			return alt
		}
	}
	return filepath.Join(configPath, registry)
}

// ContainerdHostsTOML is the hosts.toml dfp2p writes for registry (HOST[:PORT]
// or "_default") when there is no file to merge into.
func ContainerdHostsTOML(registry, proxy string) ([]byte, error) {
	p, err := ParseProxy(proxy)
	if err != nil {
		return nil, err
	}
	if registry != DefaultRegistry {
		if err := CheckRegistry(registry); err != nil {
			return nil, err
		}
	}
	b, _ := hostsTOML(registry, p, nil, nil)
	return b, nil
}

// upstreamServer is the registry's own endpoint, tried after the mirror.
// Docker Hub's API lives at registry-1.docker.io, as containerd itself maps it.
func upstreamServer(registry string) string {
	if registry == "docker.io" {
		return "https://registry-1.docker.io"
	}
	return "https://" + registry
}

func hostsHeader() string {
	return ManagedHeader + ": `dfp2p init containerd` wrote this file; `dfp2p init containerd --undo` puts back what was here.\n"
}

// mirrorBlock is the [host] table of the dfp2p mirror. dial_timeout is known
// to containerd 2.1+ (and 2.0.x with the backport); 1.6 and 1.7 ignore the
// key and fail over on their own dial error, which on loopback is immediate.
func mirrorBlock(p ProxyURL) string {
	return "# The dfp2p daemon's registry mirror, tried first. When it fails or is down,\n" +
		"# containerd moves on to the next host, then to the registry itself.\n" +
		"[host." + tomlQuote(p.String()) + "]\n" +
		"  capabilities = [\"pull\", \"resolve\"]\n" +
		"  override_path = false\n" +
		"  dial_timeout = \"200ms\"\n"
}

// hostsTOML renders hosts.toml. With base (what was there before dfp2p), the
// mirror table goes in front of base's own hosts and everything else of base
// is kept; certs are the Docker-style certificate files of the directory,
// which containerd stops reading on its own once a hosts.toml exists.
func hostsTOML(registry string, p ProxyURL, base []byte, certs *certFiles) ([]byte, string) {
	if len(bytes.TrimSpace(base)) > 0 {
		merged, err := mergeHostsTOML(base, p)
		if err != nil {
			b, _ := hostsTOML(registry, p, nil, certs)
			return b, "could not keep the settings that were there (" + err.Error() + "); they are in the backup"
		}
		return append([]byte(hostsHeader()), merged...), "kept the settings that were there; the dfp2p mirror is tried first"
	}
	var sb strings.Builder
	sb.WriteString(hostsHeader())
	if registry == DefaultRegistry {
		sb.WriteString("# No server: after the hosts below, containerd uses each image's own registry.\n")
	} else {
		sb.WriteString("server = " + tomlQuote(upstreamServer(registry)) + "\n")
	}
	note := ""
	if certs != nil && !certs.empty() {
		if len(certs.ca) > 0 {
			sb.WriteString("ca = [" + quoteList(certs.ca) + "]\n")
		}
		if len(certs.client) > 0 {
			pairs := make([]string, len(certs.client))
			for i, c := range certs.client {
				pairs[i] = "[" + quoteList(c[:]) + "]"
			}
			sb.WriteString("client = [" + strings.Join(pairs, ", ") + "]\n")
		}
		note = "the directory's certificate files are now listed in hosts.toml (containerd reads them on its own only without one)"
	}
	sb.WriteString("\n")
	sb.WriteString(mirrorBlock(p))
	return []byte(sb.String()), note
}

// mergeHostsTOML puts the mirror table in front of base's first table and
// checks the result: it must parse, say exactly what base said plus the
// mirror, and list the mirror before every other host.
func mergeHostsTOML(base []byte, p ProxyURL) ([]byte, error) {
	var orig map[string]any
	if err := toml.Unmarshal(base, &orig); err != nil {
		return nil, fmt.Errorf("it is not valid TOML: %v", oneLine(err))
	}
	key := p.String()
	if hosts, ok := orig["host"].(map[string]any); ok {
		if _, dup := hosts[key]; dup {
			return nil, fmt.Errorf("it already has a [host.%q] table", key)
		}
	}
	at, err := firstTableOffset(base)
	if err != nil {
		return nil, err
	}
	// Keep comments directly above the first table with that table.
	for at > 0 {
		prev := bytes.LastIndexByte(base[:at-1], '\n') + 1
		if !bytes.HasPrefix(bytes.TrimSpace(base[prev:at]), []byte("#")) {
			break
		}
		at = prev
	}
	var out bytes.Buffer
	out.Write(base[:at])
	if at > 0 && base[at-1] != '\n' {
		out.WriteByte('\n')
	}
	if at > 0 && !bytes.HasSuffix(out.Bytes(), []byte("\n\n")) {
		out.WriteByte('\n')
	}
	out.WriteString(mirrorBlock(p))
	if at < len(base) {
		out.WriteByte('\n')
		out.Write(base[at:])
	}
	res := out.Bytes()
	var got map[string]any
	if err := toml.Unmarshal(res, &got); err != nil {
		return nil, fmt.Errorf("merging would not parse: %v", oneLine(err))
	}
	hosts, _ := got["host"].(map[string]any)
	mine := hosts[key]
	delete(hosts, key)
	if len(hosts) == 0 {
		delete(got, "host")
	}
	if !reflect.DeepEqual(got, orig) || mine == nil {
		return nil, errors.New("merging would change its meaning")
	}
	order, err := hostTableOrder(res)
	if err != nil {
		return nil, err
	}
	if len(order) != len(hosts)+1 || order[0] != key {
		return nil, errors.New("its hosts are not all [host.\"...\"] tables")
	}
	return res, nil
}

// firstTableOffset is where the line of the first [table] or [[array]] header
// starts, or len(b) when there is none.
func firstTableOffset(b []byte) (int, error) {
	var p unstable.Parser
	p.Reset(b)
	for p.NextExpression() {
		e := p.Expression()
		if e.Kind != unstable.Table && e.Kind != unstable.ArrayTable {
			continue
		}
		it := e.Key()
		if !it.Next() {
			continue
		}
		off := int(it.Node().Raw.Offset)
		return bytes.LastIndexByte(b[:off], '\n') + 1, nil
	}
	if err := p.Error(); err != nil {
		return 0, err
	}
	return len(b), nil
}

// hostTableOrder lists the [host."X"] tables in document order, which is the
// order containerd tries them in.
func hostTableOrder(b []byte) ([]string, error) {
	var p unstable.Parser
	p.Reset(b)
	var out []string
	for p.NextExpression() {
		e := p.Expression()
		if e.Kind != unstable.Table {
			continue
		}
		var parts []string
		for it := e.Key(); it.Next(); {
			parts = append(parts, string(it.Node().Data))
		}
		if len(parts) == 2 && parts[0] == "host" {
			out = append(out, parts[1])
		}
	}
	return out, p.Error()
}

// certFiles are Docker-style certificate files in a hosts directory:
// NAME.crt are CAs, NAME.cert + NAME.key client pairs.
type certFiles struct {
	ca     []string
	client [][2]string
}

func (c *certFiles) empty() bool { return len(c.ca) == 0 && len(c.client) == 0 }

func dockerCertFiles(dir string) (*certFiles, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c := &certFiles{}
	names := map[string]bool{}
	for _, e := range entries {
		names[e.Name()] = true
	}
	for _, e := range entries {
		n := e.Name()
		switch {
		case e.IsDir():
		case strings.HasSuffix(n, ".crt"):
			c.ca = append(c.ca, n)
		case strings.HasSuffix(n, ".cert"):
			if key := strings.TrimSuffix(n, ".cert") + ".key"; names[key] {
				c.client = append(c.client, [2]string{n, key})
			}
		}
	}
	return c, nil
}

func uniq(ss []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

// ---- preflight ----

// PreflightContainerd checks one containerd config.toml (version 1, 2 or 3
// layout) for what keeps containerd's CRI plugin from using the hosts.toml
// files under configPath. It does no I/O; Containerd also follows the
// file's imports.
func PreflightContainerd(config []byte, configPath string) ([]Problem, error) {
	doc := map[string]any{}
	if err := toml.Unmarshal(config, &doc); err != nil {
		return nil, fmt.Errorf("not valid TOML: %v", oneLine(err))
	}
	return preflightContainerd(doc, configPath), nil
}

func preflightContainerdFile(file, configPath string) ([]Problem, error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return []Problem{{
			Check: "config-missing", Severity: Warning,
			Message: fmt.Sprintf("%s does not exist, so containerd runs on built-in defaults: config_path is empty in 1.x (no hosts.toml is read) and, in newer 2.x releases, two directories the 2.1+ transfer service cannot use", file),
			Fix: fmt.Sprintf("create %s with: version = 2 and [plugins.\"io.containerd.grpc.v1.cri\".registry] config_path = %q (containerd 2.x: version = 3 and [plugins.\"io.containerd.cri.v1.images\".registry])",
				file, configPath),
		}}, nil
	}
	if err != nil {
		return nil, err
	}
	doc := map[string]any{}
	if err := toml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("containerd config %s is not valid TOML: %v", file, oneLine(err))
	}
	var probs []Problem
	imports, err := containerdImports(doc, file)
	if err != nil {
		return nil, err
	}
	for _, imp := range imports {
		ib, err := os.ReadFile(imp)
		if errors.Is(err, fs.ErrNotExist) {
			probs = append(probs, Problem{Check: "import-missing", Severity: Note,
				Message: fmt.Sprintf("%s imports %s, which does not exist", file, imp),
				Fix:     "create it or drop it from imports"})
			continue
		}
		if err != nil {
			return nil, err
		}
		idoc := map[string]any{}
		if err := toml.Unmarshal(ib, &idoc); err != nil {
			return nil, fmt.Errorf("containerd config %s (imported by %s) is not valid TOML: %v", imp, file, oneLine(err))
		}
		delete(idoc, "version")
		delete(idoc, "imports")
		mergeTOML(doc, idoc)
	}
	return append(probs, preflightContainerd(doc, configPath)...), nil
}

// containerdImports resolves the imports list as containerd does: relative
// to the file's directory, with * globs.
func containerdImports(doc map[string]any, file string) ([]string, error) {
	list, _ := doc["imports"].([]any)
	var out []string
	for _, v := range list {
		s, ok := v.(string)
		if !ok {
			continue
		}
		if !filepath.IsAbs(s) {
			s = filepath.Join(filepath.Dir(file), s)
		}
		if strings.Contains(s, "*") {
			m, err := filepath.Glob(s)
			if err != nil {
				return nil, fmt.Errorf("containerd config %s: import %q: %v", file, s, err)
			}
			out = append(out, m...)
			continue
		}
		out = append(out, filepath.Clean(s))
	}
	return out, nil
}

// mergeTOML lays src over dst key by key. (containerd 1.x replaces a whole
// plugin table with the imported one; key by key is what 2.x does and is
// close enough for these checks.)
func mergeTOML(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				mergeTOML(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

// criLayout is where the CRI image settings live in one config version.
type criLayout struct {
	registry []string // the registry table
	discard  []string // discard_unpacked_layers
	useLocal []string // use_local_image_pull (containerd 2.1+); nil for version 1
}

func layoutFor(version int) criLayout {
	switch {
	case version <= 1:
		cri := []string{"plugins", "cri"}
		return criLayout{registry: with(cri, "registry"), discard: with(cri, "containerd", "discard_unpacked_layers")}
	case version == 2:
		cri := []string{"plugins", "io.containerd.grpc.v1.cri"}
		return criLayout{registry: with(cri, "registry"), discard: with(cri, "containerd", "discard_unpacked_layers"),
			useLocal: []string{"plugins", "io.containerd.cri.v1.images", "use_local_image_pull"}}
	default:
		img := []string{"plugins", "io.containerd.cri.v1.images"}
		return criLayout{registry: with(img, "registry"), discard: with(img, "discard_unpacked_layers"),
			useLocal: with(img, "use_local_image_pull")}
	}
}

func with(base []string, more ...string) []string {
	return append(append([]string(nil), base...), more...)
}

// keyString spells a key path as in a TOML file: plugins."io.containerd.grpc.v1.cri".registry.
func keyString(path []string) string {
	parts := make([]string, len(path))
	for i, p := range path {
		if strings.ContainsAny(p, ". \"'") || p == "" {
			parts[i] = strconv.Quote(p)
		} else {
			parts[i] = p
		}
	}
	return strings.Join(parts, ".")
}

func tableHeader(path []string) string { return "[" + keyString(path) + "]" }

func lookup(doc map[string]any, path []string) (any, bool) {
	var cur any = doc
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func lookupString(doc map[string]any, path []string) string {
	v, _ := lookup(doc, path)
	s, _ := v.(string)
	return s
}

func lookupBool(doc map[string]any, path []string) (val, set bool) {
	v, ok := lookup(doc, path)
	b, isBool := v.(bool)
	return b, ok && isBool
}

func sortedKeys(v any) []string {
	m, _ := v.(map[string]any)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func preflightContainerd(doc map[string]any, want string) []Problem {
	if want == "" {
		want = DefaultContainerdConfigPath
	}
	want = filepath.Clean(want)
	var probs []Problem
	add := func(check string, sev Severity, key []string, msg, fix string) {
		k := ""
		if key != nil {
			k = keyString(key)
		}
		probs = append(probs, Problem{Check: check, Severity: sev, Key: k, Message: msg, Fix: fix})
	}

	version := 1
	if v, ok := doc["version"].(int64); ok {
		version = int(v)
	}
	if version <= 1 {
		if _, ok := lookup(doc, []string{"plugins", "io.containerd.grpc.v1.cri"}); ok {
			add("config-version", Warning, nil,
				`the file has no "version = 2", so containerd 1.x reads it as version 1, where the CRI plugin is [plugins.cri], and ignores every [plugins."io.containerd.grpc.v1.cri"] setting`,
				`add "version = 2" as the first line (the checks below assume it)`)
			version = 2
		}
	}
	lay := layoutFor(version)

	if dis, ok := doc["disabled_plugins"].([]any); ok {
		for _, d := range dis {
			switch d {
			case "cri", "io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images":
				add("cri-disabled", Warning, []string{"disabled_plugins"},
					fmt.Sprintf("lists %q: the CRI plugin is off (Docker's containerd.io package ships this), so Kubernetes cannot use this containerd and config_path has no effect", d),
					fmt.Sprintf("remove %q from disabled_plugins; on a Docker-only host use `dfp2p init docker` instead", d))
			}
		}
	}

	cpKey := with(lay.registry, "config_path")
	cp := lookupString(doc, cpKey)
	var dirs []string
	for _, d := range strings.Split(cp, string(filepath.ListSeparator)) {
		if d = strings.TrimSpace(d); d != "" {
			dirs = append(dirs, d)
		}
	}
	setCP := fmt.Sprintf("set config_path = %q under %s", want, tableHeader(lay.registry))
	useLocal, _ := lookupBool(doc, lay.useLocal)
	switch {
	case len(dirs) == 0:
		msg := "is not set, so the CRI plugin reads no hosts.toml and pulls straight from the registries"
		if version >= 3 {
			msg = "is not set: containerd 2.x then falls back to its built-in default, which is empty or, in newer releases, the two directories \"/etc/containerd/certs.d:/etc/docker/certs.d\" that the transfer service cannot use"
			if old := lookupString(doc, []string{"plugins", "io.containerd.grpc.v1.cri", "registry", "config_path"}); old != "" {
				msg += fmt.Sprintf(` (config_path = %q under [plugins."io.containerd.grpc.v1.cri".registry] is not read in a version 3 file)`, old)
			}
		}
		add("config-path-unset", Warning, cpKey, msg, setCP)
	case len(dirs) > 1:
		add("config-path-multiple", Warning, cpKey,
			fmt.Sprintf("is %q, several directories: containerd 1.x uses the first one that has a directory for the registry, and the 2.1+ transfer service takes the whole string as one directory", cp),
			setCP+" (one directory)")
		if !useLocal && lay.useLocal != nil {
			add("transfer-service", Warning, lay.useLocal,
				fmt.Sprintf("is not true, so containerd 2.1+ pulls CRI images through the transfer service, which takes config_path %q as one directory, finds no hosts.toml there and skips the mirror without a word (containerd issue #12415)", cp),
				setCP+", or set use_local_image_pull = true under "+tableHeader(lay.useLocal[:len(lay.useLocal)-1]))
		}
	case filepath.Clean(dirs[0]) != want:
		add("config-path-mismatch", Warning, cpKey,
			fmt.Sprintf("is %q, but dfp2p writes hosts.toml under %q", cp, want),
			setCP+fmt.Sprintf(", or run again with --config-path %s", dirs[0]))
	}

	if mirrors := sortedKeys(mustLookup(doc, with(lay.registry, "mirrors"))); len(mirrors) > 0 {
		msg := fmt.Sprintf("configures %s: deprecated, and containerd will not load the CRI plugin at all with both mirrors and config_path (\"`mirrors` cannot be set when `config_path` is provided\")", quoteList(mirrors))
		add("legacy-mirrors", Warning, with(lay.registry, "mirrors"), msg,
			fmt.Sprintf("move each mirror into %s/<registry>/hosts.toml and delete the %s tables", want, tableHeader(with(lay.registry, "mirrors"))))
	}
	var tls []string
	for _, h := range sortedKeys(mustLookup(doc, with(lay.registry, "configs"))) {
		if _, ok := lookup(doc, with(lay.registry, "configs", h, "tls")); ok {
			tls = append(tls, h)
		}
	}
	if len(tls) > 0 {
		add("legacy-configs-tls", Warning, with(lay.registry, "configs"),
			fmt.Sprintf("sets tls for %s: containerd 1.x will not load the CRI plugin with both configs.<host>.tls and config_path (\"`configs.tls` cannot be set when `config_path` is provided\")", quoteList(tls)),
			fmt.Sprintf("move the tls settings to ca, client and skip_verify in %s/<registry>/hosts.toml and delete the tls tables", want))
	}

	if discard, _ := lookupBool(doc, lay.discard); discard {
		add("discard-unpacked-layers", Note, lay.discard,
			"= true (the EKS, GKE and RKE2 default): containerd deletes layer blobs once unpacked, so peers cannot get them from containerd's content store; dfp2p serves peers from its own cache and does not need them, but Spegel-style mirrors and `ctr export` do, and on containerd 2.1+ it also turns CRI pulls back to local (non-transfer-service) pulls",
			"nothing for dfp2p; set discard_unpacked_layers = false under "+tableHeader(lay.discard[:len(lay.discard)-1])+" if a tool needs the blobs")
	}
	return probs
}

func mustLookup(doc map[string]any, path []string) any {
	v, _ := lookup(doc, path)
	return v
}
