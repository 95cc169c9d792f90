package proxy

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestV2PassThrough(t *testing.T) {
	open := newFakeRegistry(t, false)
	private := newFakeRegistry(t, false)
	private.user, private.pass = "alice", "secret"
	p := startProxy(t, Config{Fetcher: newFakeFetcher(), DefaultRegistry: "open.test",
		Registries: map[string]string{"open.test": open.URL, "private.test": private.URL}})
	c := testClient(t)
	base := "http://" + p.Addr()

	r := do(t, c, "GET", base+"/v2/", nil)
	if r.status != 200 || string(r.body) != "{}" || r.header.Get("Docker-Distribution-Api-Version") != "registry/2.0" {
		t.Fatalf("open /v2/: %d %q %v", r.status, r.body, r.header)
	}
	r = do(t, c, "GET", base+"/v2/?ns=private.test", nil)
	if r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") != `Basic realm="fake-registry"` {
		t.Fatalf("private /v2/: want 401 with the registry's challenge, got %d %v", r.status, r.header)
	}
	if !strings.Contains(string(r.body), "UNAUTHORIZED") {
		t.Fatalf("401 body not passed through: %q", r.body)
	}
	if q := private.last().URL.RawQuery; q != "" {
		t.Fatalf("ns not stripped: upstream saw query %q", q)
	}
	r = do(t, c, "HEAD", base+"/v2?ns=private.test", map[string]string{"Authorization": basicAuth("alice", "secret")})
	if r.status != 200 {
		t.Fatalf("HEAD /v2 with credentials: %d", r.status)
	}
}

func basicAuth(u, p string) string {
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth(u, p)
	return req.Header.Get("Authorization")
}

