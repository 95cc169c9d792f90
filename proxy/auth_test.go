package proxy

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// The hole this closes: a private layer every peer holds must still not be
// served to a requester the registry would refuse.
func TestAuthCheckGuardsPrivateBlobs(t *testing.T) {
	up := newFakeRegistry(t, false)
	up.user, up.pass = "alice", "secret"
	blob := []byte("private layer")
	d := up.addBlob("corp/secret", blob)
	f := newFakeFetcher(blob) // the swarm holds it
	p := startProxy(t, Config{Fetcher: f, Registries: map[string]string{"private.test": up.URL}})
	now := time.Now()
	var clockMu sync.Mutex
	p.auth.mu.Lock()
	p.auth.now = func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }
	p.auth.mu.Unlock()
	advance := func(d time.Duration) { clockMu.Lock(); now = now.Add(d); clockMu.Unlock() }
	c := testClient(t)
	u := "http://" + p.Addr() + "/v2/corp/secret/blobs/" + d + "?ns=private.test"

	// No credentials: the registry's 401 and challenge, nothing from the swarm.
	r := do(t, c, "GET", u, nil)
	if r.status != 401 || r.header.Get("WWW-Authenticate") != `Basic realm="fake-registry"` {
		t.Fatalf("anonymous: %d %v", r.status, r.header)
	}
	if !strings.Contains(string(r.body), "UNAUTHORIZED") || bytes.Contains(r.body, blob) {
		t.Fatalf("anonymous body: %q", r.body)
	}
	if f.calls.Load() != 0 {
		t.Fatal("fetcher called for a refused requester")
	}

	// Valid credentials: served.
	good := map[string]string{"Authorization": basicAuth("alice", "secret")}
	r = do(t, c, "GET", u, good)
	if r.status != 200 || !bytes.Equal(r.body, blob) {
		t.Fatalf("with credentials: %d %q", r.status, r.body)
	}
	heads := up.heads.Load()
	if heads != 2 || f.calls.Load() != 1 {
		t.Fatalf("heads %d, fetches %d", heads, f.calls.Load())
	}
	if got := up.last().Header.Get("Authorization"); got != good["Authorization"] {
		t.Fatalf("authorization HEAD carried %q", got)
	}

	// Within the TTL the same credential is not checked again.
	advance(10 * time.Second)
	if r = do(t, c, "GET", u, good); r.status != 200 || up.heads.Load() != heads {
		t.Fatalf("cached: %d, heads %d", r.status, up.heads.Load())
	}
	if p.Stats().AuthCacheHits != 1 {
		t.Fatalf("stats %+v", p.Stats())
	}

	// Another credential is checked on its own: no bleed from the cache.
	r = do(t, c, "GET", u, map[string]string{"Authorization": basicAuth("alice", "wrong")})
	if r.status != 401 || up.heads.Load() != heads+1 || f.calls.Load() != 2 {
		t.Fatalf("wrong credential: %d, heads %d, fetches %d", r.status, up.heads.Load(), f.calls.Load())
	}
	// ... also a refused one retried (only positive answers are cached).
	if r = do(t, c, "GET", u, map[string]string{"Authorization": basicAuth("alice", "wrong")}); r.status != 401 || up.heads.Load() != heads+2 {
		t.Fatalf("wrong credential again: %d, heads %d", r.status, up.heads.Load())
	}
	// Another repository with the same digest is another key.
	u2 := strings.Replace(u, "corp/secret", "corp/other", 1)
	if r = do(t, c, "GET", u2, good); r.status != 404 || up.heads.Load() != heads+3 {
		t.Fatalf("other repository: %d, heads %d", r.status, up.heads.Load())
	}

	// After the TTL the registry is asked again; a revoked credential is refused.
	advance(30 * time.Second)
	up.mu.Lock()
	up.pass = "rotated"
	up.mu.Unlock()
	if r = do(t, c, "GET", u, good); r.status != 401 || f.calls.Load() != 2 {
		t.Fatalf("after TTL with a revoked credential: %d, fetches %d", r.status, f.calls.Load())
	}
	if st := p.Stats(); st.AuthDenied != 5 || st.BlobsServed != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestAuthCheckFailsClosed(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	blob := []byte("layer")
	f := newFakeFetcher(blob)
	p := startProxy(t, Config{Fetcher: f, Registries: map[string]string{"gone.test": deadURL}})
	r := do(t, testClient(t), "GET", "http://"+p.Addr()+"/v2/a/b/blobs/"+digestOf(blob)+"?ns=gone.test", nil)
	if r.status != 502 || f.calls.Load() != 0 {
		t.Fatalf("unreachable registry: %d, fetches %d", r.status, f.calls.Load())
	}
}

func TestAuthCheckStatuses(t *testing.T) {
	blob := []byte("layer")
	d := digestOf(blob)
	status := http.StatusOK
	var mu sync.Mutex
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		s := status
		mu.Unlock()
		switch s {
		case http.StatusTemporaryRedirect:
			w.Header().Set("Location", "https://storage.invalid/presigned?sig=x")
		case http.StatusTooManyRequests:
			w.Header().Set("Retry-After", "7")
		}
		w.WriteHeader(s)
	}))
	t.Cleanup(up.Close)
	f := newFakeFetcher(blob)
	p := startProxy(t, Config{Fetcher: f, Registries: map[string]string{"r.test": up.URL}, AuthCacheTTL: time.Nanosecond})
	c := testClient(t)
	u := "http://" + p.Addr() + "/v2/a/blobs/" + d + "?ns=r.test"
	for _, tc := range []struct {
		upstream, want int
		header         string
	}{
		{http.StatusOK, 200, ""},
		{http.StatusTemporaryRedirect, 200, ""}, // a redirect is an authorized answer, not followed
		{http.StatusForbidden, 403, ""},
		{http.StatusNotFound, 404, ""},
		{http.StatusTooManyRequests, 429, "7"},
		{http.StatusServiceUnavailable, 503, ""},
	} {
		mu.Lock()
		status = tc.upstream
		mu.Unlock()
		r := do(t, c, "GET", u, nil)
		if r.status != tc.want || r.header.Get("Retry-After") != tc.header {
			t.Errorf("registry %d: got %d %v", tc.upstream, r.status, r.header)
		}
	}
	if f.calls.Load() != 2 {
		t.Fatalf("fetches %d, want 2", f.calls.Load())
	}
}

func TestAuthKey(t *testing.T) {
	h := func(kv ...string) http.Header {
		out := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			out.Add(kv[i], kv[i+1])
		}
		return out
	}
	a := authKey("u", h("Authorization", "Bearer a"))
	for name, other := range map[string]string{
		"other token": authKey("u", h("Authorization", "Bearer b")),
		"none":        authKey("u", h()),
		"other url":   authKey("v", h("Authorization", "Bearer a")),
		"cookie":      authKey("u", h("Authorization", "Bearer a", "Cookie", "s=1")),
	} {
		if other == a {
			t.Errorf("%s: same key", name)
		}
	}
	if authKey("u", h("Authorization", "Bearer a", "User-Agent", "x")) != a {
		t.Error("non-credential header changed the key")
	}
	if strings.Contains(a, "Bearer") {
		t.Error("credential kept in clear")
	}
}

func TestAuthCacheBounded(t *testing.T) {
	c := newAuthCache(time.Minute)
	for i := range maxAuthEntries + 10 {
		c.put(itoa(i))
	}
	if len(c.m) > maxAuthEntries {
		t.Fatalf("%d entries", len(c.m))
	}
	if !c.ok(itoa(maxAuthEntries + 9)) {
		t.Fatal("latest entry missing")
	}
}
