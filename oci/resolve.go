package oci

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Media types this package understands.
const (
	MediaTypeOCIIndex      = "application/vnd.oci.image.index.v1+json"
	MediaTypeOCIManifest   = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeDockerList    = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerSchema2 = "application/vnd.docker.distribution.manifest.v2+json"
)

var acceptManifests = strings.Join([]string{MediaTypeOCIIndex, MediaTypeOCIManifest, MediaTypeDockerList, MediaTypeDockerSchema2}, ", ")

// Defaults for the bounds on every registry read.
const (
	DefaultMaxManifestSize = 4 << 20 // bytes of one manifest or index
	DefaultTimeout         = 30 * time.Second
	maxTokenSize           = 64 << 10
	maxErrorBody           = 4 << 10
	maxLayers              = 1000
)

// Credential is a registry account for Basic auth or for the token server.
type Credential struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// Resolver resolves image references on registries. It is safe for
// concurrent use.
type Resolver struct {
	hc          *http.Client
	registries  map[string]*url.URL
	creds       map[string]Credential
	maxManifest int64
	timeout     time.Duration
}

// Option configures a Resolver.
type Option func(*Resolver) error

// WithHTTPClient sets the HTTP client (tests, proxies, TLS roots).
func WithHTTPClient(c *http.Client) Option {
	return func(r *Resolver) error { r.hc = c; return nil }
}

// WithRegistry maps a registry name (as in image references, host[:port])
// to its base URL, e.g. "registry.local:5000" -> "http://10.0.0.9:5000".
// Unmapped names are https://NAME; docker.io is https://registry-1.docker.io.
func WithRegistry(name, base string) Option {
	return func(r *Resolver) error {
		u, err := parseBase(base)
		if err != nil {
			return err
		}
		n := strings.ToLower(strings.TrimSpace(name))
		if !hostRE.MatchString(n) {
			return fmt.Errorf("bad registry name %q", name)
		}
		r.registries[n] = u
		return nil
	}
}

// WithCredentials gives accounts per registry name; they are sent only when
// the registry asks (a 401 challenge), to it or to its token realm.
func WithCredentials(c map[string]Credential) Option {
	return func(r *Resolver) error {
		for k, v := range c {
			r.creds[strings.ToLower(k)] = v
		}
		return nil
	}
}

// WithMaxManifestSize bounds one manifest or index (default 4 MiB).
func WithMaxManifestSize(n int64) Option {
	return func(r *Resolver) error { r.maxManifest = n; return nil }
}

// WithTimeout bounds each registry request, body included (default 30 s).
func WithTimeout(d time.Duration) Option {
	return func(r *Resolver) error { r.timeout = d; return nil }
}

// NewResolver returns a Resolver.
func NewResolver(opts ...Option) (*Resolver, error) {
	r := &Resolver{registries: map[string]*url.URL{}, creds: map[string]Credential{},
		maxManifest: DefaultMaxManifestSize, timeout: DefaultTimeout}
	for _, o := range opts {
		if err := o(r); err != nil {
			return nil, err
		}
	}
	if r.hc == nil {
		r.hc = &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment,
			TLSHandshakeTimeout: 10 * time.Second, ResponseHeaderTimeout: r.timeout, MaxIdleConnsPerHost: 4,
			IdleConnTimeout: 30 * time.Second}}
	}
	return r, nil
}

// Close releases idle connections.
func (r *Resolver) Close() { r.hc.CloseIdleConnections() }

// Base is the base URL used for a registry name.
func (r *Resolver) Base(registry string) *url.URL {
	if u, ok := r.registries[registry]; ok {
		c := *u
		return &c
	}
	switch registry {
	case "docker.io", "index.docker.io", "registry-1.docker.io":
		return &url.URL{Scheme: "https", Host: "registry-1.docker.io"}
	}
	return &url.URL{Scheme: "https", Host: registry}
}

// Blob is one blob of an image.
type Blob struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
	// URL is the blob's registry URL (base/v2/REPO/blobs/DIGEST).
	URL string `json:"url"`
}

