package validate

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite deploy/kubernetes/dfp2p.yaml from the chart")

// Paths from this package (deploy/validate).
const (
	repoRoot  = "../.."
	chartDir  = "../helm/dfp2p"
	manifests = "../kubernetes/dfp2p.yaml"
)

var bin string // the dfp2p binary, built once from this checkout

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "dfp2p-deploy-check-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "dfp2p")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/dfp2p")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// render renders the chart as `helm template dfp2p deploy/helm/dfp2p -n dfp2p
// --set ...` does: Helm's chart loader, values coalescing and engine.
func render(t *testing.T, set map[string]any) map[string]string {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Validate(); err != nil {
		t.Fatal(err)
	}
	vals, err := chartutil.ToRenderValues(ch, set, chartutil.ReleaseOptions{Name: "dfp2p", Namespace: "dfp2p", IsInstall: true, Revision: 1}, chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	out, err := engine.Render(ch, vals)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return out
}

// manifest joins the rendered templates as `helm template` prints them.
func manifest(files map[string]string) string {
	names := make([]string, 0, len(files))
	for n := range files {
		if strings.HasSuffix(n, ".yaml") && strings.TrimSpace(files[n]) != "" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", n, strings.TrimSpace(files[n]))
	}
	return b.String()
}

var decoder = func() runtime.Decoder {
	s := runtime.NewScheme()
	if err := corev1.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := appsv1.AddToScheme(s); err != nil {
		panic(err)
	}
	return kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, s, s, kjson.SerializerOptions{Yaml: true, Strict: true})
}()

// serviceMonitor is the part of prometheus-operator's ServiceMonitor the
// chart writes (its types are not in k8s.io/api); decoded strictly too.
type serviceMonitor struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Selector struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		Endpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// objects decodes every document of a manifest strictly: an unknown or
// repeated field is an error.
func objects(t *testing.T, m string) []any {
	t.Helper()
	var out []any
	for name, doc := range releaseutil.SplitManifests(m) {
		if onlyComments(doc) {
			continue
		}
		var meta struct{ Kind string }
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if meta.Kind == "ServiceMonitor" {
			var sm serviceMonitor
			if err := yaml.UnmarshalStrict([]byte(doc), &sm); err != nil {
				t.Fatalf("ServiceMonitor: %v\n%s", err, doc)
			}
			out = append(out, &sm)
			continue
		}
		obj, gvk, err := decoder.Decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatalf("%s (%s): %v\n%s", name, meta.Kind, err, doc)
		}
		if gvk.Kind != meta.Kind {
			t.Fatalf("decoded %v for kind %s", gvk, meta.Kind)
		}
		out = append(out, obj)
	}
	return out
}

func onlyComments(doc string) bool {
	for _, l := range strings.Split(doc, "\n") {
		if l = strings.TrimSpace(l); l != "" && l != "---" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

func find[T any](objs []any) []T {
	var out []T
	for _, o := range objs {
		if x, ok := o.(T); ok {
			out = append(out, x)
		}
	}
	return out
}

// helpFlags are the long flags `dfp2p SUBCOMMAND... --help` lists.
func helpFlags(t *testing.T, sub ...string) map[string]bool {
	t.Helper()
	out, err := exec.Command(bin, append(sub, "--help")...).CombinedOutput()
	if err != nil {
		t.Fatalf("dfp2p %v --help: %v\n%s", sub, err, out)
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if len(flags) < 3 {
		t.Fatalf("dfp2p %v --help lists no flags:\n%s", sub, out)
	}
	return flags
}

// checkArgs checks that every --flag in a container's args exists in
// `dfp2p SUBCOMMAND --help`; the subcommand is the leading non-flag words.
func checkArgs(t *testing.T, where string, args []string) {
	t.Helper()
	var sub []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			break
		}
		sub = append(sub, a)
	}
	if len(sub) == 0 {
		t.Fatalf("%s: args %v name no dfp2p command", where, args)
	}
	known := helpFlags(t, sub...)
	for _, a := range args {
		if name, ok := strings.CutPrefix(a, "--"); ok {
			name, _, _ = strings.Cut(name, "=")
			if !known[name] {
				t.Errorf("%s: dfp2p %s has no flag --%s", where, strings.Join(sub, " "), name)
			}
		}
	}
}

// validateConfig runs `dfp2p config validate --for role` on a config the
// chart writes.
func validateConfig(t *testing.T, role, body string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), role+".yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "config", "validate", "--for", role, p).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Errorf("%s config from the chart is refused: %v\n%s\n%s", role, err, out, body)
	}
}

