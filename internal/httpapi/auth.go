package httpapi

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dfp2p/dfp2p/crypto"
	"github.com/dfp2p/dfp2p/internal/fsutil"
)

// Auth checks the bearer tokens of API requests: tokens signed by the
// cluster CA (crypto.ParseToken, with their scopes) and, optionally, the
// process's local token (every scope), which it writes to DIR/api-token for
// the host's own administrators. Requests from loopback without a token get
// the read scope: the host's own clients (dfp2p get, the registry mirror's
// users, a local Prometheus) are trusted as the host is; preheat and admin
// actions always need a token, and so does everything from other addresses.
// A nil *Auth allows everything: an open cluster.
type Auth struct {
	ca    ed25519.PublicKey
	local string
}

// LocalTokenFile is the name of the local token file in a data dir.
const LocalTokenFile = "api-token"

// NewAuth returns an Auth for the cluster CA ca. With dataDir set it also
// creates (or reads) the local token DIR/api-token, mode 0600, so that only
// the process's user and root can use it.
func NewAuth(ca ed25519.PublicKey, dataDir string) (*Auth, error) {
	a := &Auth{ca: ca}
	if dataDir == "" {
		return a, nil
	}
	path := filepath.Join(dataDir, LocalTokenFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil && len(strings.TrimSpace(string(b))) >= 32:
		a.local = strings.TrimSpace(string(b))
		return a, nil
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	a.local = "dfp2p-local." + base64.RawURLEncoding.EncodeToString(raw)
	if err := fsutil.WriteFileAtomic(path, []byte(a.local+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("writing the local API token: %w", err)
	}
	return a, nil
}

// Require wraps h: the request needs a bearer token allowing scope. A
// missing or invalid token gets 401, a token without the scope 403.
func (a *Auth) Require(scope crypto.Scope, h http.HandlerFunc) http.HandlerFunc {
	if a == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		tok = strings.TrimSpace(tok)
		if !ok || tok == "" {
			if scope == crypto.ScopeRead && loopback(r.RemoteAddr) {
				h(w, r)
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="dfp2p"`)
			Error(w, http.StatusUnauthorized, "missing bearer token")
			return
		}
		if a.local != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(a.local)) == 1 {
			h(w, r)
			return
		}
		t, err := crypto.ParseToken(tok, a.ca, time.Now())
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="dfp2p", error="invalid_token"`)
			Error(w, http.StatusUnauthorized, "invalid token: "+OneLine(err.Error(), 200))
			return
		}
		if !t.Allows(scope) {
			Error(w, http.StatusForbidden, fmt.Sprintf("token lacks scope %q", scope))
			return
		}
		h(w, r)
	}
}

func loopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// RequireHandler is Require for an http.Handler.
func (a *Auth) RequireHandler(scope crypto.Scope, h http.Handler) http.Handler {
	return a.Require(scope, h.ServeHTTP)
}