// Image is a resolved image: one platform's manifest and its blobs.
type Image struct {
	Ref            Ref
	Platform       Platform
	ManifestDigest string // the platform manifest's digest
	IndexDigest    string // the index's digest, when the reference named one
	Config         Blob
	Layers         []Blob
	// Header holds the Authorization that reading the blobs needs (a
	// bearer token or Basic credentials), or nothing for an anonymous
	// registry. It is a secret.
	Header http.Header
}

// Blobs is the config followed by the layers, each digest once.
func (i *Image) Blobs() []Blob {
	seen := map[string]bool{}
	var out []Blob
	for _, b := range append([]Blob{i.Config}, i.Layers...) {
		if b.Digest == "" || seen[b.Digest] {
			continue
		}
		seen[b.Digest] = true
		out = append(out, b)
	}
	return out
}

// StatusError is a registry's non-2xx answer.
type StatusError struct {
	URL     string
	Code    int
	Message string
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("registry answered %d %s for %s", e.Code, http.StatusText(e.Code), e.URL)
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

type descriptor struct {
	MediaType string    `json:"mediaType"`
	Digest    string    `json:"digest"`
	Size      int64     `json:"size"`
	Platform  *Platform `json:"platform,omitempty"`
}

type manifestDoc struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []descriptor `json:"manifests"`
	Config        *descriptor  `json:"config"`
	Layers        []descriptor `json:"layers"`
}

// Resolve fetches ref's manifest (through the index for platform p when the
// reference names an index or manifest list) and returns its blobs. A
// reference by digest, and every child manifest, is checked against its
// digest.
func (r *Resolver) Resolve(ctx context.Context, ref Ref, p Platform) (*Image, error) {
	s := &session{r: r, ref: ref, base: r.Base(ref.Registry)}
	body, mt, dg, err := s.manifest(ctx, ref.Reference())
	if err != nil {
		return nil, err
	}
	if ref.Digest != "" && dg != ref.Digest {
		return nil, fmt.Errorf("manifest of %s has digest %s, not the one asked for", ref, dg)
	}
	img := &Image{Ref: ref, Platform: p}
	doc, err := decodeManifest(body, mt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	if doc.Manifests != nil || isIndex(mt) {
		img.IndexDigest = dg
		var pick *descriptor
		for i := range doc.Manifests {
			if p.matches(doc.Manifests[i].Platform) {
				pick = &doc.Manifests[i]
				break
			}
		}
		if pick == nil {
			var have []string
			for _, m := range doc.Manifests {
				if m.Platform != nil {
					have = append(have, m.Platform.String())
				}
			}
			return nil, fmt.Errorf("%s has no image for platform %s (it has: %s)", ref, p, strings.Join(have, ", "))
		}
		if !sha256RE.MatchString(pick.Digest) {
			return nil, fmt.Errorf("%s: platform %s manifest digest %q is not sha256", ref, p, trunc(pick.Digest))
		}
		body, mt, dg, err = s.manifest(ctx, pick.Digest)
		if err != nil {
			return nil, err
		}
		if dg != pick.Digest || (pick.Size > 0 && int64(len(body)) != pick.Size) {
			return nil, fmt.Errorf("%s: platform %s manifest does not match the index (digest %s, %d bytes)", ref, p, dg, len(body))
		}
		if doc, err = decodeManifest(body, mt); err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
		if doc.Manifests != nil {
			return nil, fmt.Errorf("%s: an index inside an index is not supported", ref)
		}
	}
	img.ManifestDigest = dg
	if doc.Config == nil {
		return nil, fmt.Errorf("%s: manifest has no config (schema 1 manifests are not supported)", ref)
	}
	if len(doc.Layers) > maxLayers {
		return nil, fmt.Errorf("%s: %d layers, more than %d", ref, len(doc.Layers), maxLayers)
	}
	mk := func(d descriptor) (Blob, error) {
		if !sha256RE.MatchString(d.Digest) {
			return Blob{}, fmt.Errorf("%s: blob digest %q is not sha256:<64 hex>", ref, trunc(d.Digest))
		}
		if d.Size < 0 {
			return Blob{}, fmt.Errorf("%s: blob %s has a negative size", ref, d.Digest)
		}
		return Blob{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size, URL: s.url("blobs", d.Digest)}, nil
	}
	if img.Config, err = mk(*doc.Config); err != nil {
		return nil, err
	}
	for _, l := range doc.Layers {
		b, err := mk(l)
		if err != nil {
			return nil, err
		}
		img.Layers = append(img.Layers, b)
	}
	img.Header = http.Header{}
	if s.auth != "" {
		img.Header.Set("Authorization", s.auth)
	}
	return img, nil
}

func isIndex(mt string) bool { return mt == MediaTypeOCIIndex || mt == MediaTypeDockerList }

func decodeManifest(body []byte, mt string) (*manifestDoc, error) {
	var doc manifestDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("manifest is not valid JSON: %v", err)
	}
	if doc.SchemaVersion != 2 {
		return nil, fmt.Errorf("manifest schemaVersion %d is not supported (want 2)", doc.SchemaVersion)
	}
	switch mt {
	case MediaTypeOCIIndex, MediaTypeDockerList:
		if doc.Manifests == nil {
			doc.Manifests = []descriptor{}
		}
	case MediaTypeOCIManifest, MediaTypeDockerSchema2:
		doc.Manifests = nil
	case "", "application/json", "application/octet-stream":
		// Sniff: an index lists manifests, a manifest has a config.
	default:
		return nil, fmt.Errorf("unsupported manifest media type %q", trunc(mt))
	}
	return &doc, nil
}

