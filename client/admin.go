package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/daemon"
	"github.com/dfp2p/dfp2p/internal/httpapi"
)

// Task is a cached task as the daemon reports it: ID, redacted URL, length,
// bytes held, pieces held of total, complete, pinned, created and last used.
type Task = daemon.TaskStatus

// GCResult is what a garbage collection removed (or, in a dry run, would
// remove) and the bytes freed.
type GCResult = daemon.GCResult

// GCRemoval is one task in a GCResult.
type GCRemoval = daemon.GCRemoval

// VerifyRequest says what Client.Verify checks and whether it repairs.
type VerifyRequest = daemon.VerifyRequest

// VerifyTask is what a verify found in (and did to) one task.
type VerifyTask = daemon.VerifyTask

// VerifySummary adds up a verify run.
type VerifySummary = daemon.VerifySummary

// ErrNotFound matches (errors.Is) an *Error with status 404: the task is not
// cached, or nothing is at the URL.
var ErrNotFound = errors.New("not found")

// Is makes errors.Is(err, ErrNotFound) true for 404 answers.
func (e *Error) Is(target error) bool {
	return target == ErrNotFound && e.Status == http.StatusNotFound
}

// Client calls a running daemon's HTTP API: the cache and admin calls
// behind `dfp2p ls`, `stat`, `pin`, `unpin`, `gc` and `cache verify`. It is
// safe for concurrent use.
//
// Scopes: listing and looking up need read (loopback callers have it without
// a token); Pin needs a token with the preheat scope, GC and Verify the admin
// scope (or the daemon's local token, DATA_DIR/api-token). An open cluster's
// daemon asks for no token.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// callTimeout bounds every call but Verify, whose answer streams for as
// long as the check runs (bounded by the caller's context).
const callTimeout = 2 * time.Minute

// Answer size limits.
const (
	maxAnswer     = 64 << 20 // a list of every cached task
	maxVerifyLine = 16 << 20 // one task's result (its bad piece indices)
)

// NewClient returns a Client for the daemon at o.Daemon (http://HOST:PORT),
// sending o.Token as the bearer token and using o.HTTPClient (default: no
// proxy, one minute to the answer's headers). Other fields are ignored.
func NewClient(o Options) (*Client, error) {
	if o.Daemon == "" {
		return nil, errors.New("no daemon address given (--daemon or DFP2P_DAEMON)")
	}
	base, err := daemonBase(o.Daemon)
	if err != nil {
		return nil, err
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{Proxy: nil, ResponseHeaderTimeout: time.Minute}}
	}
	return &Client{base: base, token: o.Token, hc: hc}, nil
}

// IsLoopback reports whether the daemon address names this host (a
// loopback IP or "localhost"): only then may a caller send it the local
// token of a daemon on this host.
func IsLoopback(daemonAddr string) bool {
	base, err := daemonBase(daemonAddr)
	if err != nil {
		return false
	}
	u, err := url.Parse(base)
	if err != nil {
		return false
	}
	h := u.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// do sends a request and returns the answer for a 2xx status; any other
// status becomes an *Error with the daemon's one-line message.
func (c *Client) do(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("cannot reach the daemon at %s: %w", c.base, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		var eb httpapi.ErrorBody
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &eb) != nil || eb.Error == "" {
			eb.Error = "daemon answered " + resp.Status
		}
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			eb.Error += " (pass a token with the needed scope: --token or DFP2P_TOKEN)"
		}
		return nil, &Error{Msg: eb.Error, Status: resp.StatusCode}
	}
	return resp, nil
}

// call is do with a JSON answer decoded into out, within callTimeout.
func (c *Client) call(ctx context.Context, method, path string, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	resp, err := c.do(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswer)).Decode(out); err != nil {
		return fmt.Errorf("bad answer from the daemon: %w", err)
	}
	return nil
}

