package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// routeKind is what a /v2/ path asks for.
type routeKind int

const (
	routeBase      routeKind = iota + 1 // /v2/
	routeCatalog                        // /v2/_catalog
	routeManifest                       // /v2/NAME/manifests/REF
	routeBlob                           // /v2/NAME/blobs/DIGEST
	routeTags                           // /v2/NAME/tags/list
	routeReferrers                      // /v2/NAME/referrers/DIGEST
	routeUpload                         // /v2/NAME/blobs/uploads/... (push side)
)

// route is a parsed registry API path.
type route struct {
	kind routeKind
	name string // repository name, e.g. "library/alpine"
	ref  string // tag or digest (manifests), digest (blobs, referrers)
}

// path rebuilds the canonical API path of r (only from validated parts).
func (r route) path() string {
	switch r.kind {
	case routeCatalog:
		return "/v2/_catalog"
	case routeManifest:
		return "/v2/" + r.name + "/manifests/" + r.ref
	case routeBlob:
		return "/v2/" + r.name + "/blobs/" + r.ref
	case routeTags:
		return "/v2/" + r.name + "/tags/list"
	case routeReferrers:
		return "/v2/" + r.name + "/referrers/" + r.ref
	}
	return "/v2/"
}

// pathError is a request the proxy refuses itself, with its OCI error code.
type pathError struct {
	status int
	code   string
	msg    string
}

func (e *pathError) Error() string { return e.msg }

func badPath(code, format string, a ...any) *pathError {
	return &pathError{status: http.StatusBadRequest, code: code, msg: fmt.Sprintf(format, a...)}
}

var (
	// A name component: alphanumerics separated by single separators
	// (., _, __, -+), as in the OCI distribution spec, also accepting upper
	// case. "." and ".." cannot match.
	nameComponentRE = regexp.MustCompile(`^[a-zA-Z0-9]+(?:(?:\.|_|__|-+)[a-zA-Z0-9]+)*$`)
	tagRE           = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
	digestRE        = regexp.MustCompile(`^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$`)
	sha256DigestRE  = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)
	// A registry name from ?ns= or Config: host or [IPv6], optional port.
	registryRE = regexp.MustCompile(`^(?:\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?)(?::[0-9]{1,5})?$`)
)

const maxNameLen = 255

// checkPathChars refuses overlong paths, control characters and non-ASCII.
func checkPathChars(p string) error {
	if len(p) > maxPathLen {
		return badPath("NAME_INVALID", "path longer than %d bytes", maxPathLen)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x21 || c >= 0x7f {
			return badPath("NAME_INVALID", "path contains a control, space or non-ASCII byte")
		}
	}
	return nil
}

// validDigest checks a digest's grammar; sha256 digests must be 64 lower-case hex.
func validDigest(d string) bool {
	if strings.HasPrefix(d, "sha256:") {
		return sha256DigestRE.MatchString(d)
	}
	return len(d) <= 256 && digestRE.MatchString(d)
}

// parsePath parses a registry API path (already URL-decoded). It never
// panics; every refusal is a *pathError.
func parsePath(p string) (route, error) {
	if err := checkPathChars(p); err != nil {
		return route{}, err
	}
	if p == "/v2" || p == "/v2/" {
		return route{kind: routeBase}, nil
	}
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return route{}, &pathError{status: http.StatusNotFound, code: "NAME_UNKNOWN", msg: "not a registry API path (want /v2/...)"}
	}
	if rest == "_catalog" {
		return route{kind: routeCatalog}, nil
	}
	segs := strings.Split(rest, "/")
	// Push endpoints, before the strict checks (they end in "/").
	for i := 1; i+1 < len(segs); i++ {
		if segs[i] == "blobs" && segs[i+1] == "uploads" {
			return route{kind: routeUpload}, nil
		}
	}
	for _, s := range segs {
		if s == "" || s == "." || s == ".." {
			return route{}, badPath("NAME_INVALID", "empty, '.' or '..' path segment")
		}
	}
	n := len(segs)
	var rt route
	switch {
	case n >= 3 && segs[n-2] == "tags" && segs[n-1] == "list":
		rt = route{kind: routeTags, name: strings.Join(segs[:n-2], "/")}
	case n >= 3 && segs[n-2] == "manifests":
		rt = route{kind: routeManifest, name: strings.Join(segs[:n-2], "/"), ref: segs[n-1]}
		if strings.Contains(rt.ref, ":") {
			if !validDigest(rt.ref) {
				return route{}, badPath("DIGEST_INVALID", "invalid manifest digest")
			}
		} else if !tagRE.MatchString(rt.ref) {
			return route{}, badPath("TAG_INVALID", "invalid tag")
		}
	case n >= 3 && segs[n-2] == "blobs":
		rt = route{kind: routeBlob, name: strings.Join(segs[:n-2], "/"), ref: segs[n-1]}
		if !sha256DigestRE.MatchString(rt.ref) {
			return route{}, badPath("DIGEST_INVALID", "blob digest must be sha256:<64 lower-case hex>")
		}
	case n >= 3 && segs[n-2] == "referrers":
		rt = route{kind: routeReferrers, name: strings.Join(segs[:n-2], "/"), ref: segs[n-1]}
		if !validDigest(rt.ref) {
			return route{}, badPath("DIGEST_INVALID", "invalid referrers digest")
		}
	default:
		return route{}, &pathError{status: http.StatusNotFound, code: "NAME_UNKNOWN", msg: "unknown registry API path"}
	}
	if err := checkName(rt.name); err != nil {
		return route{}, err
	}
	return rt, nil
}

