package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/crypto"
	"github.com/dfp2p/dfp2p/daemon"
	"github.com/dfp2p/dfp2p/internal/httpapi"
)

// Request names a file to fetch.
type Request = daemon.Request

// Stats tells where a download's bytes came from.
type Stats = daemon.Stats

// Error is a failed fetch. Status is the HTTP status the daemon answered with
// (the origin's own status when the origin failed, so 404 stays 404).
type Error struct {
	Msg    string
	Status int
}

func (e *Error) Error() string { return e.Msg }

// Stream is a download in progress: Read yields the file's bytes in order.
// After Read returned io.EOF, SHA256 is the whole-file hash the sender
// verified; Get compares it with what it received.
type Stream interface {
	io.ReadCloser
	TaskID() content.TaskID
	Length() int64
	SHA256() string
	Stats() Stats
}

// Options say how to reach the swarm. With Daemon set, the daemon's API is
// used; otherwise an in-process peer runs against Trackers (or, with none,
// reads the origin).
type Options struct {
	Daemon   string   // http://HOST:PORT of a local daemon
	Trackers []string // tracker multiaddrs for the in-process peer
	// Bootstrap lists DHT peers for the in-process peer; with none it runs
	// no DHT (a short-lived peer would only churn the routing tables).
	Bootstrap []string
	// Join is a closed cluster's join token for the in-process peer.
	Join string
	// Token is the bearer token sent to the daemon's API (not needed from
	// the daemon's own host for fetching).
	Token string
	// HTTPClient is used for the daemon's API, or, without a daemon, for
	// reading the origin. Default: no proxy, and a header timeout.
	HTTPClient *http.Client
	// Logger receives the in-process peer's logs (default: discarded).
	Logger *slog.Logger
	// Listen overrides the in-process peer's listen addresses (default: a
	// random port on 127.0.0.1, QUIC and TCP).
	Listen []string
}

// Open starts a download and returns its stream once the file's length is
// known. The caller reads it to io.EOF and closes it; the stream's bytes are
// verified piece by piece, and after io.EOF SHA256 is the whole-file sha256
// to compare with what was read (Get does this). A failure the origin
// caused is an *Error with the origin's status. Cancelling ctx ends the
// stream (and, without a daemon, the in-process peer, whose temp dir Close
// removes).
func Open(ctx context.Context, o Options, req Request) (Stream, error) {
	if o.Daemon != "" {
		return openDaemon(ctx, o, req)
	}
	return openInProcess(ctx, o, req)
}

type httpStream struct {
	resp   *http.Response
	task   content.TaskID
	length int64
	read   int64
	base   string
	hc     *http.Client
	err    error
}

// CheckDaemon reports whether s is a usable daemon address
// (http://HOST:PORT, https://HOST:PORT or HOST:PORT).
func CheckDaemon(s string) error {
	_, err := daemonBase(s)
	return err
}

func daemonBase(s string) (string, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("invalid daemon address %q: want http://HOST:PORT", s)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

func openDaemon(ctx context.Context, o Options, req Request) (Stream, error) {
	base, err := daemonBase(o.Daemon)
	if err != nil {
		return nil, err
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{Proxy: nil, ResponseHeaderTimeout: 10 * time.Minute}}
	}
	body, _ := json.Marshal(req)
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/fetch", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	if o.Token != "" {
		hreq.Header.Set("Authorization", "Bearer "+o.Token)
	}
	resp, err := hc.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the daemon at %s: %w", base, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var eb httpapi.ErrorBody
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &eb) != nil || eb.Error == "" {
			eb.Error = fmt.Sprintf("daemon answered %s", resp.Status)
		}
		return nil, &Error{Msg: eb.Error, Status: resp.StatusCode}
	}
	length, err := strconv.ParseInt(resp.Header.Get(daemon.HeaderLength), 10, 64)
	if err != nil || length < 0 {
		resp.Body.Close()
		return nil, errors.New("daemon answer has no valid length")
	}
	return &httpStream{resp: resp, task: content.TaskID(resp.Header.Get(daemon.HeaderTask)), length: length, base: base, hc: hc}, nil
}

func (s *httpStream) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.resp.Body.Read(p)
	s.read += int64(n)
	if s.read > s.length {
		s.err = errors.New("daemon sent more bytes than the file has")
		return n, s.err
	}
	if err == io.EOF {
		if msg := s.resp.Trailer.Get(daemon.TrailerError); msg != "" {
			s.err = &Error{Msg: msg, Status: http.StatusBadGateway}
			return n, s.err
		}
		if s.read != s.length {
			s.err = fmt.Errorf("download ended after %d of %d bytes", s.read, s.length)
			return n, s.err
		}
	} else if err != nil {
		err = fmt.Errorf("download interrupted: %w", err)
	}
	s.err = err
	return n, err
}

func (s *httpStream) Close() error           { return s.resp.Body.Close() }
func (s *httpStream) TaskID() content.TaskID { return s.task }
func (s *httpStream) Length() int64          { return s.length }
func (s *httpStream) SHA256() string         { return s.resp.Trailer.Get(daemon.TrailerSHA256) }
func (s *httpStream) Stats() Stats {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/api/v1/tasks/"+string(s.task), nil)
	if err != nil {
		return Stats{}
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return Stats{}
	}
	defer resp.Body.Close()
	var ts daemon.TaskStatus
	if json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&ts) != nil || ts.Stats == nil {
		return Stats{}
	}
	return *ts.Stats
}

