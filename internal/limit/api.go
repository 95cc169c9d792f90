package limit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dfp2p/dfp2p/crypto"
	"github.com/dfp2p/dfp2p/internal/httpapi"
)

// Path is the API path of the limits.
const Path = "/api/v1/limits"

// maxBody bounds a PUT body and an answer read by Client.
const maxBody = 4 << 10

// defaultClientTimeout bounds a Client call without its own http.Client.
const defaultClientTimeout = 10 * time.Second

// Rate is one limit in a PUT body: a JSON number of bytes per second, or a
// string ParseRate accepts ("50MiB", "800Mbit", "0").
type Rate int64

// UnmarshalJSON accepts a non-negative integer or a rate string.
func (r *Rate) UnmarshalJSON(b []byte) error {
	var v int64
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		p, err := ParseRate(s)
		if err != nil {
			return err
		}
		v = p
	} else {
		n, err := strconv.ParseInt(string(b), 10, 64)
		if err != nil || n < 0 || n > MaxRate {
			return fmt.Errorf("invalid rate %s: want bytes per second (an integer from 0 to %d) or a string such as \"100MiB\"", b, int64(MaxRate))
		}
		v = n
	}
	*r = Rate(v)
	return nil
}

// Update is the body of PUT /api/v1/limits: the limits to change; absent
// (or null) ones keep their value.
type Update struct {
	Download *Rate `json:"download,omitempty"`
	Upload   *Rate `json:"upload,omitempty"`
	Origin   *Rate `json:"origin,omitempty"`
}

func (u Update) empty() bool { return u.Download == nil && u.Upload == nil && u.Origin == nil }

// Apply returns r with u's limits in place.
func (u Update) Apply(r Rates) Rates {
	for _, f := range []struct {
		v   *Rate
		dst *int64
	}{{u.Download, &r.Download}, {u.Upload, &r.Upload}, {u.Origin, &r.Origin}} {
		if f.v != nil {
			*f.dst = int64(*f.v)
		}
	}
	return r
}

// Handlers serves GET and PUT /api/v1/limits for a Set.
type Handlers struct {
	s   *Set
	log *slog.Logger
	mu  sync.Mutex // one PUT at a time: read, change, answer
}

// Mount adds GET /api/v1/limits (scope read) and PUT /api/v1/limits (scope
// admin) for s to mux. PUT logs each change to log (nil: no log).
func (s *Set) Mount(mux *http.ServeMux, a *httpapi.Auth, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Handlers{s: s, log: log}
	mux.HandleFunc("GET "+Path, a.Require(crypto.ScopeRead, h.get))
	mux.HandleFunc("PUT "+Path, a.Require(crypto.ScopeAdmin, h.put))
}

func (h *Handlers) get(w http.ResponseWriter, _ *http.Request) {
	httpapi.JSON(w, http.StatusOK, h.s.Rates())
}

func (h *Handlers) put(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		httpapi.Error(w, http.StatusBadRequest, "reading the body: "+httpapi.OneLine(err.Error(), 200))
		return
	}
	if len(body) > maxBody {
		httpapi.Error(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", maxBody))
		return
	}
	var u Update
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&u); err != nil {
		httpapi.Error(w, http.StatusBadRequest, "bad limits: "+httpapi.OneLine(err.Error(), 300))
		return
	}
	if dec.More() {
		httpapi.Error(w, http.StatusBadRequest, "bad limits: more than one JSON value")
		return
	}
	if u.empty() {
		httpapi.Error(w, http.StatusBadRequest, "bad limits: give at least one of download, upload, origin")
		return
	}
	h.mu.Lock()
	old := h.s.Rates()
	nr := u.Apply(old)
	h.s.SetRates(nr)
	h.mu.Unlock()
	h.log.Info("rate limits changed", "download", FormatRate(nr.Download), "upload", FormatRate(nr.Upload),
		"origin", FormatRate(nr.Origin), "remote", r.RemoteAddr)
	httpapi.JSON(w, http.StatusOK, nr)
}

// Client reads and changes the limits of a daemon or tracker over its API.
type Client struct {
	// Base is the API's http(s)://HOST:PORT (a bare HOST:PORT means http).
	Base string
	// Token is the bearer token (PUT needs the admin scope; GET from
	// loopback needs none).
	Token string
	// HTTP is the client to use (nil: one with a 10 s timeout).
	HTTP *http.Client
}

// Get returns the current limits.
func (c *Client) Get(ctx context.Context) (Rates, error) {
	return c.do(ctx, http.MethodGet, nil)
}

// Put changes the limits in u and returns the new ones.
func (c *Client) Put(ctx context.Context, u Update) (Rates, error) {
	b, err := json.Marshal(u)
	if err != nil {
		return Rates{}, err
	}
	return c.do(ctx, http.MethodPut, b)
}

// BaseURL checks and normalizes an API address.
func BaseURL(s string) (string, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || (u.Path != "" && u.Path != "/") {
		return "", fmt.Errorf("invalid API address %q: want http://HOST:PORT", s)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

func (c *Client) do(ctx context.Context, method string, body []byte) (Rates, error) {
	base, err := BaseURL(c.Base)
	if err != nil {
		return Rates{}, err
	}
	req, err := http.NewRequestWithContext(ctx, method, base+Path, bytes.NewReader(body))
	if err != nil {
		return Rates{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: defaultClientTimeout, Transport: &http.Transport{Proxy: nil}}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Rates{}, fmt.Errorf("cannot reach %s: %w", base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return Rates{}, fmt.Errorf("reading the answer of %s: %w", base, err)
	}
	if resp.StatusCode != http.StatusOK {
		var eb httpapi.ErrorBody
		if json.Unmarshal(b, &eb) != nil || eb.Error == "" {
			eb.Error = "no error message"
		}
		return Rates{}, &APIError{Status: resp.StatusCode, Msg: httpapi.OneLine(eb.Error, 300)}
	}
	var out Rates
	if len(b) > maxBody || json.Unmarshal(b, &out) != nil {
		return Rates{}, errors.New("bad answer from " + base + Path)
	}
	return out, nil
}

// APIError is a non-200 answer of the limits API.
type APIError struct {
	Status int
	Msg    string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Msg)
}
