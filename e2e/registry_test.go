package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dfp2p/dfp2p/daemon"
	"github.com/dfp2p/dfp2p/e2e/cluster"
)

// The registry tests run a real distribution registry (`docker-registry`),
// real containerd 1.6 instances pulling through each daemon's registry mirror
// (hosts.toml), and images pushed with skopeo. `make deps` installs them.

// requireImageTools fails (never skips) when a tool the registry tests need is
// missing, with the install hint.
func requireImageTools(t *testing.T) {
	t.Helper()
	for _, tool := range []struct{ bin, pkg string }{
		{"docker-registry", "docker-registry"}, {"containerd", "containerd"}, {"ctr", "containerd"},
		{"skopeo", "skopeo"}, {"htpasswd", "apache2-utils"},
	} {
		if _, err := exec.LookPath(tool.bin); err != nil {
			t.Fatalf("%s not found: install the Debian package %s (`make deps` runs scripts/deps.sh, which installs docker-registry containerd skopeo apache2-utils)", tool.bin, tool.pkg)
		}
	}
	if os.Geteuid() != 0 {
		t.Fatalf("containerd needs root (mounts, chown); run the e2e tests as root, as `make test` in CI does")
	}
}

// testImage returns a generated image, built once per test binary run: the
// layout lives beside the dfp2p binary, in the dir TestMain removes.
func testImage(t *testing.T, spec cluster.ImageSpec) *cluster.Image {
	t.Helper()
	start := time.Now()
	img, err := cluster.BuildImage(filepath.Join(filepath.Dir(bin), "images"), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image %s: %d layers, %d bytes (%s)", digestPrefix(img.Manifest.Digest), len(img.Layers), img.TotalSize(), time.Since(start).Round(time.Millisecond))
	return img
}

// registry starts a registry whose logs land beside the cluster's (dumped on
// failure) and pushes img to it as repo:v1.
func (e *env) registry(mode cluster.RegistryAuth, img *cluster.Image, repo string) *cluster.Registry {
	e.t.Helper()
	r, err := cluster.StartRegistry(cluster.RegistryConfig{Dir: filepath.Join(e.dir, "registry"), LogDir: filepath.Join(e.dir, "cluster"), Auth: mode})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = r.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	if err := img.Push(ctx, r, repo, "v1"); err != nil {
		e.t.Fatal(err)
	}
	e.t.Logf("registry (%s) %s, counting front %s; pushed %s:v1 in %s", mode, r.Host, r.FrontHost, repo, time.Since(start).Round(time.Millisecond))
	r.ResetCounts()
	return r
}

// mirrorDaemons starts n daemons whose registry mirror maps the registry's
// name (its counting front's host:port) to the front.
func (e *env) mirrorDaemons(n int, tr *cluster.Proc, r *cluster.Registry) []*cluster.Proc {
	e.t.Helper()
	var out []*cluster.Proc
	for i := 0; i < n; i++ {
		p, err := e.c.StartDaemon([]*cluster.Proc{tr}, "--proxy-registry", r.FrontHost+"="+r.FrontURL)
		if err != nil {
			e.t.Fatal(err)
		}
		proxyAddr(e.t, p)
		out = append(out, p)
	}
	return out
}

// proxyAddr is a daemon's registry mirror address (DIR/proxy).
func proxyAddr(t *testing.T, p *cluster.Proc) string {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); p.Proxy == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(filepath.Join(p.DataDir, "proxy")); err == nil {
			p.Proxy = strings.TrimSpace(string(b))
		}
	}
	if p.Proxy == "" {
		t.Fatalf("%s runs no registry mirror: %s/proxy was not written; log:\n%s", p.Name, p.DataDir, p.Tail(20))
	}
	return p.Proxy
}

// containerd starts a containerd whose hosts.toml sends pulls of the
// registry's images to the daemon's mirror (falling back to the front).
func (e *env) containerd(name string, d *cluster.Proc, r *cluster.Registry) *cluster.Containerd {
	e.t.Helper()
	c, err := cluster.StartContainerd(filepath.Join(e.dir, name), filepath.Join(e.dir, "cluster"), name)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = c.Close() })
	if err := c.Mirror(r.FrontHost, "http://"+proxyAddr(e.t, d), r.FrontURL); err != nil {
		e.t.Fatal(err)
	}
	return c
}