// session is one resolution: the registry, the repository and the
// credential it earned.
type session struct {
	r    *Resolver
	ref  Ref
	base *url.URL
	auth string // Authorization value, once a challenge was answered
}

func (s *session) url(kind, reference string) string {
	u := *s.base
	u.Path = strings.TrimRight(u.Path, "/") + "/v2/" + s.ref.Repository + "/" + kind + "/" + reference
	return u.String()
}

// manifest GETs a manifest by tag or digest and returns its bytes, media
// type and sha256 digest.
func (s *session) manifest(ctx context.Context, reference string) ([]byte, string, string, error) {
	u := s.url("manifests", reference)
	ctx, cancel := context.WithTimeout(ctx, s.r.timeout)
	defer cancel()
	resp, err := s.get(ctx, u, acceptManifests)
	if err != nil {
		return nil, "", "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", "", statusError(u, resp)
	}
	if resp.ContentLength > s.r.maxManifest {
		return nil, "", "", fmt.Errorf("manifest %s is %d bytes, more than the limit of %d", u, resp.ContentLength, s.r.maxManifest)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, s.r.maxManifest+1))
	if err != nil {
		return nil, "", "", fmt.Errorf("reading manifest %s: %w", u, err)
	}
	if int64(len(body)) > s.r.maxManifest {
		return nil, "", "", fmt.Errorf("manifest %s is larger than the limit of %d bytes", u, s.r.maxManifest)
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	sum := sha256.Sum256(body)
	return body, mt, "sha256:" + hex.EncodeToString(sum[:]), nil
}

// get sends a GET, answering one 401 challenge (Bearer or Basic) and
// retrying once with the credential it earned.
func (s *session) get(ctx context.Context, u, accept string) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", accept)
		req.Header.Set("User-Agent", "dfp2p-preheat")
		if s.auth != "" {
			req.Header.Set("Authorization", s.auth)
		}
		resp, err := s.r.hc.Do(req)
		if err != nil {
			return nil, fmt.Errorf("registry %s: %w", s.ref.Registry, err)
		}
		if resp.StatusCode != http.StatusUnauthorized || attempt > 0 {
			return resp, nil
		}
		challenge := resp.Header.Get("WWW-Authenticate")
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
		if err := s.authorize(ctx, challenge); err != nil {
			return nil, err
		}
	}
}

