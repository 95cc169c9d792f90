package httpapi

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A body that never finishes fails the read within the deadline; once the
// deadline is lifted, a long answer is not cut and the request's context
// stays alive.
func TestBodyDeadline(t *testing.T) {
	const d = 300 * time.Millisecond
	readErr := make(chan error, 1)
	ctxErr := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lift := BodyDeadlineFor(w, d)
		_, err := io.ReadAll(r.Body)
		readErr <- err
		if err != nil {
			http.Error(w, "slow body", http.StatusBadRequest)
			return
		}
		lift()
		// A long answer after the body: longer than the deadline.
		for range 6 {
			_, _ = w.Write([]byte("x"))
			w.(http.Flusher).Flush()
			time.Sleep(d / 2)
		}
		ctxErr <- r.Context().Err()
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	// Slow body: 5 of 100 bytes, then nothing.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	_, _ = io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhello")
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || <-readErr == nil {
		t.Fatalf("slow body: status %d", resp.StatusCode)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("slow body held for %s", el)
	}

	// A whole body, then an answer that outlasts the deadline.
	r2, err := http.Post(srv.URL, "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r2.Body)
	r2.Body.Close()
	if err != nil || string(b) != "xxxxxx" {
		t.Fatalf("long answer cut: %q %v", b, err)
	}
	if err := <-readErr; err != nil {
		t.Fatal(err)
	}
	if err := <-ctxErr; err != nil {
		t.Fatalf("request context ended during the answer: %v", err)
	}
}
