package oci

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Ref is a parsed image reference: REGISTRY/REPOSITORY[:TAG][@DIGEST].
type Ref struct {
	Registry   string // host[:port], lower case; "docker.io" for Docker Hub
	Repository string // path inside the registry ("library/alpine")
	Tag        string // "" when only a digest is given
	Digest     string // "sha256:HEX" or ""
}

// DefaultRegistry is the registry of references that name none.
const DefaultRegistry = "docker.io"

var (
	componentRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$`)
	tagRE       = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
	sha256RE    = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)
	hostRE      = regexp.MustCompile(`^(?:\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?)(?::[0-9]{1,5})?$`)
)

// ParseRef parses an image reference the way docker and containerd do: a
// first component with a '.' or ':' or equal to "localhost" is the
// registry, otherwise it is Docker Hub (and a one-component name gets
// "library/"); no tag and no digest means ":latest". Only sha256 digests are
// accepted (dfp2p's task IDs are sha256).
func ParseRef(s string) (Ref, error) {
	in := s
	if len(s) > 512 || s == "" {
		return Ref{}, fmt.Errorf("invalid image reference %q: empty or too long", trunc(in))
	}
	if strings.Contains(s, "://") {
		return Ref{}, fmt.Errorf("invalid image reference %q: a URL is not an image reference", trunc(in))
	}
	var r Ref
	if name, dg, ok := strings.Cut(s, "@"); ok {
		if !sha256RE.MatchString(dg) {
			return Ref{}, fmt.Errorf("invalid image reference %q: digest must be sha256:<64 lower-case hex>", trunc(in))
		}
		r.Digest, s = dg, name
	}
	// A tag is after the last ':' that follows the last '/'.
	if i := strings.LastIndexByte(s, ':'); i > strings.LastIndexByte(s, '/') {
		r.Tag, s = s[i+1:], s[:i]
		if !tagRE.MatchString(r.Tag) {
			return Ref{}, fmt.Errorf("invalid image reference %q: bad tag %q", trunc(in), r.Tag)
		}
	}
	first, rest, hasSlash := strings.Cut(s, "/")
	if hasSlash && (strings.ContainsAny(first, ".:") || first == "localhost" || strings.HasPrefix(first, "[")) {
		if !hostRE.MatchString(first) {
			return Ref{}, fmt.Errorf("invalid image reference %q: bad registry %q", trunc(in), first)
		}
		r.Registry, s = strings.ToLower(first), rest
	} else {
		r.Registry = DefaultRegistry
	}
	switch r.Registry {
	case "index.docker.io", "registry-1.docker.io":
		r.Registry = DefaultRegistry
	}
	if r.Registry == DefaultRegistry && !strings.Contains(s, "/") {
		s = "library/" + s
	}
	if s == "" || len(s) > 255 {
		return Ref{}, fmt.Errorf("invalid image reference %q: missing or too long repository", trunc(in))
	}
	for c := range strings.SplitSeq(s, "/") {
		if !componentRE.MatchString(c) {
			return Ref{}, fmt.Errorf("invalid image reference %q: bad repository component %q (lower case, digits, . _ -)", trunc(in), c)
		}
	}
	r.Repository = s
	if r.Tag == "" && r.Digest == "" {
		r.Tag = "latest"
	}
	return r, nil
}

// Reference is what the manifest is fetched by: the digest when given,
// else the tag.
func (r Ref) Reference() string {
	if r.Digest != "" {
		return r.Digest
	}
	return r.Tag
}

// String is the reference in its full form.
func (r Ref) String() string {
	s := r.Registry + "/" + r.Repository
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// Platform selects one image of an index.
type Platform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant,omitempty"`
}

// DefaultPlatform is linux/amd64.
var DefaultPlatform = Platform{OS: "linux", Architecture: "amd64"}

// ParsePlatform parses "os/arch[/variant]"; "" is DefaultPlatform.
func ParsePlatform(s string) (Platform, error) {
	if s == "" {
		return DefaultPlatform, nil
	}
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return Platform{}, fmt.Errorf("invalid platform %q: want os/arch[/variant]", trunc(s))
	}
	for _, p := range parts {
		if !componentRE.MatchString(p) || len(p) > 32 {
			return Platform{}, fmt.Errorf("invalid platform %q: want os/arch[/variant]", trunc(s))
		}
	}
	p := Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

func (p Platform) String() string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// matches reports whether an index entry's platform is p. A p without a
// variant accepts any variant.
func (p Platform) matches(q *Platform) bool {
	if q == nil {
		return false
	}
	return q.OS == p.OS && q.Architecture == p.Architecture && (p.Variant == "" || q.Variant == p.Variant)
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}

// parseBase parses a registry's base URL (scheme://host[:port][/prefix]).
func parseBase(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(strings.TrimSpace(raw), "/"))
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("registry base URL %q: scheme must be http or https", raw)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("registry base URL %q: want scheme://host[:port][/prefix]", raw)
	}
	return u, nil
}
