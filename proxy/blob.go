package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dfp2p/dfp2p/internal/httpapi"
)

// blobTarget is one blob GET that goes through the swarm.
type blobTarget struct {
	registry string // registry host, for logs
	url      string // upstream blob URL: the authorization HEAD and the Fetcher's origin
	digest   string // sha256:HEX
}

// statusError is implemented by Fetcher errors that carry an HTTP status.
type statusError interface{ HTTPStatus() int }

// denialHeaders are the registry's headers a refused requester gets back.
var denialHeaders = []string{"Www-Authenticate", "Retry-After", "Docker-Distribution-Api-Version",
	"Ratelimit-Limit", "Ratelimit-Remaining", "Ratelimit-Reset", "Docker-Ratelimit-Source"}

// serveBlob answers a blob GET from the swarm, after the registry agreed that
// this requester may read the blob.
func (p *Proxy) serveBlob(w http.ResponseWriter, r *http.Request, t blobTarget) {
	ctx := r.Context()
	hdr := requesterHeader(r.Header)
	log := p.log.With("registry", t.registry, "digest", t.digest)
	noteKind(r, kindBlob)

	// a) Authorization: the registry decides, with the requester's own credentials.
	d, err := p.authorize(t, hdr)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		p.n.upstreamErrors.Add(1)
		note(r, outcomeError)
		log.Warn("blob authorization check failed; refusing (fail closed)", "err", err)
		writeOCIError(w, http.StatusBadGateway, "UNKNOWN",
			"cannot reach the registry to check authorization for this blob: "+httpapi.OneLine(err.Error(), 512))
		return
	}
	if d != nil {
		p.n.authDenied.Add(1)
		note(r, outcomeDenied)
		log.Debug("registry refused blob to requester", "status", d.status)
		for _, k := range denialHeaders {
			if vv := d.header.Values(k); len(vv) > 0 {
				w.Header()[k] = append([]string(nil), vv...)
			}
		}
		writeOCIError(w, d.status, ociCode(d.status),
			"registry answered "+strconv.Itoa(d.status)+" "+http.StatusText(d.status)+" for this blob")
		return
	}

	// b) The bytes, from the swarm.
	begin := time.Now()
	body, length, err := p.cfg.Fetcher.FetchBlob(ctx, BlobRequest{URL: t.url, Header: hdr, Digest: t.digest})
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		p.n.blobErrors.Add(1)
		note(r, outcomeError)
		status := fetchStatus(err)
		log.Info("blob fetch failed", "status", status, "err", err)
		writeOCIError(w, status, ociCode(status), httpapi.OneLine(err.Error(), 512))
		return
	}
	defer body.Close()
	if length < 0 {
		p.n.blobErrors.Add(1)
		note(r, outcomeError)
		writeOCIError(w, http.StatusBadGateway, "UNKNOWN", "fetcher returned no length")
		return
	}

	// c) Range.
	start, end, partial, err := parseRange(r.Header.Get("Range"), length)
	if err != nil {
		p.n.badRequests.Add(1)
		note(r, outcomeRefused)
		w.Header().Set("Content-Range", "bytes */"+strconv.FormatInt(length, 10))
		writeOCIError(w, http.StatusRequestedRangeNotSatisfiable, "RANGE_INVALID", "range not satisfiable")
		return
	}
	if start > 0 {
		if _, err := io.CopyN(io.Discard, body, start); err != nil {
			if ctx.Err() != nil {
				return
			}
			p.n.blobErrors.Add(1)
			note(r, outcomeError)
			status := fetchStatus(err)
			log.Info("blob stream failed before the range start", "err", err)
			writeOCIError(w, status, ociCode(status), httpapi.OneLine(err.Error(), 512))
			return
		}
	}
	n := end - start + 1
	writeHead := func() {
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Length", strconv.FormatInt(n, 10))
		h.Set("Docker-Content-Digest", t.digest)
		h.Set("Docker-Distribution-Api-Version", "registry/2.0")
		h.Set("Accept-Ranges", "bytes")
		h.Set("Etag", `"`+t.digest+`"`)
		h.Set("Cache-Control", "max-age=31536000")
		if partial {
			h.Set("Content-Range", "bytes "+strconv.FormatInt(start, 10)+"-"+strconv.FormatInt(end, 10)+"/"+strconv.FormatInt(length, 10))
			w.WriteHeader(http.StatusPartialContent)
		} else {
			w.WriteHeader(http.StatusOK)
		}
	}
	// The response reaching the blob's last byte waits for the Fetcher's
	// clean end (its whole-blob check) before sending its last chunk.
	written, started, err := p.streamBlob(w, body, n, end == length-1, writeHead)
	if err != nil {
		if !started && ctx.Err() == nil {
			p.n.blobErrors.Add(1)
			note(r, outcomeError)
			status := fetchStatus(err)
			log.Info("blob stream failed before the first byte", "err", err)
			writeOCIError(w, status, ociCode(status), httpapi.OneLine(err.Error(), 512))
			return
		}
		p.n.blobsAborted.Add(1)
		note(r, outcomeAborted)
		p.n.blobBytes.Add(written)
		if ctx.Err() == nil {
			log.Warn("blob stream failed mid-way; response aborted", "written", written, "want", n, "err", err)
		}
		panic(http.ErrAbortHandler)
	}
	p.n.blobsServed.Add(1)
	note(r, outcomeP2P)
	p.n.blobBytes.Add(written)
	log.Debug("blob served", "bytes", written, "range", partial, "took", time.Since(begin))
}

