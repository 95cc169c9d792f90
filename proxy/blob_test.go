package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// blobSetup is a registry holding one blob, a fetcher holding it too, and a
// proxy in front; url is the blob's mirror URL.
type blobSetup struct {
	up   *fakeRegistry
	f    *fakeFetcher
	p    *Proxy
	c    *http.Client
	blob []byte
	d    string
	url  string
}

func newBlobSetup(t *testing.T, blob []byte) *blobSetup {
	t.Helper()
	up := newFakeRegistry(t, false)
	d := up.addBlob("library/app", blob)
	f := newFakeFetcher(blob)
	p := startProxy(t, Config{Fetcher: f, Registries: map[string]string{"docker.io": up.URL}})
	return &blobSetup{up: up, f: f, p: p, c: testClient(t), blob: blob, d: d,
		url: "http://" + p.Addr() + "/v2/library/app/blobs/" + d + "?ns=docker.io"}
}

func TestBlobThroughFetcher(t *testing.T) {
	blob := bytes.Repeat([]byte("0123456789abcdef"), 100_000) // 1.6 MB: several copy chunks
	s := newBlobSetup(t, blob)
	r := do(t, s.c, "GET", s.url, map[string]string{"Authorization": "Bearer tok", "Range": ""})
	if r.err != nil || r.status != 200 || !bytes.Equal(r.body, blob) {
		t.Fatalf("GET blob: %d err=%v len=%d", r.status, r.err, len(r.body))
	}
	h := r.header
	if h.Get("Content-Length") != itoa(len(blob)) || h.Get("Content-Type") != "application/octet-stream" ||
		h.Get("Docker-Content-Digest") != s.d || h.Get("Accept-Ranges") != "bytes" {
		t.Fatalf("headers: %v", h)
	}
	if s.f.calls.Load() != 1 {
		t.Fatalf("fetcher calls %d", s.f.calls.Load())
	}
	req := s.f.lastReq()
	if req.Digest != s.d || req.URL != s.up.URL+"/v2/library/app/blobs/"+s.d || req.Header.Get("Authorization") != "Bearer tok" {
		t.Fatalf("fetch request: %+v", req)
	}
	if req.Header.Get("Via") != "" || req.Header.Get("Accept-Encoding") != "" {
		t.Fatalf("fetch request carries proxy/negotiation headers: %v", req.Header)
	}
	// The registry got the authorization HEAD, never a GET for the body.
	for _, ur := range s.up.requests() {
		if ur.Method != "HEAD" {
			t.Fatalf("registry saw %s %s", ur.Method, ur.URL)
		}
	}
	if st := s.p.Stats(); st.BlobsServed != 1 || st.BlobBytes != int64(len(blob)) || st.AuthChecks != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestBlobRange(t *testing.T) {
	blob := []byte("0123456789")
	s := newBlobSetup(t, blob)
	for _, tc := range []struct {
		rng    string
		status int
		body   string
		cr     string
	}{
		{"bytes=2-5", 206, "2345", "bytes 2-5/10"},
		{"bytes=7-", 206, "789", "bytes 7-9/10"},
		{"bytes=-3", 206, "789", "bytes 7-9/10"},
		{"bytes=-30", 206, "0123456789", "bytes 0-9/10"},
		{"bytes=8-100", 206, "89", "bytes 8-9/10"},
		{"bytes=0-0", 206, "0", "bytes 0-0/10"},
		{"bytes=0-1,4-5", 200, "0123456789", ""}, // several ranges: the whole blob
		{"items=0-1", 200, "0123456789", ""},     // other unit: ignored
		{"bytes=10-", 416, "", "bytes */10"},
		{"bytes=20-30", 416, "", "bytes */10"},
		{"bytes=5-2", 416, "", "bytes */10"},
		{"bytes=-0", 416, "", "bytes */10"},
		{"bytes=x-y", 416, "", "bytes */10"},
	} {
		r := do(t, s.c, "GET", s.url, map[string]string{"Range": tc.rng})
		if r.status != tc.status || r.header.Get("Content-Range") != tc.cr {
			t.Errorf("%s: %d %q, want %d %q", tc.rng, r.status, r.header.Get("Content-Range"), tc.status, tc.cr)
			continue
		}
		if tc.status != 416 && (string(r.body) != tc.body || r.header.Get("Content-Length") != itoa(len(tc.body))) {
			t.Errorf("%s: body %q (len %s), want %q", tc.rng, r.body, r.header.Get("Content-Length"), tc.body)
		}
	}
	// Range never reaches the fetcher: it always streams from 0.
	if s.f.lastReq().Header.Get("Range") != "" {
		t.Fatal("Range header passed to the fetcher")
	}
}

func TestBlobFetcherError(t *testing.T) {
	s := newBlobSetup(t, []byte("x"))
	s.f.set(func(f *fakeFetcher) { f.err = &statusErr{http.StatusNotFound, "origin says 404"} })
	r := do(t, s.c, "GET", s.url, nil)
	var body ociError
	if r.status != 404 || json.Unmarshal(r.body, &body) != nil || len(body.Errors) != 1 || body.Errors[0].Code != "BLOB_UNKNOWN" {
		t.Fatalf("fetcher 404: %d %s", r.status, r.body)
	}
	if r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("error content type %q", r.header.Get("Content-Type"))
	}
	s.f.set(func(f *fakeFetcher) { f.err = &statusErr{http.StatusForbidden, "origin says no"} })
	if r := do(t, s.c, "GET", s.url, nil); r.status != 403 || !strings.Contains(string(r.body), "DENIED") {
		t.Fatalf("fetcher 403: %d %s", r.status, r.body)
	}
	s.f.set(func(f *fakeFetcher) { f.err = errors.New("no peers, no origin") })
	if r := do(t, s.c, "GET", s.url, nil); r.status != 502 {
		t.Fatalf("plain fetcher error: %d %s", r.status, r.body)
	}
}