func digestPrefix(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

// Three hosts, each a daemon with its mirror and a containerd, pull a
// 4-layer 120 MiB image at once: each layer leaves the registry once for the
// cluster, every host unpacks it; a fresh containerd pulling again reads no
// blob byte from the registry.
func TestContainerdPullThroughSwarm(t *testing.T) {
	requireImageTools(t)
	e := newEnv(t)
	img := testImage(t, cluster.ImageSpec{Layers: 4, LayerSize: 30 << 20, Seed: 1})
	reg := e.registry(cluster.AuthNone, img, "e2e/app")
	tr := e.tracker()
	ds := e.mirrorDaemons(3, tr, reg)
	ctrds := make([]*cluster.Containerd, len(ds))
	for i, d := range ds {
		ctrds[i] = e.containerd(fmt.Sprintf("containerd%d", i+1), d, reg)
	}
	t.Logf("snapshotter %s", ctrds[0].Snapshotter)
	ref := reg.FrontHost + "/e2e/app:v1"

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	errs := make([]error, len(ctrds))
	took := make([]time.Duration, len(ctrds))
	var wg sync.WaitGroup
	for i, c := range ctrds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			_, errs[i] = c.Pull(ctx, ref, "")
			took[i] = time.Since(start)
		}()
	}
	wg.Wait()
	t.Logf("registry front after the concurrent pulls:\n%s", reg.CountsString())
	for i, err := range errs {
		if err != nil {
			t.Fatalf("pull on %s through %s: %v", ctrds[i].Name, ds[i].Name, err)
		}
		t.Logf("%s pulled %s through %s in %s", ctrds[i].Name, ref, ds[i].Name, took[i].Round(time.Millisecond))
	}
	for _, c := range ctrds {
		if err := c.CheckUnpacked(ctx, ref, img); err != nil {
			t.Fatal(err)
		}
	}
	// Each host's blobs came through its own daemon: the layer is a complete
	// task there (task ID = the digest's hex).
	var peerBytes, seedBytes int64
	for _, d := range ds {
		var ts []daemon.TaskStatus
		getJSON(t, d.URL()+"/api/v1/tasks", &ts)
		complete := map[string]bool{}
		for _, s := range ts {
			complete["sha256:"+string(s.ID)] = s.Complete
			if s.Stats != nil {
				peerBytes += s.Stats.PeerBytes
				seedBytes += s.Stats.SeedBytes
			}
		}
		for _, l := range img.Layers {
			if !complete[l.Digest] {
				t.Errorf("%s holds no complete task for layer %s: its containerd did not pull the layer through its mirror", d.Name, digestPrefix(l.Digest))
			}
		}
	}
	t.Logf("daemons got %d bytes from peers and %d from the seed", peerBytes, seedBytes)
	for _, l := range img.Layers {
		got := reg.Blob(l.Digest)
		if got.Bytes < l.Size || float64(got.Bytes) > 1.05*float64(l.Size) {
			t.Errorf("layer %s (%d bytes): the registry served %d body bytes in %d GETs, want it read once for the cluster",
				digestPrefix(l.Digest), l.Size, got.Bytes, got.Gets)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// A new containerd (new root, empty content store) on the first host:
	// every blob now comes from the swarm.
	reg.ResetCounts()
	fresh := e.containerd("containerd-fresh", ds[0], reg)
	start := time.Now()
	if _, err := fresh.Pull(ctx, ref, ""); err != nil {
		t.Fatalf("second pull on %s: %v", ds[0].Name, err)
	}
	t.Logf("%s pulled again through %s in %s", fresh.Name, ds[0].Name, time.Since(start).Round(time.Millisecond))
	if err := fresh.CheckUnpacked(ctx, ref, img); err != nil {
		t.Fatal(err)
	}
	if n := reg.BlobBytes(); n != 0 {
		t.Fatalf("the second pull read %d blob bytes from the registry, want 0:\n%s", n, reg.CountsString())
	}
}

// A private image: once daemon A has pulled it with credentials, the layers
// sit in the swarm, yet daemon B's mirror serves a layer only to a client
// the registry itself accepts, and answers others with the registry's 401.
func TestPrivateBlobNeedsCredentials(t *testing.T) {
	requireImageTools(t)
	for _, mode := range []cluster.RegistryAuth{cluster.AuthHtpasswd, cluster.AuthToken} {
		t.Run(mode.String(), func(t *testing.T) {
			e := newEnv(t)
			img := testImage(t, cluster.ImageSpec{Layers: 2, LayerSize: 8 << 20, Seed: 2})
			const repo = "e2e/private"
			reg := e.registry(mode, img, repo)
			tr := e.tracker()
			ds := e.mirrorDaemons(2, tr, reg)
			a, b := ds[0], ds[1]

			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			ca := e.containerd("containerd-a", a, reg)
			ref := reg.FrontHost + "/" + repo + ":v1"
			if _, err := ca.Pull(ctx, ref, reg.Credentials()); err != nil {
				t.Fatalf("pull with credentials through %s: %v", a.Name, err)
			}
			if err := ca.CheckUnpacked(ctx, ref, img); err != nil {
				t.Fatal(err)
			}
			t.Logf("registry front after the pull on %s:\n%s", a.Name, reg.CountsString())

			layer := img.Layers[0]
			path := "/v2/" + repo + "/blobs/" + layer.Digest
			viaB := "http://" + proxyAddr(t, b) + path + "?ns=" + reg.FrontHost
			hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil}}
			defer hc.CloseIdleConnections()

			// The registry's challenge to an anonymous client.
			direct := regDo(t, hc, http.MethodGet, reg.URL+path, nil)
			if direct.status != http.StatusUnauthorized || direct.header.Get("WWW-Authenticate") == "" {
				t.Fatalf("registry answered an anonymous blob GET with %d %q; the test expects 401 with a challenge", direct.status, direct.header.Get("WWW-Authenticate"))
			}
			challenge := direct.header.Get("WWW-Authenticate")
			before := reg.Blob(layer.Digest)

			// refused checks that B's mirror answers a request carrying h
			// exactly as the registry answers it: 401, the same challenge,
			// and no blob byte.
			refused := func(what string, h http.Header) {
				t.Helper()
				for _, method := range []string{http.MethodGet, http.MethodHead} {
					want := regDo(t, hc, method, reg.URL+path, h)
					got := regDo(t, hc, method, viaB, h)
					if want.status != http.StatusUnauthorized {
						t.Fatalf("%s %s: the registry itself answered %d, the test expects 401", what, method, want.status)
					}
					if got.status != http.StatusUnauthorized {
						t.Errorf("%s %s via %s: status %d, want 401; body %q", what, method, b.Name, got.status, trimBody(got.body))
					}
					if wa, ww := got.header.Get("WWW-Authenticate"), want.header.Get("WWW-Authenticate"); wa != ww {
						t.Errorf("%s %s via %s: WWW-Authenticate %q, want the registry's %q", what, method, b.Name, wa, ww)
					}
					if len(got.body) > 4096 || bytes.HasPrefix(got.body, []byte{0x1f, 0x8b}) || got.header.Get("Docker-Content-Digest") == layer.Digest {
						t.Errorf("%s %s via %s: answered with %d body bytes (Docker-Content-Digest %q): blob content leaked",
							what, method, b.Name, len(got.body), got.header.Get("Docker-Content-Digest"))
					}
				}
			}
			refused("anonymous", nil)
			switch mode {
			case cluster.AuthHtpasswd:
				h := http.Header{}
				req, _ := http.NewRequest(http.MethodGet, "/", nil)
				req.SetBasicAuth(reg.User, "wrong-"+reg.Password)
				h.Set("Authorization", req.Header.Get("Authorization"))
				refused("wrong password", h)
			case cluster.AuthToken:
				// An anonymous token is valid but grants no access.
				_, params := cluster.ParseChallenge(challenge)
				anon := &cluster.AuthClient{HTTP: hc}
				tok, err := anon.Token(ctx, params)
				if err != nil {
					t.Fatal(err)
				}
				refused("token without access", http.Header{"Authorization": {"Bearer " + tok}})
			}

			// With credentials: the layer, whole and correct, from the swarm.
			ac := &cluster.AuthClient{HTTP: hc, User: reg.User, Password: reg.Password}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, viaB, nil)
			resp, err := ac.Do(req)
			if err != nil {
				t.Fatalf("GET with credentials via %s: %v", b.Name, err)
			}
			digest, n, err := cluster.BlobSHA256(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("GET with credentials via %s: reading body: %v", b.Name, err)
			}
			if resp.StatusCode != http.StatusOK || digest != layer.Digest || n != layer.Size {
				t.Fatalf("GET with credentials via %s: %s, %d bytes %s; want 200, %d bytes %s", b.Name, resp.Status, n, digest, layer.Size, layer.Digest)
			}
			if after := reg.Blob(layer.Digest); after.Bytes != before.Bytes {
				t.Errorf("%s's GET read %d layer bytes from the registry; the swarm already held the layer", b.Name, after.Bytes-before.Bytes)
			}
			t.Logf("registry front at the end:\n%s", reg.CountsString())
		})
	}
}

