package cdn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dfp2p/dfp2p/internal/limit"
)

// OriginError is an HTTP status from the origin that ended a fetch. URL is the
// origin URL without its query string, so presigned-URL signatures never reach
// logs or error messages.
type OriginError struct {
	URL        string
	StatusCode int
	Status     string // as sent by the origin, e.g. "404 Not Found"
}

func (e *OriginError) Error() string {
	status := e.Status
	if status == "" {
		status = strconv.Itoa(e.StatusCode) + " " + http.StatusText(e.StatusCode)
	} else if !strings.HasPrefix(status, strconv.Itoa(e.StatusCode)) {
		status = strconv.Itoa(e.StatusCode) + " " + status
	}
	return "origin returned " + strings.TrimSpace(status) + " for " + e.URL
}

// Temporary reports whether retrying later may succeed (5xx, 408, 429).
func (e *OriginError) Temporary() bool { return retryableStatus(e.StatusCode) }

// ErrDigestMismatch is returned when the whole file's sha256 differs from
// Request.Digest. The task has been dropped from the store.
var ErrDigestMismatch = errors.New("cdn: whole-file sha256 does not match the expected digest")

// ErrOriginChanged is returned when the origin's bytes changed during a fetch
// (its length differs between responses). The task has been dropped.
var ErrOriginChanged = errors.New("cdn: origin content changed during the fetch")

func retryableStatus(code int) bool {
	return code >= 500 || code == http.StatusRequestTimeout || code == http.StatusTooManyRequests
}

// redactURL keeps scheme, host and path: the query (where signatures live),
// the fragment and any user info are dropped.
func redactURL(u *url.URL) string {
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	return r.String()
}

func redactString(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<invalid URL>"
	}
	return redactURL(u)
}

// retryError marks an error worth another attempt.
type retryError struct {
	err   error
	after time.Duration // origin's Retry-After, 0 if none
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

func retryable(err error) error { return &retryError{err: err} }

// hopByHop lists headers never forwarded: those that describe one connection,
// and those the fetcher must control (ranges, encodings, conditionals).
var hopByHop = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
	"Host", "Content-Length", "Range", "If-Range", "Accept-Encoding", "Expect",
	// Conditional requests could turn the answer into a bodiless 304/412.
	"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since",
}

// originHeader copies h for the origin, dropping hop-by-hop headers and those
// named in Connection.
func originHeader(h http.Header) http.Header {
	out := make(http.Header, len(h)+2)
	for k, vs := range h {
		out[textproto.CanonicalMIMEHeaderKey(k)] = append([]string(nil), vs...)
	}
	for _, v := range out["Connection"] {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				out.Del(name)
			}
		}
	}
	for _, k := range hopByHop {
		out.Del(k)
	}
	// Ranges and lengths must refer to the stored bytes, so ask for them as is
	// (this also stops net/http from decompressing transparently).
	out.Set("Accept-Encoding", "identity")
	return out
}

// contentRange parses "bytes first-last/total"; total is -1 for "*".
func contentRange(s string) (first, last, total int64, ok bool) {
	unit, rest, found := strings.Cut(strings.TrimSpace(s), " ")
	if !found || !strings.EqualFold(unit, "bytes") {
		return 0, 0, 0, false
	}
	rng, tot, found := strings.Cut(strings.TrimSpace(rest), "/")
	if !found {
		return 0, 0, 0, false
	}
	total = -1
	if tot != "*" {
		t, err := strconv.ParseInt(tot, 10, 64)
		if err != nil || t < 0 {
			return 0, 0, 0, false
		}
		total = t
	}
	if rng == "*" {
		return -1, -1, total, true
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || first < 0 || last < first || (total >= 0 && last >= total) {
		return 0, 0, 0, false
	}
	return first, last, total, true
}

// response is an origin response whose body reads are counted, bounded and
// guarded by an idle timeout. Close it to release the connection.
type response struct {
	*http.Response
}

// do sends one GET. rng is the Range header value ("" for none). The timeout
// bounds the wait for headers and, afterwards, any stall between body reads.
// Network errors come back as retryable errors with the URL redacted.
func (f *Fetcher) do(ctx context.Context, u *url.URL, hdr http.Header, rng string) (*response, error) {
	rctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u.String(), nil)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("cdn: %s: %w", redactURL(u), redactErr(err))
	}
	req.Header = hdr.Clone()
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	var timedOut atomic.Bool
	var timer *time.Timer
	if f.timeout > 0 {
		timer = time.AfterFunc(f.timeout, func() { timedOut.Store(true); cancel() })
	}
	resp, err := f.client.Do(req)
	if err != nil {
		if timer != nil {
			timer.Stop()
		}
		cancel()
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		if timedOut.Load() {
			return nil, retryable(fmt.Errorf("cdn: %s: no response headers within %s", redactURL(u), f.timeout))
		}
		err = fmt.Errorf("cdn: %s: %w", redactURL(u), redactErr(err))
		if permanentNetError(err) {
			return nil, err
		}
		return nil, retryable(err)
	}
	b := &body{rc: resp.Body, cancel: cancel, timer: timer, timeout: f.timeout, timedOut: &timedOut, ctx: ctx, count: f.counter, limit: f.limit}
	resp.Body = b
	return &response{Response: resp}, nil
}