var valueSets = map[string]map[string]any{
	"defaults": nil,
	"secrets and monitoring": {
		"cluster": map[string]any{"joinToken": "dfp2p-join-v1.x\n", "caKey": "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n"},
		"metrics": map[string]any{"serviceMonitor": map[string]any{"enabled": true}},
		"daemon": map[string]any{"apiBind": "0.0.0.0", "trackers": []any{"/dns4/dfp2p-tracker-0.dfp2p-tracker-headless.dfp2p.svc.cluster.local/udp/4010/quic-v1/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"},
			"initContainerd": map[string]any{"strict": true}},
		"tracker": map[string]any{"replicas": 3, "persistence": map[string]any{"storageClass": "fast"}},
	},
	"existing secret with CA": {"cluster": map[string]any{"existingSecret": "mine", "existingSecretHasCA": true}},
	"daemon only":             {"tracker": map[string]any{"enabled": false}, "daemon": map[string]any{"initContainerd": map[string]any{"enabled": false}}},
}

func TestChart(t *testing.T) {
	for name, set := range valueSets {
		t.Run(name, func(t *testing.T) {
			files := render(t, set)
			objs := objects(t, manifest(files))
			checkChart(t, name, objs)
		})
	}
}

func checkChart(t *testing.T, name string, objs []any) {
	cms := find[*corev1.ConfigMap](objs)
	if len(cms) != 1 {
		t.Fatalf("%d ConfigMaps", len(cms))
	}
	for _, role := range []string{"tracker", "daemon"} {
		validateConfig(t, role, cms[0].Data[role+".yaml"])
	}
	secretName := "dfp2p-cluster"
	if name == "existing secret with CA" {
		secretName = "mine"
	}
	for _, ds := range find[*appsv1.DaemonSet](objs) {
		spec := ds.Spec.Template.Spec
		if !spec.HostNetwork {
			t.Error("daemon: not on the host network (containerd reaches the mirror on the node's 127.0.0.1)")
		}
		if ds.Spec.UpdateStrategy.RollingUpdate == nil || ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable == nil {
			t.Error("daemon: no maxUnavailable")
		}
		c := spec.Containers[0]
		checkArgs(t, "daemon container", c.Args)
		if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.HostPort == 65001 && p.ContainerPort == 65001 }) {
			t.Errorf("daemon: no hostPort 65001: %+v", c.Ports)
		}
		if !strings.Contains(cms[0].Data["daemon.yaml"], "proxy: 127.0.0.1:65001") {
			t.Errorf("daemon config does not put the mirror on 127.0.0.1:65001:\n%s", cms[0].Data["daemon.yaml"])
		}
		join := false
		for _, e := range c.Env {
			if e.Name == "DFP2P_JOIN" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil &&
				e.ValueFrom.SecretKeyRef.Name == secretName && e.ValueFrom.SecretKeyRef.Key == "join-token" {
				join = true
			}
		}
		if !join {
			t.Errorf("daemon: DFP2P_JOIN does not come from secret %s", secretName)
		}
		checkPod(t, "daemon", spec, c)
		if name == "daemon only" {
			if len(spec.InitContainers) != 0 {
				t.Error("init container with initContainerd.enabled=false")
			}
			continue
		}
		if len(spec.InitContainers) != 1 {
			t.Fatalf("daemon: %d init containers", len(spec.InitContainers))
		}
		ic := spec.InitContainers[0]
		if len(ic.Args) < 2 || ic.Args[0] != "init" || ic.Args[1] != "containerd" {
			t.Errorf("init container does not run `dfp2p init containerd`: %v", ic.Args)
		}
		checkArgs(t, "init container", ic.Args)
		if !slices.Contains(ic.Args, "127.0.0.1:65001") {
			t.Errorf("init container points containerd elsewhere: %v", ic.Args)
		}
		// Same paths inside and outside: the host's dirs mounted where they are.
		vols := map[string]corev1.Volume{}
		for _, v := range spec.Volumes {
			vols[v.Name] = v
		}
		for _, m := range ic.VolumeMounts {
			v := vols[m.Name]
			if v.HostPath == nil || v.HostPath.Path != m.MountPath {
				t.Errorf("init container mount %s: host path %+v at %s", m.Name, v.HostPath, m.MountPath)
			}
		}
		if ic.Image != c.Image {
			t.Errorf("init container image %s, daemon %s", ic.Image, c.Image)
		}
	}
	for _, ss := range find[*appsv1.StatefulSet](objs) {
		spec := ss.Spec.Template.Spec
		c := spec.Containers[0]
		checkArgs(t, "tracker container", c.Args)
		checkPod(t, "tracker", spec, c)
		if len(ss.Spec.VolumeClaimTemplates) != 1 {
			t.Error("tracker: no volume claim template")
		}
		if ss.Spec.ServiceName == "" {
			t.Error("tracker: no headless service")
		}
		ca := name != "defaults"
		if got := strings.Contains(cms[0].Data["tracker.yaml"], "ca: /etc/dfp2p/cluster/cluster-ca.key"); got != ca {
			t.Errorf("tracker config names the CA from the Secret: %v, want %v", got, ca)
		}
		if !ca && (spec.SecurityContext.RunAsNonRoot == nil || !*spec.SecurityContext.RunAsNonRoot) {
			t.Error("tracker: not runAsNonRoot")
		}
	}
	svcs := find[*corev1.Service](objs)
	if name != "daemon only" {
		if len(svcs) != 2 {
			t.Fatalf("%d services, want headless + API/libp2p", len(svcs))
		}
		protos := map[corev1.Protocol]bool{}
		for _, p := range svcs[0].Spec.Ports {
			protos[p.Protocol] = true
		}
		if !protos[corev1.ProtocolUDP] || !protos[corev1.ProtocolTCP] {
			t.Errorf("tracker service lacks UDP (QUIC) or TCP: %+v", svcs[0].Spec.Ports)
		}
	}
	if sms := find[*serviceMonitor](objs); (len(sms) == 1) != (name == "secrets and monitoring") {
		t.Errorf("%d ServiceMonitors", len(sms))
	}
	secrets := find[*corev1.Secret](objs)
	switch name {
	case "secrets and monitoring":
		if len(secrets) != 1 || secrets[0].StringData["join-token"] != "dfp2p-join-v1.x" || secrets[0].StringData["cluster-ca.key"] == "" {
			t.Errorf("secret: %+v", secrets)
		}
	default:
		if len(secrets) != 0 {
			t.Errorf("%d secrets made without values", len(secrets))
		}
	}
}