// streamBlob copies n bytes of body to w. writeHead runs once, just before
// the first byte goes out (or at the end for an empty body), so a stream
// that fails at once still gets a proper error status. With checkEOF the
// last chunk is held back until body has reported a clean io.EOF right after
// those n bytes: a Fetcher that fails its final check, or runs long, never
// lets the client see a complete body.
func (p *Proxy) streamBlob(w http.ResponseWriter, body io.Reader, n int64, checkEOF bool, writeHead func()) (written int64, started bool, err error) {
	rc := http.NewResponseController(w)
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for written < n {
		chunk := buf
		if int64(len(chunk)) > n-written {
			chunk = chunk[:n-written]
		}
		k, rerr := body.Read(chunk)
		last := written+int64(k) == n
		if last && checkEOF && rerr == nil {
			rerr = expectEOF(body)
		}
		if rerr != nil && (!errors.Is(rerr, io.EOF) || !last) {
			if errors.Is(rerr, io.EOF) {
				rerr = io.ErrUnexpectedEOF
			}
			return written, started, rerr
		}
		if k > 0 {
			if !started {
				writeHead()
				started = true
			}
			_ = rc.SetWriteDeadline(time.Now().Add(streamIdleTimeout))
			if _, werr := w.Write(chunk[:k]); werr != nil {
				return written, started, werr
			}
			written += int64(k)
		}
	}
	if n == 0 && checkEOF {
		if rerr := expectEOF(body); !errors.Is(rerr, io.EOF) {
			return 0, false, rerr
		}
	}
	if !started {
		writeHead()
		started = true
	}
	return written, started, nil
}

