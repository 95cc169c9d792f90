package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Origin is an HTTP server that serves generated files and counts every body
// byte it sends. It supports Range (http.ServeContent).
type Origin struct {
	URL   string
	srv   *http.Server
	ln    net.Listener
	dir   string
	sent  atomic.Int64
	reqs  atomic.Int64
	mu    sync.Mutex
	files map[string]File
	// Delay, if set, slows every body write (for "kill mid-download" tests).
	delay atomic.Int64
	// faults is the fault schedule (faults.go), nil when well-behaved.
	faults atomic.Pointer[FaultSchedule]
}

// File is a generated file the origin serves.
type File struct {
	Name   string
	Path   string
	Size   int64
	SHA256 string
}

// NewOrigin starts an origin on loopback. dir holds the generated files.
// Paths: /files/NAME serves a file, /status/CODE answers with that status.
func NewOrigin(dir string) (*Origin, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return NewOriginOn(dir, ln)
}

// NewOriginOn is NewOrigin serving on ln, e.g. a listener inside a network
// namespace (Site.Listen). The origin owns ln: Close closes it. URL is
// http://ADDR with ln's address.
func NewOriginOn(dir string, ln net.Listener) (*Origin, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		ln.Close()
		return nil, err
	}
	o := &Origin{URL: "http://" + ln.Addr().String(), ln: ln, dir: dir, files: map[string]File{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /files/{name}", o.serveFile)
	mux.HandleFunc("HEAD /files/{name}", o.serveFile)
	mux.HandleFunc("GET /status/{code}", func(w http.ResponseWriter, r *http.Request) {
		var code int
		if _, err := fmt.Sscanf(r.PathValue("code"), "%d", &code); err != nil || code < 200 || code > 599 {
			code = http.StatusBadRequest
		}
		o.reqs.Add(1)
		http.Error(w, http.StatusText(code), code)
	})
	o.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = o.srv.Serve(ln) }()
	return o, nil
}

// Generate writes a deterministic pseudo-random file of size bytes and makes
// it available at URL(name).
func (o *Origin) Generate(name string, size int64, seed uint64) (File, error) {
	path := filepath.Join(o.dir, name)
	f, err := os.Create(path)
	if err != nil {
		return File{}, err
	}
	defer f.Close()
	h := sha256.New()
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)})
	if _, err := io.CopyN(io.MultiWriter(f, h), rng, size); err != nil {
		return File{}, err
	}
	file := File{Name: name, Path: path, Size: size, SHA256: hex.EncodeToString(h.Sum(nil))}
	o.mu.Lock()
	o.files[name] = file
	o.mu.Unlock()
	return file, nil
}

// FileURL is the URL of a generated file.
func (o *Origin) FileURL(name string) string { return o.URL + "/files/" + name }

// BytesSent is the number of body bytes the origin has sent.
func (o *Origin) BytesSent() int64 { return o.sent.Load() }

// Requests is the number of requests served.
func (o *Origin) Requests() int64 { return o.reqs.Load() }

// SetDelay slows the origin: each 64 KiB written waits d.
func (o *Origin) SetDelay(d time.Duration) { o.delay.Store(int64(d)) }

// Close stops the origin.
func (o *Origin) Close() error { return o.srv.Close() }

func (o *Origin) serveFile(w http.ResponseWriter, r *http.Request) {
	o.reqs.Add(1)
	o.mu.Lock()
	file, ok := o.files[r.PathValue("name")]
	o.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	if o.injectFault(&w, r, file) {
		return
	}
	f, err := os.Open(file.Path)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer f.Close()
	http.ServeContent(&countingWriter{ResponseWriter: w, o: o}, r, file.Name, time.Unix(0, 0), f)
}

type countingWriter struct {
	http.ResponseWriter
	o *Origin
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if d := time.Duration(c.o.delay.Load()); d > 0 {
		written := 0
		for len(p) > 0 {
			k := min(len(p), 64<<10)
			time.Sleep(d)
			n, err := c.ResponseWriter.Write(p[:k])
			c.o.sent.Add(int64(n))
			written += n
			if err != nil {
				return written, err
			}
			p = p[k:]
		}
		return written, nil
	}
	n, err := c.ResponseWriter.Write(p)
	c.o.sent.Add(int64(n))
	return n, err
}

// ReadFrom keeps io.Copy from bypassing the counter through sendfile.
func (c *countingWriter) ReadFrom(r io.Reader) (int64, error) {
	return io.CopyBuffer(writerOnly{c}, r, make([]byte, 256<<10))
}

type writerOnly struct{ io.Writer }