// Tasks lists every cached task, sorted by ID.
func (c *Client) Tasks(ctx context.Context) ([]Task, error) {
	var out []Task
	if err := c.call(ctx, http.MethodGet, "/api/v1/tasks", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Task returns one task; an error matching ErrNotFound if it is not cached.
func (c *Client) Task(ctx context.Context, id content.TaskID) (Task, error) {
	if !id.Valid() {
		return Task{}, fmt.Errorf("invalid task id %q: want 64 hex characters", id)
	}
	var out Task
	err := c.call(ctx, http.MethodGet, "/api/v1/tasks/"+string(id), nil, &out)
	return out, err
}

// Lookup returns the task a fetch of req would use (the daemon derives the
// ID from req.URL, req.Tag and req.Digest as `get` does); an error matching
// ErrNotFound if it is not cached.
func (c *Client) Lookup(ctx context.Context, req Request) (Task, error) {
	q := url.Values{}
	if req.URL != "" {
		q.Set("url", req.URL)
	}
	if req.Tag != "" {
		q.Set("tag", req.Tag)
	}
	if req.Digest != "" {
		q.Set("digest", req.Digest)
	}
	if len(q) == 0 {
		return Task{}, errors.New("lookup needs a URL or a digest")
	}
	var out []Task
	if err := c.call(ctx, http.MethodGet, "/api/v1/tasks?"+q.Encode(), nil, &out); err != nil {
		return Task{}, err
	}
	if len(out) == 0 {
		what := req.URL
		if what == "" {
			what = req.Digest
		}
		return Task{}, &Error{Msg: content.RedactURL(what) + " is not cached", Status: http.StatusNotFound}
	}
	return out[0], nil
}

// minPrefix is the shortest task ID prefix Resolve accepts.
const minPrefix = 8

// Resolve finds a cached task by what a person types: a task ID, a unique
// prefix of one (at least 8 hex characters, as `dfp2p ls` shows them),
// sha256:HEX (a blob digest), or a URL (with tag, as given to `get --tag`).
// A task that is not cached yields an error matching ErrNotFound.
func (c *Client) Resolve(ctx context.Context, ref, tag string) (Task, error) {
	switch {
	case content.TaskID(ref).Valid():
		t, err := c.Task(ctx, content.TaskID(ref))
		if errors.Is(err, ErrNotFound) {
			err = &Error{Msg: "task " + ref + " is not cached", Status: http.StatusNotFound}
		}
		return t, err
	case strings.HasPrefix(ref, "sha256:"):
		return c.Lookup(ctx, Request{Digest: ref})
	case isHexPrefix(ref):
		tasks, err := c.Tasks(ctx)
		if err != nil {
			return Task{}, err
		}
		var found []Task
		for _, t := range tasks {
			if strings.HasPrefix(string(t.ID), ref) {
				found = append(found, t)
			}
		}
		switch len(found) {
		case 1:
			return found[0], nil
		case 0:
			return Task{}, &Error{Msg: "no cached task ID starts with " + ref, Status: http.StatusNotFound}
		default:
			return Task{}, fmt.Errorf("%d cached tasks start with %s: give more of the ID", len(found), ref)
		}
	}
	if _, err := content.ParseURL(ref); err != nil {
		return Task{}, fmt.Errorf("%q is neither a task ID nor a URL: %w", ref, err)
	}
	return c.Lookup(ctx, Request{URL: ref, Tag: tag})
}

func isHexPrefix(s string) bool {
	if len(s) < minPrefix || len(s) >= 64 {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

// Pin pins (pinned true) or unpins a task and returns it as it is now. GC
// never removes a pinned task. Needs the preheat scope.
func (c *Client) Pin(ctx context.Context, id content.TaskID, pinned bool) (Task, error) {
	if !id.Valid() {
		return Task{}, fmt.Errorf("invalid task id %q: want 64 hex characters", id)
	}
	method := http.MethodPut
	if !pinned {
		method = http.MethodDelete
	}
	var out Task
	err := c.call(ctx, method, "/api/v1/tasks/"+string(id)+"/pin", nil, &out)
	return out, err
}

// GC runs the daemon's garbage collection now, with its TTL and
// watermarks; with dryRun it removes nothing and says what it would remove.
// Needs the admin scope.
func (c *Client) GC(ctx context.Context, dryRun bool) (GCResult, error) {
	var out GCResult
	err := c.call(ctx, http.MethodPost, "/api/v1/gc", daemon.GCRequest{DryRun: dryRun}, &out)
	return out, err
}

// Verify has the daemon rehash every held piece (of req.Task, or of every
// task) against its CID, drop bad pieces and, with req.Repair, download
// missing pieces of once-complete tasks again. fn (if not nil) is called
// with each task's result as the daemon finishes it; the summary comes at
// the end. It runs until the daemon is done or ctx ends (cancelling ctx
// stops the check; downloads it started for repairs go on in the daemon).
// Needs the admin scope.
func (c *Client) Verify(ctx context.Context, req VerifyRequest, fn func(VerifyTask)) (VerifySummary, error) {
	resp, err := c.do(ctx, http.MethodPost, "/api/v1/cache/verify", req)
	if err != nil {
		return VerifySummary{}, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxVerifyLine)
	for sc.Scan() {
		var ev daemon.VerifyEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return VerifySummary{}, fmt.Errorf("bad answer from the daemon: %w", err)
		}
		switch {
		case ev.Error != "":
			return VerifySummary{}, &Error{Msg: "verify stopped: " + ev.Error, Status: http.StatusInternalServerError}
		case ev.Summary != nil:
			return *ev.Summary, nil
		case ev.Task != nil && fn != nil:
			fn(*ev.Task)
		}
	}
	if ctx.Err() != nil {
		return VerifySummary{}, ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return VerifySummary{}, fmt.Errorf("verify interrupted: %w", err)
	}
	return VerifySummary{}, errors.New("verify interrupted: the daemon's answer ended without a summary")
}