// HEAD and ranged GETs of a layer through the mirror answer exactly as the
// registry does.
func TestRangeAndHeadMatchRegistry(t *testing.T) {
	requireImageTools(t)
	e := newEnv(t)
	img := testImage(t, cluster.ImageSpec{Layers: 1, LayerSize: 3 << 20, Seed: 3})
	const repo = "e2e/range"
	reg := e.registry(cluster.AuthNone, img, repo)
	tr := e.tracker()
	d := e.mirrorDaemons(1, tr, reg)[0]
	layer := img.Layers[0]
	path := "/v2/" + repo + "/blobs/" + layer.Digest
	viaProxy := "http://" + proxyAddr(t, d) + path + "?ns=" + reg.FrontHost
	direct := reg.URL + path
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil}}
	defer hc.CloseIdleConnections()

	cases := []struct {
		name, method, rng string
	}{
		{"HEAD", http.MethodHead, ""},
		{"range 100-199", http.MethodGet, "bytes=100-199"},
		{"open-ended range", http.MethodGet, fmt.Sprintf("bytes=%d-", layer.Size-12345)},
		{"range from 0", http.MethodGet, "bytes=0-"},
		{"suffix range", http.MethodGet, "bytes=-777"},
		{"whole blob", http.MethodGet, ""},
		{"HEAD again", http.MethodHead, ""},
	}
	for _, tc := range cases {
		var h http.Header
		if tc.rng != "" {
			h = http.Header{"Range": {tc.rng}}
		}
		want := regDo(t, hc, tc.method, direct, h)
		got := regDo(t, hc, tc.method, viaProxy, h)
		if want.status/100 != 2 {
			t.Fatalf("%s: the registry answered %d", tc.name, want.status)
		}
		if got.status != want.status {
			t.Errorf("%s: status %d via the mirror, %d from the registry; body %q", tc.name, got.status, want.status, trimBody(got.body))
			continue
		}
		for _, k := range []string{"Content-Length", "Content-Range", "Docker-Content-Digest"} {
			if got.header.Get(k) != want.header.Get(k) {
				t.Errorf("%s: %s %q via the mirror, %q from the registry", tc.name, k, got.header.Get(k), want.header.Get(k))
			}
		}
		if !bytes.Equal(got.body, want.body) {
			t.Errorf("%s: body via the mirror (%d bytes, sha256 %s) differs from the registry's (%d bytes, sha256 %s)",
				tc.name, len(got.body), bodySum(got.body), len(want.body), bodySum(want.body))
		}
		t.Logf("%s: %d Content-Length %s Content-Range %q", tc.name, got.status, got.header.Get("Content-Length"), got.header.Get("Content-Range"))
	}
	t.Logf("registry front:\n%s", reg.CountsString())
}

type regAnswer struct {
	status int
	header http.Header
	body   []byte
}

func regDo(t *testing.T, hc *http.Client, method, url string, h http.Header) regAnswer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return regAnswer{status: resp.StatusCode, header: resp.Header, body: body}
}

func bodySum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:8])
}

func trimBody(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}
