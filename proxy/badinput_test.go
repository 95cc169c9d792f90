package proxy

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawRequest sends request text as is and reads one response.
func rawRequest(t *testing.T, addr, method, req string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%q: %v", truncate(req, 80), err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func TestBadInput(t *testing.T) {
	up := newFakeRegistry(t, false)
	f := newFakeFetcher([]byte("x"))
	p := startProxy(t, Config{Fetcher: f, Registries: map[string]string{"docker.io": up.URL}})
	hex64 := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name, method, path string
		extra              string // raw header lines
		status             int
		code               string
	}{
		{"digest not hex", "GET", "/v2/a/blobs/sha256:xyz", "", 400, "DIGEST_INVALID"},
		{"digest upper-case", "GET", "/v2/a/blobs/sha256:" + strings.ToUpper(hex64), "", 400, "DIGEST_INVALID"},
		{"digest short", "GET", "/v2/a/blobs/sha256:" + hex64[:63], "", 400, "DIGEST_INVALID"},
		{"digest sha512", "GET", "/v2/a/blobs/sha512:" + hex64 + hex64, "", 400, "DIGEST_INVALID"},
		{"digest sha512 HEAD", "HEAD", "/v2/a/blobs/sha512:" + hex64 + hex64, "", 400, ""},
		{"manifest digest bad", "GET", "/v2/a/manifests/sha256:zz", "", 400, "DIGEST_INVALID"},
		{"bad tag", "GET", "/v2/a/manifests/-tag", "", 400, "TAG_INVALID"},
		{"traversal", "GET", "/v2/../../etc/passwd", "", 400, "NAME_INVALID"},
		{"traversal in name", "GET", "/v2/a/../b/manifests/latest", "", 400, "NAME_INVALID"},
		{"encoded traversal", "GET", "/v2/a/%2e%2e/b/manifests/latest", "", 400, "NAME_INVALID"},
		{"encoded slash traversal", "GET", "/v2/a/manifests/..%2f..%2fx", "", 400, "NAME_INVALID"},
		{"encoded NUL", "GET", "/v2/a%00b/manifests/latest", "", 400, "NAME_INVALID"},
		{"encoded newline", "GET", "/v2/a%0d%0aX-Evil:1/manifests/latest", "", 400, "NAME_INVALID"},
		{"bad name", "GET", "/v2/a__-b/manifests/latest", "", 400, "NAME_INVALID"},
		{"empty segment", "GET", "/v2/a//b/manifests/latest", "", 400, "NAME_INVALID"},
		{"overlong", "GET", "/v2/" + strings.Repeat("a/", 1100) + "manifests/latest", "", 400, "NAME_INVALID"},
		{"overlong name", "GET", "/v2/" + strings.Repeat("a", 300) + "/manifests/latest", "", 400, "NAME_INVALID"},
		{"unknown api", "GET", "/v2/a/whatever", "", 404, "NAME_UNKNOWN"},
		{"not registry", "GET", "/etc/passwd", "", 404, "NAME_UNKNOWN"},
		{"push manifest", "PUT", "/v2/a/manifests/latest", "Content-Length: 0\r\n", 405, "UNSUPPORTED"},
		{"start upload", "POST", "/v2/a/blobs/uploads/", "Content-Length: 0\r\n", 405, "UNSUPPORTED"},
		{"patch upload", "PATCH", "/v2/a/blobs/uploads/1234", "Content-Length: 0\r\n", 405, "UNSUPPORTED"},
		{"upload status", "GET", "/v2/a/blobs/uploads/1234", "", 405, "UNSUPPORTED"},
		{"delete", "DELETE", "/v2/a/blobs/sha256:" + hex64, "", 405, "UNSUPPORTED"},
		{"options", "OPTIONS", "/v2/", "", 405, "UNSUPPORTED"},
		{"oversized header", "GET", "/v2/", "X-Big: " + strings.Repeat("a", 100<<10) + "\r\n", 431, ""},
		{"control char in path", "GET", "/v2/a\x01b/manifests/latest", "", 400, ""},
		{"bad ns", "GET", "/v2/a/manifests/latest?ns=a%2Fb", "", 400, "NAME_INVALID"},
		{"CONNECT bad target", "CONNECT", "bad_host:x", "", 400, ""},
		{"proxy ftp", "GET", "ftp://example.com/file", "", 400, "UNSUPPORTED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := rawRequest(t, p.Addr(), tc.method, tc.method+" "+tc.path+" HTTP/1.1\r\nHost: "+p.Addr()+"\r\n"+tc.extra+"\r\n")
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tc.status, truncate(body, 200))
			}
			if tc.code != "" {
				var e ociError
				if err := json.Unmarshal([]byte(body), &e); err != nil || len(e.Errors) != 1 || e.Errors[0].Code != tc.code {
					t.Fatalf("body %q, want code %s", truncate(body, 200), tc.code)
				}
			}
			if tc.status == 405 && resp.Header.Get("Allow") != "GET, HEAD" {
				t.Fatalf("405 without Allow: %v", resp.Header)
			}
			// Still serving.
			if r := do(t, testClient(t), "GET", "http://"+p.Addr()+"/v2/", nil); r.status != 200 {
				t.Fatalf("proxy stopped serving: %d", r.status)
			}
		})
	}
	if f.calls.Load() != 0 {
		t.Fatal("a bad request reached the fetcher")
	}
	for _, r := range up.requests() {
		if r.URL.Path != "/v2/" {
			t.Fatalf("a bad request reached the registry: %s %s", r.Method, r.URL)
		}
	}
}

// Close while a blob streams (the fetcher blocks): Close returns, the
// client sees an error, nothing leaks (goleak in TestMain).
func TestCloseDuringBlobStream(t *testing.T) {
	blob := make([]byte, 1<<20)
	s := newBlobSetup(t, blob)
	block := make(chan struct{})
	s.f.set(func(f *fakeFetcher) { f.block = block })
	errc := make(chan error, 1)
	go func() {
		resp, err := s.c.Get(s.url)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		errc <- err
	}()
	waitFor(t, func() bool { return s.f.calls.Load() == 1 })
	s.p.grace = 100 * time.Millisecond
	start := time.Now()
	if err := s.p.Close(); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 3*time.Second {
		t.Fatal("Close too slow")
	}
	if err := <-errc; err == nil {
		t.Fatal("client saw success from a stream cut by Close")
	}
	close(block)
}
