// Package httpapi holds the few helpers the tracker's and daemon's HTTP APIs
// share: JSON answers, one-line JSON errors, the health check, bearer-token
// authorization and the listener (optionally TLS).
package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"

	"github.com/dfp2p/dfp2p/crypto"
)

// Pprof mounts Go's profiler under /debug/pprof/, for tokens with the admin
// scope (a nil Auth: everyone). The APIs bind to loopback by default;
// profiles are for operators on the host.
func Pprof(mux *http.ServeMux, a *Auth) {
	mux.HandleFunc("GET /debug/pprof/", a.Require(crypto.ScopeAdmin, pprof.Index))
	mux.HandleFunc("GET /debug/pprof/cmdline", a.Require(crypto.ScopeAdmin, pprof.Cmdline))
	mux.HandleFunc("GET /debug/pprof/profile", a.Require(crypto.ScopeAdmin, pprof.Profile))
	mux.HandleFunc("GET /debug/pprof/symbol", a.Require(crypto.ScopeAdmin, pprof.Symbol))
	mux.HandleFunc("GET /debug/pprof/trace", a.Require(crypto.ScopeAdmin, pprof.Trace))
}

// ErrorBody is the JSON shape of every API error.
type ErrorBody struct {
	Error        string `json:"error"`
	OriginStatus int    `json:"origin_status,omitempty"`
}

// JSON writes v as a JSON answer with the given status.
func JSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Error writes a one-line JSON error.
func Error(w http.ResponseWriter, status int, msg string) {
	JSON(w, status, ErrorBody{Error: msg})
}

// Healthz answers 200 "ok".
func Healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte("ok\n"))
}

// OneLine makes s safe for a one-line message or a header value: control
// characters become spaces and it is cut to max bytes with "...".
func OneLine(s string, max int) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c == 0x7f {
			b[i] = ' '
		}
	}
	if max > 3 && len(b) > max {
		b = append(b[:max-3], "..."...)
	}
	return string(b)
}