// statusError turns a non-success response into an *OriginError, retryable
// for 5xx/408/429 (honouring a Retry-After in seconds). It closes the body.
func statusError(r *response, u *url.URL) error {
	r.Body.Close()
	oe := &OriginError{URL: redactURL(u), StatusCode: r.StatusCode, Status: r.Status}
	if !retryableStatus(r.StatusCode) {
		return oe
	}
	re := &retryError{err: oe}
	if s, err := strconv.Atoi(strings.TrimSpace(r.Header.Get("Retry-After"))); err == nil && s > 0 {
		re.after = time.Duration(s) * time.Second
	}
	return re
}

func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = redactString(ue.URL)
	}
	return err
}

// permanentNetError reports errors that another attempt will not fix.
func permanentNetError(err error) bool {
	var (
		unknownAuthority x509.UnknownAuthorityError
		hostname         x509.HostnameError
		invalid          x509.CertificateInvalidError
		verify           *tls.CertificateVerificationError
	)
	return errors.As(err, &unknownAuthority) || errors.As(err, &hostname) ||
		errors.As(err, &invalid) || errors.As(err, &verify)
}

// body wraps a response body: it counts origin bytes, resets the idle timer on
// every read, and turns read failures into retryable errors.
type body struct {
	rc       io.ReadCloser
	cancel   context.CancelFunc
	timer    *time.Timer
	timeout  time.Duration
	timedOut *atomic.Bool
	ctx      context.Context // the caller's context (not the request's)
	count    func(int64)
	limit    limit.Group
	once     sync.Once
}

func (b *body) Read(p []byte) (int, error) {
	chunk := b.limit.Chunk()
	if chunk > 0 && len(p) > chunk {
		p = p[:chunk]
	}
	n, err := b.rc.Read(p)
	if n > 0 {
		if b.count != nil {
			b.count(int64(n))
		}
		if chunk > 0 {
			// The bytes are in: wait for them with the stall timer
			// stopped (a wait for the limit is not a stalled origin).
			if b.timer != nil {
				b.timer.Stop()
			}
			if werr := b.limit.WaitN(b.ctx, n); werr != nil {
				return n, werr
			}
		}
		if b.timer != nil {
			b.timer.Reset(b.timeout)
		}
	}
	if err != nil && err != io.EOF {
		switch {
		case b.ctx.Err() != nil:
			err = context.Cause(b.ctx)
		case b.timedOut.Load():
			err = retryable(fmt.Errorf("cdn: origin body stalled for %s", b.timeout))
		default:
			err = retryable(fmt.Errorf("cdn: reading origin body: %w", err))
		}
	}
	return n, err
}

func (b *body) Close() error {
	b.once.Do(func() {
		if b.timer != nil {
			b.timer.Stop()
		}
		b.cancel()
	})
	return b.rc.Close()
}

// exact reads exactly n bytes from r: a short body is io.ErrUnexpectedEOF
// (retryable), and nothing past n is ever read. The first failure is kept in
// err so a caller can tell an origin failure from a store failure.
type exact struct {
	r   io.Reader
	n   int64 // bytes still expected
	err error // first non-EOF read error
}

func (e *exact) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.n {
		p = p[:e.n]
	}
	n, err := e.r.Read(p)
	e.n -= int64(n)
	if err == io.EOF {
		if e.n > 0 {
			err = retryable(fmt.Errorf("cdn: origin body ended %d bytes early: %w", e.n, io.ErrUnexpectedEOF))
		} else {
			err = nil
		}
	}
	if err != nil {
		e.err = err
		return n, err
	}
	if e.n == 0 {
		return n, io.EOF
	}
	return n, nil
}

// ctxReader stops a long local read when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, context.Cause(c.ctx)
	}
	return c.r.Read(p)
}
