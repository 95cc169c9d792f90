package limit

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dfp2p/dfp2p/crypto"
	"github.com/dfp2p/dfp2p/internal/httpapi"
)

// serve runs the limits API of s behind auth on loopback.
func serve(t *testing.T, s *Set, auth *httpapi.Auth) string {
	t.Helper()
	mux := http.NewServeMux()
	s.Mount(mux, auth, nil)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func put(t *testing.T, url, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, url+Path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAPIGetPut(t *testing.T) {
	s := NewSet(Rates{Download: 10 << 20})
	url := serve(t, s, nil)
	c := &Client{Base: strings.TrimPrefix(url, "http://")}
	ctx := context.Background()
	r, err := c.Get(ctx)
	if err != nil || r != (Rates{Download: 10 << 20}) {
		t.Fatalf("get: %+v, %v", r, err)
	}
	// A subset changes only what it names; numbers and strings both work.
	code, body := put(t, url, "", `{"upload": "800Mbit", "origin": 1048576}`)
	if code != 200 || !strings.Contains(body, `"upload": 100000000`) {
		t.Fatalf("put: %d %s", code, body)
	}
	if got := s.Rates(); got != (Rates{Download: 10 << 20, Upload: 100_000_000, Origin: 1 << 20}) {
		t.Fatalf("rates after put: %+v", got)
	}
	if s.Upload.Rate() != 100_000_000 {
		t.Fatalf("the upload limiter was not changed: %d", s.Upload.Rate())
	}
	zero := Rate(0)
	r, err = c.Put(ctx, Update{Download: &zero})
	if err != nil || r != (Rates{Upload: 100_000_000, Origin: 1 << 20}) {
		t.Fatalf("client put: %+v, %v", r, err)
	}
	for _, bad := range []string{``, `{}`, `{"download": -1}`, `{"download": "fast"}`, `{"download": 1.5}`,
		`{"downlaod": 5}`, `{"download": "10 MiB"}`, `[1]`, `{"upload": 1} {"upload": 2}`, `{"origin": 2e6}`,
		`{"origin": "` + strings.Repeat("9", 5000) + `"}`} {
		code, body := put(t, url, "", bad)
		if code != http.StatusBadRequest && code != http.StatusRequestEntityTooLarge {
			t.Errorf("put %.40q: %d %s, want 400", bad, code, body)
		}
		if strings.Count(strings.TrimSpace(body), "\n") > 2 {
			t.Errorf("put %.40q: error is not one line: %s", bad, body)
		}
	}
	if got := s.Rates(); got != (Rates{Upload: 100_000_000, Origin: 1 << 20}) {
		t.Fatalf("bad requests changed the rates: %+v", got)
	}
	_, err = c.Put(ctx, Update{})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 400 {
		t.Fatalf("empty update: %v", err)
	}
}

// GET needs read (loopback gets it without a token), PUT needs admin.
func TestAPIScopes(t *testing.T) {
	ca, err := crypto.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	auth, err := httpapi.NewAuth(ca.Public(), "")
	if err != nil {
		t.Fatal(err)
	}
	s := NewSet(Rates{})
	url := serve(t, s, auth)
	tok := func(sc crypto.Scope) string {
		s, err := ca.IssueToken([]crypto.Scope{sc}, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ctx := context.Background()
	if _, err := (&Client{Base: url}).Get(ctx); err != nil {
		t.Fatalf("loopback get without a token: %v", err)
	}
	for _, c := range []struct {
		token string
		want  int
	}{{"", 401}, {"garbage", 401}, {tok(crypto.ScopeRead), 403}, {tok(crypto.ScopePreheat), 403}, {tok(crypto.ScopeAdmin), 200}} {
		if code, body := put(t, url, c.token, `{"download": "1MiB"}`); code != c.want {
			t.Errorf("put with token %.10q: %d %s, want %d", c.token, code, body, c.want)
		}
	}
	r, err := (&Client{Base: url, Token: tok(crypto.ScopeAdmin)}).Put(ctx, Update{Origin: new(Rate(5))})
	if err != nil || r.Origin != 5 || r.Download != 1<<20 {
		t.Fatalf("admin put: %+v, %v", r, err)
	}
}

func TestClientBadBase(t *testing.T) {
	for _, b := range []string{"", "ftp://x", "http://", "http://h:1/path"} {
		if _, err := (&Client{Base: b}).Get(context.Background()); err == nil {
			t.Errorf("base %q accepted", b)
		}
	}
}
