package ui

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static
var files embed.FS

// static is the embedded files without the "static/" prefix.
var static, _ = fs.Sub(files, "static")

// ContentSecurityPolicy is sent with every file: only this origin's
// scripts, styles, images and API; no framing, plugins, base or form
// targets.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Register adds the dashboard to mux: the page at GET / and its files under
// GET /ui/. Other paths are left to mux (404 when nothing else matches).
func Register(mux *http.ServeMux) {
	h := Handler()
	mux.Handle("GET /{$}", h)
	mux.Handle("GET /ui/", h)
}

// Handler serves the page (for /) and the files under /ui/, with the
// security headers. Directories are not listed.
func Handler() http.Handler {
	fsrv := http.StripPrefix("/ui/", http.FileServerFS(static))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", ContentSecurityPolicy)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-cache")
		switch {
		case r.URL.Path == "/":
			http.ServeFileFS(w, r, static, "index.html")
		case strings.HasPrefix(r.URL.Path, "/ui/") && !strings.HasSuffix(r.URL.Path, "/") && r.URL.Path != "/ui/index.html":
			fsrv.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}
