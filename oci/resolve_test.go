package oci

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func fakeDigest(s string) string { return digestOf([]byte(s)) }

// fakeRegistry serves one repository's manifests by tag and digest, behind
// a bearer-token challenge when token is set (the token server checks the
// Basic account user:pass when user is set).
type fakeRegistry struct {
	srv       *httptest.Server
	manifests map[string][]byte // reference -> body
	types     map[string]string // reference -> media type
	token     string
	user      string
	tokenHits atomic.Int32
	lastScope atomic.Value
}

func newFakeRegistry(t *testing.T) *fakeRegistry {
	f := &fakeRegistry{manifests: map[string][]byte{}, types: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		f.tokenHits.Add(1)
		f.lastScope.Store(r.URL.Query().Get("scope"))
		if f.user != "" {
			u, p, ok := r.BasicAuth()
			if !ok || u != f.user || p != "pw" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
		}
		if r.URL.Query().Get("service") != "test-registry" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"token": f.token})
	})
	mux.HandleFunc("/v2/", func(w http.ResponseWriter, r *http.Request) {
		if f.token != "" && r.Header.Get("Authorization") != "Bearer "+f.token {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="test-registry",scope="repository:team/app:pull"`, f.srv.URL))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		ref := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
		if !strings.HasPrefix(r.URL.Path, "/v2/team/app/manifests/") {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		b, ok := f.manifests[ref]
		if !ok {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`))
			return
		}
		w.Header().Set("Content-Type", f.types[ref])
		w.Write(b)
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeRegistry) put(tag, mediaType string, v any) string {
	b, _ := json.Marshal(v)
	d := digestOf(b)
	f.manifests[d], f.types[d] = b, mediaType
	if tag != "" {
		f.manifests[tag], f.types[tag] = b, mediaType
	}
	return d
}