// A stream that fails after headers went out must not look like success.
func TestBlobStreamFailures(t *testing.T) {
	blob := bytes.Repeat([]byte("abcdefgh"), 128<<10) // 1 MiB
	for name, set := range map[string]func(*fakeFetcher){
		"mid-way":         func(f *fakeFetcher) { f.failAfter = 600 << 10 },
		"final check":     func(f *fakeFetcher) { f.failAtEOF = true },
		"longer than len": func(f *fakeFetcher) { f.extra = true },
	} {
		t.Run(name, func(t *testing.T) {
			s := newBlobSetup(t, blob)
			s.f.set(set)
			resp, err := s.c.Get(s.url)
			if err != nil {
				return // cut before headers: an error too
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err == nil {
				t.Fatalf("client saw success: status %d, %d of %d bytes", resp.StatusCode, len(b), len(blob))
			}
			if int64(len(b)) >= int64(len(blob)) {
				t.Fatalf("client got all %d bytes despite the failure", len(b))
			}
			waitFor(t, func() bool { return s.p.Stats().BlobsAborted == 1 })
		})
	}
	// A stream failing before any byte went out answers with a status: here
	// the whole blob fits in one read, and its final check fails.
	s := newBlobSetup(t, []byte("tiny"))
	s.f.set(func(f *fakeFetcher) { f.failAtEOF = true })
	r := do(t, s.c, "GET", s.url, nil)
	if r.status != 502 || r.err != nil {
		t.Fatalf("failure before the first byte: %d %v", r.status, r.err)
	}
}

func TestEmptyBlob(t *testing.T) {
	s := newBlobSetup(t, []byte{})
	r := do(t, s.c, "GET", s.url, nil)
	if r.status != 200 || len(r.body) != 0 || r.header.Get("Content-Length") != "0" {
		t.Fatalf("empty blob: %d %v", r.status, r.header)
	}
	if r := do(t, s.c, "GET", s.url, map[string]string{"Range": "bytes=0-"}); r.status != 416 {
		t.Fatalf("range on an empty blob: %d", r.status)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestParseRange(t *testing.T) {
	for _, tc := range []struct {
		h          string
		size       int64
		start, end int64
		partial    bool
		err        bool
	}{
		{"", 10, 0, 9, false, false},
		{"bytes=0-", 10, 0, 9, true, false},
		{"bytes = 3 - 4", 10, 3, 4, true, false},
		{"BYTES=3-4", 10, 3, 4, true, false},
		{"bytes=-5", 3, 0, 2, true, false},
		{"bytes=9223372036854775807-", 10, 0, 0, false, true},
		{"bytes=99999999999999999999-", 10, 0, 0, false, true},
		{"bytes=+1-2", 10, 0, 0, false, true},
		{"bytes=1", 10, 0, 0, false, true},
		{"garbage", 10, 0, 0, false, true},
		{"bytes=0-0", 0, 0, 0, false, true},
	} {
		s, e, p, err := parseRange(tc.h, tc.size)
		if (err != nil) != tc.err || (err == nil && (s != tc.start || e != tc.end || p != tc.partial)) {
			t.Errorf("parseRange(%q, %d) = %d %d %v %v", tc.h, tc.size, s, e, p, err)
		}
	}
}