// checkPod: probes on /healthz, resources, a locked-down security context.
func checkPod(t *testing.T, role string, spec corev1.PodSpec, c corev1.Container) {
	t.Helper()
	for what, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe, "startup": c.StartupProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" {
			t.Errorf("%s: %s probe is not GET /healthz", role, what)
		}
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("%s: resources %+v", role, c.Resources)
	}
	sc := c.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil ||
		!*sc.ReadOnlyRootFilesystem || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("%s: security context %+v", role, sc)
	}
	if c.Args[0] != role || !slices.Contains(c.Args, "--config") {
		t.Errorf("%s: args %v", role, c.Args)
	}
}

// The committed plain manifests are the chart rendered with its defaults,
// and they decode strictly. `go test -update` (make deploy-manifests)
// rewrites them.
func TestPlainManifests(t *testing.T) {
	want := "# Generated by `make deploy-manifests` from deploy/helm/dfp2p with its default\n" +
		"# values (release dfp2p, namespace dfp2p). Do not edit: change the chart.\n" +
		manifest(render(t, nil))
	if *update {
		if err := os.WriteFile(manifests, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(manifests)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("%s is not the chart rendered with its defaults: run `make deploy-manifests`", manifests)
	}
	checkChart(t, "defaults", objects(t, string(got)))
}

// The Dockerfile parses with BuildKit's parser, builds the binary as the
// Makefile does (plus CGO_ENABLED=0), and runs it as a non-root user from a
// distroless base. It is not built here: no Docker engine runs in the tests.
func TestDockerfile(t *testing.T) {
	f, err := os.Open("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range res.Warnings {
		t.Errorf("Dockerfile warning: %s", w.Short)
	}
	var froms, users, runs, entry, args []string
	for _, n := range res.AST.Children {
		var words []string
		for x := n.Next; x != nil; x = x.Next {
			words = append(words, x.Value)
		}
		line := strings.Join(words, " ")
		switch strings.ToLower(n.Value) {
		case "from":
			froms = append(froms, line)
		case "user":
			users = append(users, line)
		case "run":
			runs = append(runs, line)
		case "entrypoint":
			entry = words
		case "arg":
			args = append(args, line)
		}
	}
	if len(froms) != 2 || !strings.HasSuffix(froms[0], " AS build") || !strings.HasPrefix(froms[1], "gcr.io/distroless/static") {
		t.Errorf("stages: %v, want a build stage and a distroless static one", froms)
	}
	if len(users) != 1 || strings.HasPrefix(users[0], "0") || strings.HasPrefix(users[0], "root") {
		t.Errorf("USER %v, want one non-root user", users)
	}
	if !slices.Equal(entry, []string{"/usr/local/bin/dfp2p"}) {
		t.Errorf("ENTRYPOINT %v", entry)
	}
	// The Makefile's build line and LDFLAGS.
	mk, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	ld := regexp.MustCompile(`(?m)^LDFLAGS\s*:=\s*(.*)$`).FindSubmatch(mk)
	build := regexp.MustCompile(`(?m)^\t\$\(GO\) build (.*) -o \$\(BIN\) (\S+)$`).FindSubmatch(mk)
	if ld == nil || build == nil {
		t.Fatal("Makefile: no LDFLAGS or build line")
	}
	wantBuild := strings.ReplaceAll(string(build[1]), "$(LDFLAGS)", strings.ReplaceAll(string(ld[1]), "$(VERSION)", "${VERSION}"))
	found := false
	for _, r := range runs {
		if strings.Contains(r, "go build") {
			found = true
			if !strings.Contains(r, "CGO_ENABLED=0 go build "+wantBuild+" -o ") || !strings.Contains(r, " "+string(build[2])) {
				t.Errorf("Dockerfile build %q does not match the Makefile's %q (+ CGO_ENABLED=0)", r, wantBuild)
			}
		}
	}
	if !found {
		t.Error("no go build in the Dockerfile")
	}
	gomod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	gov := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(gomod)
	if gov == nil || !slices.Contains(args, "GO_VERSION="+string(gov[1])) {
		t.Errorf("ARG GO_VERSION %v does not match go.mod's go %s", args, gov[1])
	}
	// The build context leaves out what the image must not contain.
	ign, err := os.ReadFile("../Dockerfile.dockerignore")
	if err != nil || !bytes.Contains(ign, []byte(".git\n")) {
		t.Errorf("Dockerfile.dockerignore: %v", err)
	}
}

// The systemd units pass `systemd-analyze verify` (with the unit's binary
// path pointed at the test's build) and carry the hardening; their flags
// exist.
func TestSystemdUnits(t *testing.T) {
	for _, role := range []string{"daemon", "tracker"} {
		t.Run(role, func(t *testing.T) {
			unit := "dfp2p-" + role + ".service"
			b, err := os.ReadFile("../systemd/" + unit)
			if err != nil {
				t.Fatal(err)
			}
			keys := map[string][]string{}
			for _, l := range strings.Split(string(b), "\n") {
				if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
					keys[k] = append(keys[k], v)
				}
			}
			dataDir := "/var/lib/dfp2p/" + role
			for k, want := range map[string]string{
				"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ReadWritePaths": dataDir,
				"Restart": "on-failure", "LimitNOFILE": "1048576", "RestartPreventExitStatus": "2",
			} {
				if !slices.Contains(keys[k], want) {
					t.Errorf("%s: %s=%v, want %s", unit, k, keys[k], want)
				}
			}
			for _, k := range []string{"ExecStart", "ExecStartPre"} {
				if len(keys[k]) != 1 {
					t.Fatalf("%s: %s %v", unit, k, keys[k])
				}
				args := strings.Fields(keys[k][0])
				if args[0] != "/usr/local/bin/dfp2p" {
					t.Errorf("%s: %s runs %s", unit, k, args[0])
				}
				checkArgs(t, unit+" "+k, args[1:])
			}
			if !strings.Contains(keys["ExecStart"][0], "--data-dir "+dataDir) {
				t.Errorf("%s: ExecStart does not use %s", unit, dataDir)
			}
			sa, err := exec.LookPath("systemd-analyze")
			if err != nil {
				t.Skip("systemd-analyze not installed (make deps installs systemd)")
			}
			dir := t.TempDir()
			local := strings.ReplaceAll(string(b), "/usr/local/bin/dfp2p", bin)
			if err := os.WriteFile(filepath.Join(dir, unit), []byte(local), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(sa, "verify", filepath.Join(dir, unit)).CombinedOutput()
			if err != nil || len(bytes.TrimSpace(out)) > 0 {
				t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
			}
		})
	}
	// The sysctl drop-in sets what node.CheckUDPBuffers asks for.
	b, err := os.ReadFile("../systemd/60-dfp2p.conf")
	if err != nil || !bytes.Contains(b, []byte("net.core.rmem_max = 7500000")) || !bytes.Contains(b, []byte("net.core.wmem_max = 7500000")) {
		t.Errorf("60-dfp2p.conf: %v\n%s", err, b)
	}
}