func (f *fakeRegistry) resolver(t *testing.T, opts ...Option) *Resolver {
	host := strings.TrimPrefix(f.srv.URL, "http://")
	r, err := NewResolver(append([]Option{WithRegistry(host, f.srv.URL), WithTimeout(5 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func (f *fakeRegistry) ref(t *testing.T, s string) Ref {
	r, err := ParseRef(strings.TrimPrefix(f.srv.URL, "http://") + "/team/app" + s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type image struct {
	manifest string
	config   string
	layers   []string
}

// multiArch stores two platform manifests (one OCI, one Docker schema 2)
// and an index (OCI or a Docker list) tagged "v1".
func multiArch(f *fakeRegistry, dockerList bool) (amd64, arm64 image, index string) {
	mk := func(arch, mt string) image {
		img := image{config: fakeDigest("config-" + arch), layers: []string{fakeDigest("l1-" + arch), fakeDigest("l2-" + arch)}}
		m := map[string]any{"schemaVersion": 2, "mediaType": mt,
			"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": img.config, "size": 100},
			"layers": []map[string]any{{"mediaType": "x", "digest": img.layers[0], "size": 1000}, {"mediaType": "x", "digest": img.layers[1], "size": 2000}}}
		img.manifest = f.put("", mt, m)
		return img
	}
	amd64 = mk("amd64", MediaTypeOCIManifest)
	arm64 = mk("arm64", MediaTypeDockerSchema2)
	entry := func(img image, mt, arch, variant string) map[string]any {
		p := map[string]any{"os": "linux", "architecture": arch}
		if variant != "" {
			p["variant"] = variant
		}
		return map[string]any{"mediaType": mt, "digest": img.manifest, "size": len(f.manifests[img.manifest]), "platform": p}
	}
	mt := MediaTypeOCIIndex
	if dockerList {
		mt = MediaTypeDockerList
	}
	index = f.put("v1", mt, map[string]any{"schemaVersion": 2, "mediaType": mt, "manifests": []any{
		entry(arm64, MediaTypeDockerSchema2, "arm64", "v8"), entry(amd64, MediaTypeOCIManifest, "amd64", "")}})
	return amd64, arm64, index
}

func blobDigests(img *Image) []string {
	var out []string
	for _, b := range img.Blobs() {
		out = append(out, b.Digest)
	}
	return out
}

// An OCI index behind a bearer-token challenge resolves to the default
// platform's config and layers, with blob URLs and the token to read them.
func TestResolveIndexWithToken(t *testing.T) {
	for _, dockerList := range []bool{false, true} {
		t.Run(fmt.Sprint("dockerList=", dockerList), func(t *testing.T) {
			f := newFakeRegistry(t)
			f.token = "tok-123"
			amd64, arm64, index := multiArch(f, dockerList)
			r := f.resolver(t)
			img, err := r.Resolve(context.Background(), f.ref(t, ":v1"), DefaultPlatform)
			if err != nil {
				t.Fatal(err)
			}
			want := append([]string{amd64.config}, amd64.layers...)
			if got := blobDigests(img); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("blobs %v, want %v", got, want)
			}
			if img.ManifestDigest != amd64.manifest || img.IndexDigest != index {
				t.Fatalf("manifest %s index %s", img.ManifestDigest, img.IndexDigest)
			}
			if img.Header.Get("Authorization") != "Bearer tok-123" {
				t.Fatalf("auth header %q", img.Header.Get("Authorization"))
			}
			if got := img.Layers[0].URL; got != f.srv.URL+"/v2/team/app/blobs/"+amd64.layers[0] {
				t.Fatalf("blob URL %s", got)
			}
			if img.Layers[1].Size != 2000 {
				t.Fatalf("size %d", img.Layers[1].Size)
			}
			if s, _ := f.lastScope.Load().(string); s != "repository:team/app:pull" {
				t.Fatalf("token scope %q", s)
			}
			// Another platform, Docker schema 2 manifest, with variant.
			img, err = r.Resolve(context.Background(), f.ref(t, ":v1"), Platform{OS: "linux", Architecture: "arm64", Variant: "v8"})
			if err != nil {
				t.Fatal(err)
			}
			if img.Config.Digest != arm64.config || len(img.Layers) != 2 {
				t.Fatalf("arm64: %+v", img)
			}
			_, err = r.Resolve(context.Background(), f.ref(t, ":v1"), Platform{OS: "windows", Architecture: "amd64"})
			if err == nil || !strings.Contains(err.Error(), "no image for platform windows/amd64") {
				t.Fatalf("missing platform: %v", err)
			}
		})
	}
}

// A reference by digest is checked: the registry must serve exactly the
// bytes named; a manifest (not an index) resolves directly.
func TestResolveByDigest(t *testing.T) {
	f := newFakeRegistry(t)
	amd64, _, index := multiArch(f, false)
	r := f.resolver(t)
	img, err := r.Resolve(context.Background(), f.ref(t, "@"+amd64.manifest), DefaultPlatform)
	if err != nil {
		t.Fatal(err)
	}
	if img.ManifestDigest != amd64.manifest || img.IndexDigest != "" || len(img.Layers) != 2 {
		t.Fatalf("%+v", img)
	}
	if _, err := r.Resolve(context.Background(), f.ref(t, ":v1@"+index), DefaultPlatform); err != nil {
		t.Fatal(err)
	}
	// The registry lies: the bytes under a digest are other bytes.
	f.manifests[index] = f.manifests[amd64.manifest]
	_, err = r.Resolve(context.Background(), f.ref(t, "@"+index), DefaultPlatform)
	if err == nil || !strings.Contains(err.Error(), "not the one asked for") {
		t.Fatalf("tampered manifest: %v", err)
	}
	// A child manifest that does not match the index.
	f2 := newFakeRegistry(t)
	a, _, _ := multiArch(f2, false)
	f2.manifests[a.manifest] = []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"` + a.config + `","size":1},"layers":[]}`)
	if _, err := f2.resolver(t).Resolve(context.Background(), f2.ref(t, ":v1"), DefaultPlatform); err == nil || !strings.Contains(err.Error(), "does not match the index") {
		t.Fatalf("tampered child: %v", err)
	}
}

// Errors are one clear line: unknown tags keep the registry's status and
// message, oversized manifests and bad token answers are refused.
func TestResolveErrors(t *testing.T) {
	f := newFakeRegistry(t)
	multiArch(f, false)
	r := f.resolver(t)
	_, err := r.Resolve(context.Background(), f.ref(t, ":nope"), DefaultPlatform)
	var se *StatusError
	if !asStatus(err, &se) || se.Code != 404 || !strings.Contains(err.Error(), "MANIFEST_UNKNOWN") {
		t.Fatalf("unknown tag: %v", err)
	}
	small := f.resolver(t, WithMaxManifestSize(100))
	if _, err := small.Resolve(context.Background(), f.ref(t, ":v1"), DefaultPlatform); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("oversized manifest: %v", err)
	}
	// Credentials are needed by the token server and not configured.
	f.token, f.user = "t", "alice"
	if _, err := r.Resolve(context.Background(), f.ref(t, ":v1"), DefaultPlatform); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("token without credentials: %v", err)
	}
	withCreds := f.resolver(t, WithCredentials(map[string]Credential{strings.TrimPrefix(f.srv.URL, "http://"): {Username: "alice", Password: "pw"}}))
	if _, err := withCreds.Resolve(context.Background(), f.ref(t, ":v1"), DefaultPlatform); err != nil {
		t.Fatalf("token with credentials: %v", err)
	}
	// A registry that never answers is cut off by the timeout.
	stall := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer stall.Close()
	sr, _ := NewResolver(WithRegistry(strings.TrimPrefix(stall.URL, "http://"), stall.URL), WithTimeout(200*time.Millisecond))
	defer sr.Close()
	ref, _ := ParseRef(strings.TrimPrefix(stall.URL, "http://") + "/a/b:c")
	start := time.Now()
	if _, err := sr.Resolve(context.Background(), ref, DefaultPlatform); err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("stalled registry: %v after %s", err, time.Since(start))
	}
}

func asStatus(err error, se **StatusError) bool {
	for err != nil {
		if s, ok := err.(*StatusError); ok {
			*se = s
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

func TestParseRef(t *testing.T) {
	d := fakeDigest("x")
	for in, want := range map[string]string{
		"alpine":                          "docker.io/library/alpine:latest",
		"alpine:3.20":                     "docker.io/library/alpine:3.20",
		"docker.io/team/app":              "docker.io/team/app:latest",
		"index.docker.io/library/busybox": "docker.io/library/busybox:latest",
		"localhost/app:1":                 "localhost/app:1",
		"127.0.0.1:5000/team/app:v1":      "127.0.0.1:5000/team/app:v1",
		"ghcr.io/o/r@" + d:                "ghcr.io/o/r@" + d,
		"reg.local:5000/o/r:t@" + d:       "reg.local:5000/o/r:t@" + d,
	} {
		r, err := ParseRef(in)
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if r.String() != want {
			t.Errorf("%s: got %s, want %s", in, r, want)
		}
	}
	for _, bad := range []string{"", "http://x/y", "UPPER/case", "a@sha256:12", "a:b:c", "reg:5000/", "a/../b", "x@md5:abc"} {
		if _, err := ParseRef(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if p, err := ParsePlatform("linux/arm64/v8"); err != nil || p.String() != "linux/arm64/v8" {
		t.Errorf("platform %v %v", p, err)
	}
	for _, bad := range []string{"linux", "a/b/c/d", "linux/AMD64"} {
		if _, err := ParsePlatform(bad); err == nil {
			t.Errorf("platform %q accepted", bad)
		}
	}
}

func TestParseChallenge(t *testing.T) {
	s, p := ParseChallenge(`Bearer realm="https://auth.example/token",service="reg, inc",scope="repository:a/b:pull,push"`)
	if s != "Bearer" || p["realm"] != "https://auth.example/token" || p["service"] != "reg, inc" || p["scope"] != "repository:a/b:pull,push" {
		t.Fatalf("%s %v", s, p)
	}
	s, p = ParseChallenge(`Basic realm=registry`)
	if s != "Basic" || p["realm"] != "registry" {
		t.Fatalf("%s %v", s, p)
	}
}

func TestLoadCredentials(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "auth.json")
	os.WriteFile(path, []byte(`{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"},"reg.local:5000":{"username":"a","password":"b"}}}`), 0o600)
	c, err := LoadCredentials(path)
	if err != nil {
		t.Fatal(err)
	}
	if c["docker.io"] != (Credential{"user", "pass"}) || c["reg.local:5000"] != (Credential{"a", "b"}) {
		t.Fatalf("%+v", c)
	}
	os.Chmod(path, 0o644)
	if _, err := LoadCredentials(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable file: %v", err)
	}
}
