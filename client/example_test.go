package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/dfp2p/dfp2p/client"
	"github.com/dfp2p/dfp2p/daemon"
)

// exampleOrigin serves 5 MiB of known bytes at /file.bin (a stand-in for any
// HTTP(S) origin).
func exampleOrigin() (*httptest.Server, []byte) {
	data := make([]byte, 5<<20)
	for i := range data {
		data[i] = byte(i % 251)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "file.bin", time.Unix(0, 0), bytes.NewReader(data))
	}))
	return srv, data
}

// Get writes a file that appears only complete and verified. Without
// Options.Daemon (or Trackers) it runs a short-lived in-process peer that
// reads the origin; on a host with a daemon, set Options.Daemon to
// "http://127.0.0.1:65000" and the swarm serves it.
func ExampleGet() {
	origin, data := exampleOrigin()
	defer origin.Close()
	dir, err := os.MkdirTemp("", "dfp2p-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	out := filepath.Join(dir, "file.bin")
	var last int64
	stats, err := client.Get(context.Background(), client.Options{}, client.Request{URL: origin.URL + "/file.bin"}, out,
		func(done, total int64, _ client.Stats) { last = done })
	if err != nil {
		log.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	fmt.Println("identical:", bytes.Equal(got, data))
	fmt.Println("progress reached the end:", last == int64(len(data)))
	fmt.Println("bytes from the origin:", stats.OriginBytes == int64(len(data)))
	// Output:
	// identical: true
	// progress reached the end: true
	// bytes from the origin: true
}

// Open streams the file: bytes arrive in order as pieces are verified; after
// io.EOF, SHA256 is the whole-file hash to compare with what was read.
// WithProgress gives a stream the progress callbacks Get has.
func ExampleOpen() {
	origin, data := exampleOrigin()
	defer origin.Close()

	s, err := client.Open(context.Background(), client.Options{}, client.Request{URL: origin.URL + "/file.bin"})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	calls := 0
	r := client.WithProgress(s, func(done, total int64, _ client.Stats) { calls++ })
	got, err := io.ReadAll(r)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("length:", s.Length())
	fmt.Println("identical:", bytes.Equal(got, data))
	fmt.Println("sha256 known:", len(s.SHA256()) == 64)
	fmt.Println("progress called:", calls > 0)
	// Output:
	// length: 5242880
	// identical: true
	// sha256 known: true
	// progress called: true
}

// A Client drives a running daemon's cache: list, look up by URL, pin, GC
// and verify. Here the daemon runs in this process for the example; on a
// host, point client.NewClient at its API ("http://127.0.0.1:65000") with a
// token (Options.Token) for pin (preheat scope), GC and verify (admin).
func ExampleClient() {
	origin, _ := exampleOrigin()
	defer origin.Close()
	dir, err := os.MkdirTemp("", "dfp2p-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	d, err := daemon.New(daemon.Config{DataDir: dir, API: "127.0.0.1:0", GCInterval: -1, NoDHT: true,
		Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	opts := client.Options{Daemon: "http://" + d.APIAddr()}
	url := origin.URL + "/file.bin"
	if _, err := client.Get(ctx, opts, client.Request{URL: url}, filepath.Join(dir, "out"), nil); err != nil {
		log.Fatal(err)
	}

	c, err := client.NewClient(opts)
	if err != nil {
		log.Fatal(err)
	}
	tasks, _ := c.Tasks(ctx)
	fmt.Println("cached tasks:", len(tasks))
	t, err := c.Resolve(ctx, url, "")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d of %d pieces, complete %v\n", t.Held, t.Pieces, t.Complete)
	if t, err = c.Pin(ctx, t.ID, true); err != nil {
		log.Fatal(err)
	}
	fmt.Println("pinned:", t.Pinned)
	gc, err := c.GC(ctx, true)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("gc would remove:", len(gc.Removed))
	sum, err := c.Verify(ctx, client.VerifyRequest{}, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("verified %d pieces, %d bad\n", sum.Checked, sum.Bad)
	_, err = c.Resolve(ctx, origin.URL+"/other.bin", "")
	fmt.Println("other file cached:", !errors.Is(err, client.ErrNotFound))
	// Output:
	// cached tasks: 1
	// 3 of 3 pieces, complete true
	// pinned: true
	// gc would remove: 0
	// verified 3 pieces, 0 bad
	// other file cached: false
}