// inProcess runs a short-lived daemon for one download.
type inProcess struct {
	*daemon.Stream
	d   *daemon.Daemon
	dir string
}

func openInProcess(ctx context.Context, o Options, req Request) (Stream, error) {
	dir, err := os.MkdirTemp("", "dfp2p-get-")
	if err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	listen := o.Listen
	if len(listen) == 0 {
		listen = []string{"/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0"}
	}
	var join *crypto.JoinToken
	if o.Join != "" {
		if join, err = crypto.ParseJoinToken(o.Join); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	d, err := daemon.New(daemon.Config{DataDir: dir, Listen: listen, Trackers: o.Trackers, Logger: log, Join: join,
		GCInterval: -1, NoAddrsFile: true, OriginClient: o.HTTPClient,
		Bootstrap: o.Bootstrap, NoDHT: len(o.Bootstrap) == 0})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s, err := d.Open(ctx, req)
	if err != nil {
		d.Close()
		os.RemoveAll(dir)
		var de *daemon.Error
		if errors.As(err, &de) { // the same typed error as through a daemon
			return nil, &Error{Msg: de.Msg, Status: daemon.StatusFor(de)}
		}
		return nil, err
	}
	return &inProcess{Stream: s, d: d, dir: dir}, nil
}

func (p *inProcess) Close() error {
	_ = p.Stream.Close()
	err := p.d.Close()
	return errors.Join(err, os.RemoveAll(p.dir))
}
func (p *inProcess) TaskID() content.TaskID { return p.Stream.Task }
func (p *inProcess) Length() int64          { return p.Stream.Length }

// Progress is called as bytes arrive. stats tells where the bytes came from
// so far; it is refreshed at most twice a second.
type Progress func(done, total int64, stats Stats)

// WithProgress returns s with fn called after every Read, as Get does with
// its progress argument: for callers of Open that want the same callbacks.
// A nil fn returns s.
func WithProgress(s Stream, fn Progress) Stream {
	if fn == nil {
		return s
	}
	return &progressStream{Stream: s, pr: progressReader{s: s, total: s.Length(), fn: fn}}
}

type progressStream struct {
	Stream
	pr progressReader
}

func (p *progressStream) Read(b []byte) (int, error) { return p.pr.Read(b) }

// Get downloads req into path. The file appears only complete and verified:
// bytes go to a temp file beside path, their sha256 is compared with the
// manifest's (and with req.Digest), then the file is synced and renamed. On
// any failure, a cancelled ctx included, nothing is left at path and the
// temp file is removed. progress (may be nil) is called as bytes arrive.
// The Stats say where the bytes came from (peers, seed, origin).
func Get(ctx context.Context, o Options, req Request, path string, progress Progress) (Stats, error) {
	if path == "" {
		return Stats{}, errors.New("no output path given")
	}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil {
		return Stats{}, fmt.Errorf("output directory %s does not exist", dir)
	} else if !fi.IsDir() {
		return Stats{}, fmt.Errorf("output directory %s is not a directory", dir)
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return Stats{}, fmt.Errorf("output path %s is a directory", path)
	}
	// The temp file is created before the download starts, so that an
	// output directory we cannot write to fails at once instead of after
	// the whole file crossed the network. O_EXCL with a random name: a
	// file or symlink planted beside path is never opened.
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".dfp2p-*")
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return Stats{}, fmt.Errorf("cannot write to output directory %s: %w", dir, err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	s, err := Open(ctx, o, req)
	if err != nil {
		return Stats{}, err
	}
	defer s.Close()
	h := sha256.New()
	var r io.Reader = s
	if progress != nil {
		r = &progressReader{s: s, total: s.Length(), fn: progress}
	}
	buf := make([]byte, 1<<20)
	n, err := io.CopyBuffer(io.MultiWriter(tmp, h), r, buf)
	if err != nil {
		return s.Stats(), err
	}
	if n != s.Length() {
		return s.Stats(), fmt.Errorf("received %d of %d bytes", n, s.Length())
	}
	got := hex.EncodeToString(h.Sum(nil))
	if want := s.SHA256(); want == "" || want != got {
		return s.Stats(), fmt.Errorf("integrity check failed: received sha256 %s, manifest says %q", got, want)
	}
	if req.Digest != "" {
		id, err := content.ParseDigest(req.Digest)
		if err != nil {
			return s.Stats(), err
		}
		if string(id) != got {
			return s.Stats(), fmt.Errorf("digest mismatch: file has sha256:%s, expected %s", got, req.Digest)
		}
	}
	if err := tmp.Sync(); err != nil {
		return s.Stats(), err
	}
	if err := tmp.Close(); err != nil {
		return s.Stats(), err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return s.Stats(), err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return s.Stats(), err
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return s.Stats(), nil
}

type progressReader struct {
	s         Stream
	done      int64
	total     int64
	fn        Progress
	stats     Stats
	lastStats time.Time
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.s.Read(b)
	p.done += int64(n)
	if time.Since(p.lastStats) > 500*time.Millisecond || err != nil {
		p.stats, p.lastStats = p.s.Stats(), time.Now()
	}
	p.fn(p.done, p.total, p.stats)
	return n, err
}
