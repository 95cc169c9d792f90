package preheat

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client talks to a tracker's preheat API (what `dfp2p preheat` uses).
type Client struct {
	Base  string // http(s)://HOST:PORT
	Token string // bearer token with the preheat scope (read for Get)
	HTTP  *http.Client
}

// APIError is a non-2xx answer of the API.
type APIError struct {
	Status int
	Msg    string
}

func (e *APIError) Error() string {
	switch e.Status {
	case http.StatusUnauthorized:
		return "tracker API: 401 " + e.Msg + " (give a token with the preheat scope: --token, DFP2P_TOKEN or --token-file)"
	case http.StatusForbidden:
		return "tracker API: 403 " + e.Msg + " (mint one with `dfp2p cluster api-token --scope preheat`)"
	}
	return fmt.Sprintf("tracker API: %d %s", e.Status, e.Msg)
}

// NewClient checks base and returns a Client.
func NewClient(base, token string) (*Client, error) {
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("tracker API %q: want http://HOST:PORT", base)
	}
	return &Client{Base: strings.TrimRight(u.String(), "/"), Token: token,
		HTTP: &http.Client{Timeout: 30 * time.Second}}, nil
}

// Submit posts req and returns the new job.
func (c *Client) Submit(ctx context.Context, req Request) (Job, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return Job{}, err
	}
	var j Job
	return j, c.do(ctx, http.MethodPost, "/api/v1/preheat", b, &j)
}

// Get reads one job.
func (c *Client) Get(ctx context.Context, id string) (Job, error) {
	var j Job
	return j, c.do(ctx, http.MethodGet, "/api/v1/preheat/"+url.PathEscape(id), nil, &j)
}

// Wait polls the job every interval until it is finished, calling progress
// (may be nil) with each state.
func (c *Client) Wait(ctx context.Context, id string, interval time.Duration, progress func(Job)) (Job, error) {
	tk := time.NewTicker(interval)
	defer tk.Stop()
	for {
		j, err := c.Get(ctx, id)
		if err != nil {
			return j, err
		}
		if progress != nil {
			progress(j)
		}
		if j.State.Done() {
			return j, nil
		}
		select {
		case <-tk.C:
		case <-ctx.Done():
			return j, ctx.Err()
		}
	}
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("tracker API: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("tracker API: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(b, &e)
		if e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
			if len(e.Error) > 200 {
				e.Error = e.Error[:200]
			}
		}
		return &APIError{Status: resp.StatusCode, Msg: e.Error}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("tracker API: bad answer: %v", err)
	}
	return nil
}