func (s *session) authorize(ctx context.Context, challenge string) error {
	scheme, params := ParseChallenge(challenge)
	cred, hasCred := s.r.creds[s.ref.Registry]
	switch strings.ToLower(scheme) {
	case "bearer":
		tok, err := s.token(ctx, params, cred, hasCred)
		if err != nil {
			return err
		}
		s.auth = "Bearer " + tok
		return nil
	case "basic":
		if !hasCred {
			return fmt.Errorf("registry %s wants credentials (Basic) and none are configured for it", s.ref.Registry)
		}
		s.auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(cred.Username+":"+cred.Password))
		return nil
	default:
		return fmt.Errorf("registry %s answered 401 with an unsupported challenge %q", s.ref.Registry, trunc(challenge))
	}
}

// token asks the challenge's realm for a pull token.
func (s *session) token(ctx context.Context, params map[string]string, cred Credential, hasCred bool) (string, error) {
	realm, err := url.Parse(params["realm"])
	if err != nil || (realm.Scheme != "https" && realm.Scheme != "http") || realm.Host == "" {
		return "", fmt.Errorf("registry %s: bad token realm %q", s.ref.Registry, trunc(params["realm"]))
	}
	q := realm.Query()
	if v := params["service"]; v != "" {
		q.Set("service", v)
	}
	scope := params["scope"]
	if scope == "" {
		scope = "repository:" + s.ref.Repository + ":pull"
	}
	q.Set("scope", scope)
	realm.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, realm.String(), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("User-Agent", "dfp2p-preheat")
	if hasCred {
		req.SetBasicAuth(cred.Username, cred.Password)
	}
	resp, err := s.r.hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("registry %s token: %w", s.ref.Registry, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		realm.RawQuery = ""
		return "", fmt.Errorf("token for %s: %w", s.ref.Registry, statusError(realm.String(), resp))
	}
	var body struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenSize+1))
	if err != nil {
		return "", fmt.Errorf("registry %s token: %w", s.ref.Registry, err)
	}
	if len(b) > maxTokenSize {
		return "", fmt.Errorf("registry %s token answer larger than %d bytes", s.ref.Registry, maxTokenSize)
	}
	if err := json.Unmarshal(b, &body); err != nil {
		return "", fmt.Errorf("registry %s token answer is not JSON: %v", s.ref.Registry, err)
	}
	tok := body.Token
	if tok == "" {
		tok = body.AccessToken
	}
	if tok == "" || strings.ContainsAny(tok, "\r\n") {
		return "", errors.New("registry " + s.ref.Registry + " token answer holds no usable token")
	}
	return tok, nil
}

func statusError(u string, resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	msg := ""
	var oci struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(b, &oci) == nil && len(oci.Errors) > 0 {
		msg = oci.Errors[0].Code + " " + oci.Errors[0].Message
	}
	return &StatusError{URL: u, Code: resp.StatusCode, Message: oneLine(msg)}
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:197] + "..."
	}
	return s
}

// ParseChallenge splits a WWW-Authenticate value into its scheme and
// parameters (quoted or not).
func ParseChallenge(h string) (string, map[string]string) {
	h = strings.TrimSpace(h)
	scheme, rest, _ := strings.Cut(h, " ")
	params := map[string]string{}
	for rest = strings.TrimSpace(rest); rest != ""; {
		k, v, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		k = strings.ToLower(strings.TrimSpace(k))
		v = strings.TrimLeft(v, " ")
		if strings.HasPrefix(v, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(v) && v[i] != '"'; i++ {
				if v[i] == '\\' && i+1 < len(v) {
					i++
				}
				b.WriteByte(v[i])
			}
			params[k] = b.String()
			rest = v[min(i+1, len(v)):]
		} else {
			val, after, _ := strings.Cut(v, ",")
			params[k] = strings.TrimSpace(val)
			rest = "," + after
			if after == "" {
				rest = ""
			}
		}
		rest = strings.TrimLeft(rest, " ,")
	}
	return scheme, params
}