func checkName(name string) error {
	if len(name) > maxNameLen {
		return badPath("NAME_INVALID", "repository name longer than %d bytes", maxNameLen)
	}
	for c := range strings.SplitSeq(name, "/") {
		if !nameComponentRE.MatchString(c) {
			return badPath("NAME_INVALID", "invalid repository name")
		}
	}
	return nil
}

// normRegistry validates and lower-cases a registry name (host[:port]).
func normRegistry(name string) (string, bool) {
	name = strings.ToLower(strings.TrimSpace(name))
	if name == "" || len(name) > 255 || !registryRE.MatchString(name) {
		return "", false
	}
	return name, true
}

// parseBase parses a registry's base URL.
func parseBase(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(strings.TrimSpace(raw), "/"))
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("base URL %q: scheme must be http or https", raw)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("base URL %q: want scheme://host[:port][/prefix]", raw)
	}
	return u, nil
}

var dockerHub = &url.URL{Scheme: "https", Host: "registry-1.docker.io"}

// upstreamFor picks the upstream base URL for a request's registry: ns (the
// ?ns= value) or the default registry, through Config.Registries.
func (p *Proxy) upstreamFor(ns string) (string, *url.URL, error) {
	name := p.defaultReg
	if ns != "" {
		n, ok := normRegistry(ns)
		if !ok {
			return "", nil, badPath("NAME_INVALID", "invalid ns registry name")
		}
		name = n
	}
	if u, ok := p.registries[name]; ok {
		return name, u, nil
	}
	switch name {
	case "docker.io", "index.docker.io", "registry-1.docker.io":
		return name, dockerHub, nil
	}
	return name, &url.URL{Scheme: "https", Host: name}, nil
}

// handleMirror serves /v2/... requests addressed to the proxy itself.
func (p *Proxy) handleMirror(w http.ResponseWriter, r *http.Request) {
	if err := checkPathChars(r.URL.Path); err != nil {
		p.refuse(w, r, err)
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/v2") {
		p.refuse(w, r, &pathError{status: http.StatusNotFound, code: "NAME_UNKNOWN", msg: "not a registry API path (want /v2/...)"})
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		p.refuse(w, r, &pathError{status: http.StatusMethodNotAllowed, code: "UNSUPPORTED",
			msg: "dfp2p is a pull-only registry mirror: " + r.Method + " is not supported; push to the registry directly"})
		return
	}
	rt, err := parsePath(r.URL.Path)
	if err != nil {
		p.refuse(w, r, err)
		return
	}
	if rt.kind == routeUpload {
		w.Header().Set("Allow", "GET, HEAD")
		p.refuse(w, r, &pathError{status: http.StatusMethodNotAllowed, code: "UNSUPPORTED",
			msg: "dfp2p is a pull-only registry mirror: blob uploads are not supported; push to the registry directly"})
		return
	}
	q := r.URL.Query()
	ns := q.Get("ns")
	q.Del("ns")
	reg, base, err := p.upstreamFor(ns)
	if err != nil {
		p.refuse(w, r, err)
		return
	}
	target := *base
	target.Path = strings.TrimRight(base.Path, "/") + rt.path()
	target.RawPath = ""
	if rt.kind == routeBlob && r.Method == http.MethodGet {
		p.serveBlob(w, r, blobTarget{registry: reg, url: target.String(), digest: rt.ref})
		return
	}
	target.RawQuery = q.Encode()
	p.passthrough(w, r, &target, nil)
}

// refuse answers a request the proxy rejects itself.
func (p *Proxy) refuse(w http.ResponseWriter, r *http.Request, err error) {
	p.n.badRequests.Add(1)
	note(r, outcomeRefused)
	var pe *pathError
	if !errors.As(err, &pe) {
		pe = &pathError{status: http.StatusBadRequest, code: "UNSUPPORTED", msg: err.Error()}
	}
	p.log.Debug("refused request", "method", r.Method, "path", truncate(r.URL.Path, 256), "status", pe.status, "err", pe.msg)
	writeOCIError(w, pe.status, pe.code, pe.msg)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
