package proxy

import (
	"strings"
	"testing"
)

func FuzzParsePath(f *testing.F) {
	d := "sha256:" + strings.Repeat("0f", 32)
	for _, s := range []string{
		"/v2/", "/v2", "/v2/_catalog", "/v2/library/alpine/manifests/latest", "/v2/a/b/c/manifests/" + d,
		"/v2/a/blobs/" + d, "/v2/a/tags/list", "/v2/a/referrers/" + d, "/v2/a/blobs/uploads/", "/v2/a/blobs/uploads/x",
		"/v2/../x", "/v2/a/../../manifests/x", "/v2//manifests/x", "/v2/a/manifests/", "/v2/manifests/x",
		"/v2/a\x00/manifests/x", "/v2/a/blobs/sha256:", "/v2/a/blobs/blobs/blobs/" + d, "/v3/", "", "/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		rt, err := parsePath(p)
		if err != nil {
			if _, ok := err.(*pathError); !ok {
				t.Fatalf("error of type %T", err)
			}
			return
		}
		switch rt.kind {
		case routeBase, routeCatalog, routeUpload:
			return
		}
		if len(p) > maxPathLen {
			t.Fatal("overlong path accepted")
		}
		for seg := range strings.SplitSeq(rt.name, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("bad name %q accepted", rt.name)
			}
		}
		if strings.ContainsAny(rt.name+rt.ref, "?#%\\ \x00") {
			t.Fatalf("unsafe bytes accepted: %q %q", rt.name, rt.ref)
		}
		if rt.kind == routeBlob && !sha256DigestRE.MatchString(rt.ref) {
			t.Fatalf("blob digest %q accepted", rt.ref)
		}
		// The canonical path parses back to the same route.
		again, err := parsePath(rt.path())
		if err != nil || again != rt {
			t.Fatalf("round trip %q -> %q: %+v %v", p, rt.path(), again, err)
		}
	})
}

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"", "bytes=0-", "bytes=1-2", "bytes=-5", "bytes=5-1", "bytes=0-1,2-3", "items=1-2", "bytes=-", "bytes=--1"} {
		f.Add(s, int64(10))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			size = -size
		}
		if size < 0 {
			return
		}
		start, end, partial, err := parseRange(h, size)
		if err != nil {
			return
		}
		if !partial {
			if start != 0 || end != size-1 {
				t.Fatalf("full answer %d-%d for size %d", start, end, size)
			}
			return
		}
		if start < 0 || end < start || end >= size {
			t.Fatalf("parseRange(%q, %d) = %d-%d", h, size, start, end)
		}
	})
}
