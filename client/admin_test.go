package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAdminErrors(t *testing.T) {
	idA, idB := "abcdef01"+strings.Repeat("0", 56), "abcdef02"+strings.Repeat("0", 56)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/api/v1/gc":
			w.WriteHeader(401)
			w.Write([]byte(`{"error":"missing bearer token"}`))
		case r.URL.Path == "/api/v1/tasks" && r.URL.Query().Has("url"):
			w.Write([]byte(`[]`))
		case r.URL.Path == "/api/v1/tasks":
			w.Write([]byte(`[{"id":"` + idA + `"},{"id":"` + idB + `"}]`))
		case r.URL.Path == "/api/v1/cache/verify":
			w.Write([]byte(`{"task":{"id":"` + idA + `","checked":2}}` + "\n" + `{"error":"store: closed"}` + "\n"))
		default:
			w.WriteHeader(404)
			w.Write([]byte(`{"error":"unknown task"}`))
		}
	}))
	defer srv.Close()
	c, err := NewClient(Options{Daemon: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	_, err = c.GC(ctx, false)
	var e *Error
	if !errors.As(err, &e) || e.Status != 401 || !strings.Contains(e.Msg, "--token") || errors.Is(err, ErrNotFound) {
		t.Fatalf("gc without a token: %v", err)
	}
	if _, err := c.Resolve(ctx, "http://o/f?sig=secret", ""); !errors.Is(err, ErrNotFound) || strings.Contains(err.Error(), "secret") {
		t.Fatalf("uncached URL: %v", err)
	}
	if _, err := c.Resolve(ctx, strings.Repeat("1", 64), ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown ID: %v", err)
	}
	if tk, err := c.Resolve(ctx, "abcdef02", ""); err != nil || string(tk.ID) != idB {
		t.Fatalf("unique prefix: %+v %v", tk, err)
	}
	if _, err := c.Resolve(ctx, "abcdef0", ""); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("7-character prefix is taken as a URL and refused: %v", err)
	}
	if _, err := c.Resolve(ctx, "abcdef00", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("prefix of nothing: %v", err)
	}
	if _, err := c.Resolve(ctx, "abcdef", ""); err == nil {
		t.Fatal("neither an ID nor a URL accepted")
	}
	tasks := 0
	if _, err := c.Verify(ctx, VerifyRequest{}, func(VerifyTask) { tasks++ }); err == nil || !strings.Contains(err.Error(), "store: closed") || tasks != 1 {
		t.Fatalf("verify ending in an error: %v (%d tasks)", err, tasks)
	}
	if _, err := NewClient(Options{}); err == nil {
		t.Fatal("no daemon address accepted")
	}
	for addr, want := range map[string]bool{"http://127.0.0.1:65000": true, "localhost:1": true, "http://[::1]:2": true,
		"http://10.0.0.1:65000": false, "https://example.com": false, "ftp://x": false} {
		if IsLoopback(addr) != want {
			t.Errorf("IsLoopback(%q) != %v", addr, want)
		}
	}
}

func TestResolveAmbiguousPrefix(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`[{"id":"abcdef01` + strings.Repeat("0", 56) + `"},{"id":"abcdef01` + strings.Repeat("1", 56) + `"}]`))
	}))
	defer srv.Close()
	c, _ := NewClient(Options{Daemon: srv.URL})
	if _, err := c.Resolve(context.Background(), "abcdef01", ""); err == nil || !strings.Contains(err.Error(), "2 cached tasks") {
		t.Fatalf("ambiguous prefix: %v", err)
	}
	if tk, err := c.Resolve(context.Background(), "abcdef011", ""); err != nil || !strings.HasSuffix(string(tk.ID), "1") {
		t.Fatalf("longer prefix: %+v %v", tk, err)
	}
}

// Cancelling a Get in the middle (in-process peer, origin path) leaves
// neither the file nor a temp file, and no error of the origin's.
func TestGetCancelLeavesNothing(t *testing.T) {
	release := make(chan struct{})
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "8388608")
		w.Header().Set("Accept-Ranges", "none")
		w.WriteHeader(200)
		w.Write(make([]byte, 3<<20)) // the first piece and a half, then stall
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer origin.Close()
	defer close(release)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	ctx, cancel := context.WithCancel(context.Background())
	var once bool
	done := make(chan error, 1)
	go func() {
		_, err := Get(ctx, Options{}, Request{URL: origin.URL + "/f"}, out, func(n, _ int64, _ Stats) {
			if n > 0 && !once {
				once = true
				cancel()
			}
		})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled get: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("cancelled get did not return")
	}
	cancel()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("cancelled get left %v", ents)
	}
}