func TestManifestPassThrough(t *testing.T) {
	up := newFakeRegistry(t, false)
	manifest := []byte(`{"schemaVersion":2,"mediaType":"` + manifestType + `"}`)
	up.addManifest("library/alpine", "latest", manifest)
	f := newFakeFetcher()
	p := startProxy(t, Config{Fetcher: f, Registries: map[string]string{"docker.io": up.URL}})
	c := testClient(t)
	u := "http://" + p.Addr() + "/v2/library/alpine/manifests/latest?ns=docker.io"
	hdr := map[string]string{
		"Accept":        manifestType + ", application/vnd.oci.image.index.v1+json",
		"Authorization": "Bearer token123",
		"Connection":    "X-Hop",
		"X-Hop":         "must not be forwarded",
		"User-Agent":    "containerd/2.0",
	}
	r := do(t, c, "GET", u, hdr)
	if r.status != 200 || string(r.body) != string(manifest) {
		t.Fatalf("GET manifest: %d %q", r.status, r.body)
	}
	if r.header.Get("Content-Type") != manifestType || r.header.Get("Docker-Content-Digest") != digestOf(manifest) {
		t.Fatalf("manifest headers not passed back: %v", r.header)
	}
	got := up.last()
	if got.Header.Get("Accept") != hdr["Accept"] || got.Header.Get("Authorization") != "Bearer token123" ||
		got.Header.Get("User-Agent") != "containerd/2.0" {
		t.Fatalf("request headers not forwarded: %v", got.Header)
	}
	if got.Header.Get("X-Hop") != "" {
		t.Fatal("hop-by-hop header named in Connection was forwarded")
	}
	if got.URL.Path != "/v2/library/alpine/manifests/latest" || got.URL.RawQuery != "" {
		t.Fatalf("upstream saw %s?%s", got.URL.Path, got.URL.RawQuery)
	}

	r = do(t, c, "HEAD", u, hdr)
	if r.status != 200 || len(r.body) != 0 {
		t.Fatalf("HEAD manifest: %d %v", r.status, r.header)
	}
	if r.header.Get("Content-Length") != itoa(len(manifest)) {
		t.Fatalf("HEAD manifest Content-Length %q, want %d", r.header.Get("Content-Length"), len(manifest))
	}
	r = do(t, c, "GET", "http://"+p.Addr()+"/v2/library/alpine/manifests/nope", nil)
	if r.status != 404 || !strings.Contains(string(r.body), "MANIFEST_UNKNOWN") {
		t.Fatalf("missing manifest: %d %q", r.status, r.body)
	}
	if f.calls.Load() != 0 {
		t.Fatal("manifests must not go through the fetcher")
	}
	if s := p.Stats(); s.Forwarded != 3 || s.Requests != 3 {
		t.Fatalf("stats: %+v", s)
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestRegistryRouting(t *testing.T) {
	a := newFakeRegistry(t, false)
	b := newFakeRegistry(t, false)
	p := startProxy(t, Config{Fetcher: newFakeFetcher(), DefaultRegistry: "a.test",
		Registries: map[string]string{"a.test": a.URL, "B.Test:5000": b.URL + "/"}})
	c := testClient(t)
	base := "http://" + p.Addr()

	r := do(t, c, "GET", base+"/v2/team/app/tags/list?n=10&ns=b.test:5000&last=x", nil)
	if r.status != 200 {
		t.Fatalf("tags via ns: %d %s", r.status, r.body)
	}
	got := b.last()
	if got == nil || got.URL.Path != "/v2/team/app/tags/list" || got.URL.Query().Get("ns") != "" ||
		got.URL.Query().Get("n") != "10" || got.URL.Query().Get("last") != "x" {
		t.Fatalf("b saw %v", got.URL)
	}
	if len(a.requests()) != 0 {
		t.Fatal("default registry used although ns named another")
	}
	r = do(t, c, "GET", base+"/v2/team/app/tags/list", nil)
	if r.status != 200 || len(a.requests()) != 1 {
		t.Fatalf("no ns: want the default registry, got %d, a saw %d", r.status, len(a.requests()))
	}

	for _, tc := range []struct{ ns, want string }{
		{"", "a.test " + a.URL},
		{"docker.io", "docker.io https://registry-1.docker.io"},
		{"quay.io", "quay.io https://quay.io"},
		{"Ghcr.IO", "ghcr.io https://ghcr.io"},
		{"10.0.0.5:5000", "10.0.0.5:5000 https://10.0.0.5:5000"},
		{"b.test:5000", "b.test:5000 " + b.URL},
	} {
		name, u, err := p.upstreamFor(tc.ns)
		if err != nil || name+" "+u.String() != tc.want {
			t.Errorf("upstreamFor(%q) = %s %v, %v; want %s", tc.ns, name, u, err, tc.want)
		}
	}
	for _, bad := range []string{"evil.test/path", "user@host", "a b", "-x.test", "host:port"} {
		if _, _, err := p.upstreamFor(bad); err == nil {
			t.Errorf("upstreamFor(%q) accepted", bad)
		}
	}
	r = do(t, c, "GET", base+"/v2/x/manifests/latest?ns=evil.test%2Fpath", nil)
	if r.status != 400 {
		t.Fatalf("bad ns: %d", r.status)
	}
}

func TestBlobHeadForwarded(t *testing.T) {
	up := newFakeRegistry(t, false)
	blob := []byte("layer bytes")
	d := up.addBlob("library/alpine", blob)
	f := newFakeFetcher(blob)
	p := startProxy(t, Config{Fetcher: f, Registries: map[string]string{"docker.io": up.URL}})
	r := do(t, testClient(t), "HEAD", "http://"+p.Addr()+"/v2/library/alpine/blobs/"+d+"?ns=docker.io", nil)
	if r.status != 200 || r.header.Get("Content-Length") != itoa(len(blob)) || r.header.Get("Docker-Content-Digest") != d {
		t.Fatalf("HEAD blob: %d %v", r.status, r.header)
	}
	if f.calls.Load() != 0 {
		t.Fatal("HEAD on a blob must not fetch it")
	}
	if up.last().Method != "HEAD" {
		t.Fatal("HEAD not forwarded")
	}
}

func TestAddrFileAndHealth(t *testing.T) {
	file := filepath.Join(t.TempDir(), "proxy")
	p := startProxy(t, Config{Fetcher: newFakeFetcher(), AddrFile: file})
	b, err := os.ReadFile(file)
	if err != nil || strings.TrimSpace(string(b)) != p.Addr() {
		t.Fatalf("addr file %q, %v; want %s", b, err, p.Addr())
	}
	if r := do(t, testClient(t), "GET", "http://"+p.Addr()+"/healthz", nil); r.status != 200 {
		t.Fatalf("healthz %d", r.status)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no fetcher":           {},
		"bad rule":             {Fetcher: newFakeFetcher(), Rules: []string{"("}},
		"bad cidr":             {Fetcher: newFakeFetcher(), AllowCIDRs: []string{"10.0.0.0/99"}},
		"bad registry url":     {Fetcher: newFakeFetcher(), Registries: map[string]string{"x.test": "ftp://x"}},
		"bad registry name":    {Fetcher: newFakeFetcher(), Registries: map[string]string{"x/y": "http://x"}},
		"intercept without CA": {Fetcher: newFakeFetcher(), InterceptHosts: []string{"x.test"}},
		"bad default registry": {Fetcher: newFakeFetcher(), DefaultRegistry: "a/b"},
		"bad listen address":   {Fetcher: newFakeFetcher(), Addr: "256.0.0.1:1"},
	} {
		if p, err := New(cfg); err == nil {
			p.Close()
			t.Errorf("%s: accepted", name)
		}
	}
}