// expectEOF reads on past the announced length: io.EOF means a clean end.
func expectEOF(r io.Reader) error {
	var one [1]byte
	for range 100 {
		k, err := r.Read(one[:])
		if k > 0 {
			return errors.New("blob is longer than its announced length")
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}

// fetchStatus is the status for a Fetcher error: its own HTTP status when it
// carries one (the origin's 404 stays 404), else 502.
func fetchStatus(err error) int {
	var se statusError
	if errors.As(err, &se) {
		if s := se.HTTPStatus(); s >= 400 && s <= 599 {
			return s
		}
	}
	if errors.Is(err, context.Canceled) {
		return http.StatusServiceUnavailable
	}
	return http.StatusBadGateway
}

// denial is a registry's refusal of a requester.
type denial struct {
	status int
	header http.Header
}

// authorize asks the registry whether this requester may read the blob:
// HEAD with the requester's headers. nil, nil means yes. Positive answers are
// cached per (URL, credentials); concurrent identical checks share one HEAD.
// An error means the registry could not be asked (the caller fails closed).
func (p *Proxy) authorize(t blobTarget, hdr http.Header) (*denial, error) {
	key := authKey(t.url, hdr)
	if p.auth.ok(key) {
		p.n.authCacheHits.Add(1)
		return nil, nil
	}
	// Do runs in this handler's goroutine (so Close waits for it); the HEAD
	// is bounded by authCheckTimeout and cancelled by Close.
	v, err, _ := p.authFlight.Do(key, func() (any, error) {
		return p.checkUpstream(t, hdr, key)
	})
	if err != nil {
		return nil, err
	}
	d, _ := v.(*denial)
	return d, nil
}

func (p *Proxy) checkUpstream(t blobTarget, hdr http.Header, key string) (*denial, error) {
	ctx, cancel := context.WithTimeout(p.ctx, authCheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, t.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header = hdr.Clone()
	req.Header.Set("Accept-Encoding", "identity")
	p.addVia(req.Header, "")
	p.n.authChecks.Add(1)
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	// 2xx: allowed. 3xx: the registry redirects only requests it authorized
	// (to storage whose presigned URL is method-bound, so not followed).
	if resp.StatusCode >= 200 && resp.StatusCode < 400 {
		p.auth.put(key)
		return nil, nil
	}
	return &denial{status: resp.StatusCode, header: resp.Header}, nil
}

// authKey names an authorization answer: the blob URL (registry, repository,
// digest) and a hash of the requester's credentials, so answers never cross
// credentials and no credential is kept in memory.
func authKey(url string, h http.Header) string {
	s := sha256.New()
	for _, k := range []string{"Authorization", "Cookie"} {
		for _, v := range h.Values(k) {
			s.Write([]byte(k))
			s.Write([]byte{0})
			s.Write([]byte(v))
			s.Write([]byte{0})
		}
	}
	return url + "\x00" + hex.EncodeToString(s.Sum(nil))
}

// authCache remembers positive authorization answers for a TTL.
type authCache struct {
	ttl time.Duration
	now func() time.Time
	mu  sync.Mutex
	m   map[string]time.Time // key -> expiry
}

const maxAuthEntries = 8192

func newAuthCache(ttl time.Duration) *authCache {
	return &authCache{ttl: ttl, now: time.Now, m: map[string]time.Time{}}
}

func (c *authCache) ok(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, ok := c.m[key]
	if !ok {
		return false
	}
	if !c.now().Before(exp) {
		delete(c.m, key)
		return false
	}
	return true
}

func (c *authCache) put(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if len(c.m) >= maxAuthEntries {
		for k, exp := range c.m {
			if !now.Before(exp) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxAuthEntries {
			clear(c.m) // only costs extra HEADs
		}
	}
	c.m[key] = now.Add(c.ttl)
}

var errRange = errors.New("range not satisfiable")

// parseRange interprets a Range header for a body of size bytes, as Go's
// http.ServeContent (the registry's own answer) does for a single range:
// partial=false means the whole body (no Range, another unit, or several
// ranges, which RFC 9110 lets a server answer whole); errRange means 416
// (malformed byte range, or none of it inside the body).
func parseRange(h string, size int64) (start, end int64, partial bool, err error) {
	h = strings.TrimSpace(h)
	full := func() (int64, int64, bool, error) { return 0, size - 1, false, nil }
	if h == "" {
		return full()
	}
	unit, spec, ok := strings.Cut(h, "=")
	if !ok {
		return 0, 0, false, errRange
	}
	if !strings.EqualFold(strings.TrimSpace(unit), "bytes") {
		return full()
	}
	if strings.Contains(spec, ",") {
		return full()
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return 0, 0, false, errRange
	}
	first, last = strings.TrimSpace(first), strings.TrimSpace(last)
	if first == "" {
		// Suffix: the last N bytes.
		n, ok := parseDigits(last)
		if !ok || n == 0 || size == 0 {
			return 0, 0, false, errRange
		}
		n = min(n, size)
		return size - n, size - 1, true, nil
	}
	start, ok = parseDigits(first)
	if !ok || start >= size {
		return 0, 0, false, errRange
	}
	if last == "" {
		return start, size - 1, true, nil
	}
	end, ok = parseDigits(last)
	if !ok || end < start {
		return 0, 0, false, errRange
	}
	return start, min(end, size-1), true, nil
}

func parseDigits(s string) (int64, bool) {
	if s == "" || len(s) > 19 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}
