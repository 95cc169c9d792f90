package ui

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// outside matches any reference to another host: http://, https:// and
// protocol-relative //host (a "//" followed by a host character; comments
// in the script are written "// text").
var outside = regexp.MustCompile(`(?i)(https?:)?//[a-z0-9\[]`)

func TestNoOutsideReferences(t *testing.T) {
	n := 0
	err := fs.WalkDir(files, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		switch path.Ext(p) {
		case ".html", ".css", ".js":
		case ".png":
			return nil // binary, referenced only from index.html
		default:
			t.Errorf("%s: unexpected file type; extend this test to scan it", p)
			return nil
		}
		for i, line := range strings.Split(string(b), "\n") {
			if m := outside.FindString(line); m != "" {
				t.Errorf("%s:%d: reference to another host (%q): %s", p, i+1, m, strings.TrimSpace(line))
			}
			if strings.Contains(strings.ToLower(line), "@import") {
				t.Errorf("%s:%d: @import", p, i+1)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 4 {
		t.Fatalf("scanned %d files, want the page, script, style and icon", n)
	}
	// The scanner itself catches what it must.
	for _, bad := range []string{`<script src="https://cdn.example/x.js">`, `url(//fonts.example/f.woff)`, `fetch("http://10.0.0.1/")`, `src="//[::1]/x"`} {
		if !outside.MatchString(bad) {
			t.Errorf("scanner misses %s", bad)
		}
	}
	for _, ok := range []string{`// comment`, `"/api/v1/tasks"`, `url(#arrow)`} {
		if outside.MatchString(ok) {
			t.Errorf("scanner flags %s", ok)
		}
	}
}

func TestHandler(t *testing.T) {
	mux := http.NewServeMux()
	Register(mux)
	mux.HandleFunc("GET /api/v1/x", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "api") })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	tests := []struct {
		path     string
		status   int
		ctype    string
		contains string
	}{
		{"/", 200, "text/html", `<script src="/ui/app.js"`},
		{"/ui/app.js", 200, "text/javascript", "/api/v1/overview"},
		{"/ui/style.css", 200, "text/css", "--origin"},
		{"/ui/favicon.png", 200, "image/png", "PNG"},
		{"/ui/", 404, "", ""},
		{"/ui/index.html", 404, "", ""},
		{"/ui/missing.js", 404, "", ""},
		{"/nothing", 404, "", ""},
		{"/api/v1/x", 200, "", "api"},
	}
	for _, tt := range tests {
		resp, err := http.Get(srv.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("GET %s: %d, want %d", tt.path, resp.StatusCode, tt.status)
			continue
		}
		if tt.ctype != "" && !strings.HasPrefix(resp.Header.Get("Content-Type"), tt.ctype) {
			t.Errorf("GET %s: Content-Type %q, want %s", tt.path, resp.Header.Get("Content-Type"), tt.ctype)
		}
		if !strings.Contains(string(b), tt.contains) {
			t.Errorf("GET %s: body lacks %q", tt.path, tt.contains)
		}
		if strings.HasPrefix(tt.path, "/api/") || tt.path == "/nothing" { // not the dashboard's
			continue
		}
		h := resp.Header
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("GET %s: Content-Security-Policy %q", tt.path, csp)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("GET %s: headers %v", tt.path, h)
		}
	}
}
