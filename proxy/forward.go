package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/dfp2p/dfp2p/internal/httpapi"
)

// hopHeaders are meaningful only for one connection and are never forwarded
// (RFC 9110 7.6.1), besides any header named in Connection.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// removeHopHeaders deletes hop-by-hop headers from h, in place.
func removeHopHeaders(h http.Header) {
	for _, v := range h["Connection"] {
		for f := range strings.SplitSeq(v, ",") {
			if f = textproto.TrimString(f); f != "" {
				h.Del(f)
			}
		}
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
}

// forwardHeader is what goes upstream for a passed-through request.
func forwardHeader(in http.Header) http.Header {
	h := in.Clone()
	if h == nil {
		h = http.Header{}
	}
	removeHopHeaders(h)
	h.Del("Host")
	return h
}

// requesterHeader is the requester's headers as sent with the authorization
// HEAD and handed to the Fetcher: the credentials and identity of the
// requester, none of the per-response negotiation (Range, conditionals,
// encodings) and nothing hop-by-hop.
func requesterHeader(in http.Header) http.Header {
	h := forwardHeader(in)
	for _, k := range []string{"Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since",
		"If-Unmodified-Since", "Accept-Encoding", "Content-Length", "Content-Type", "Expect", "Via"} {
		h.Del(k)
	}
	return h
}

// copyResponseHeader copies an upstream response's end-to-end headers.
func copyResponseHeader(dst, src http.Header) {
	src = src.Clone()
	removeHopHeaders(src)
	for k, vv := range src {
		dst[k] = vv
	}
}

func (p *Proxy) addVia(h http.Header, proto string) {
	v := "1.1"
	if proto != "" {
		v = strings.TrimPrefix(proto, "HTTP/")
	}
	h.Add("Via", v+" "+p.via)
}

// handleForward serves a forward-proxy request for target: an absolute-form
// request, or one decrypted from an intercepted CONNECT.
func (p *Proxy) handleForward(w http.ResponseWriter, r *http.Request, target *url.URL) {
	if target.Scheme != "http" && target.Scheme != "https" {
		p.refuse(w, r, &pathError{status: http.StatusBadRequest, code: "UNSUPPORTED", msg: "only http and https URLs can be proxied"})
		return
	}
	if target.Host == "" || target.User != nil {
		p.refuse(w, r, &pathError{status: http.StatusBadRequest, code: "UNSUPPORTED", msg: "bad proxy URL"})
		return
	}
	if r.Method == http.MethodGet && p.matchRule(target.String()) {
		if bt, ok := blobURL(target); ok {
			p.serveBlob(w, r, bt)
			return
		}
	}
	var body io.Reader
	if r.Body != nil && r.Body != http.NoBody && (r.ContentLength != 0 || len(r.TransferEncoding) > 0) {
		body = r.Body
	}
	p.passthrough(w, r, target, body)
}

func (p *Proxy) matchRule(u string) bool {
	for _, re := range p.rules {
		if re.MatchString(u) {
			return true
		}
	}
	return false
}

// blobURL recognises an OCI blob URL, [prefix]/v2/NAME/blobs/sha256:HEX: the
// only rule-matched URLs that can go through the swarm, because the digest
// makes the bytes verifiable.
func blobURL(u *url.URL) (blobTarget, bool) {
	i := strings.Index(u.Path, "/v2/")
	if i < 0 {
		return blobTarget{}, false
	}
	rt, err := parsePath(u.Path[i:])
	if err != nil || rt.kind != routeBlob {
		return blobTarget{}, false
	}
	return blobTarget{registry: u.Host, url: u.String(), digest: rt.ref}, true
}

// passthrough forwards r to target and streams the answer back unchanged
// but for hop-by-hop headers. Redirects are returned, not followed.
func (p *Proxy) passthrough(w http.ResponseWriter, r *http.Request, target *url.URL, body io.Reader) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	idle := newIdleTimer(streamIdleTimeout, cancel)
	defer idle.stop()
	if body != nil {
		body = &idleReader{r: body, t: idle}
	}
	out, err := http.NewRequestWithContext(ctx, r.Method, target.String(), body)
	if err != nil {
		p.refuse(w, r, &pathError{status: http.StatusBadRequest, code: "UNSUPPORTED", msg: "bad upstream URL"})
		return
	}
	out.Header = forwardHeader(r.Header)
	if body != nil {
		out.ContentLength = r.ContentLength
	}
	if out.Header.Get("Accept-Encoding") == "" {
		// Otherwise Go's transport asks for gzip and silently decompresses,
		// which drops Content-Length (HEAD on a manifest needs it).
		out.Header.Set("Accept-Encoding", "identity")
	}
	p.addVia(out.Header, r.Proto)
	resp, err := p.client.Do(out)
	if err != nil {
		if r.Context().Err() != nil {
			return // the client went away
		}
		p.n.upstreamErrors.Add(1)
		note(r, outcomeError)
		p.log.Warn("upstream request failed", "method", r.Method, "url", redact(target), "err", err)
		writeOCIError(w, http.StatusBadGateway, "UNKNOWN", "upstream unreachable: "+httpapi.OneLine(err.Error(), 512))
		return
	}
	defer resp.Body.Close()
	p.n.forwarded.Add(1)
	note(r, outcomeUpstream)
	copyResponseHeader(w.Header(), resp.Header)
	w.WriteHeader(resp.StatusCode)
	if r.Method == http.MethodHead || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified {
		return
	}
	flush := resp.ContentLength < 0 // streaming answers: don't sit in our buffer
	if _, err := p.copyOut(w, resp.Body, -1, flush, idle); err != nil {
		if r.Context().Err() == nil {
			p.n.upstreamErrors.Add(1)
			p.log.Debug("upstream body failed mid-way", "url", redact(target), "err", err)
		}
		note(r, outcomeAborted)
		// Cut the connection: a chunked answer would otherwise end as a
		// well-formed, short "success".
		panic(http.ErrAbortHandler)
	}
}

// copyOut copies src to w: n bytes (n < 0: to EOF). Every chunk pushes the
// write deadline forward, so a client that stops reading is cut, and feeds
// idle, so a source that stops sending is cancelled. Errors are read or
// write errors; io.EOF before n bytes is io.ErrUnexpectedEOF.
func (p *Proxy) copyOut(w http.ResponseWriter, src io.Reader, n int64, flush bool, idle *idleTimer) (int64, error) {
	rc := http.NewResponseController(w)
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var written int64
	for n < 0 || written < n {
		chunk := buf
		if n >= 0 && int64(len(chunk)) > n-written {
			chunk = chunk[:n-written]
		}
		k, err := src.Read(chunk)
		if k > 0 {
			if idle != nil {
				idle.touch()
			}
			_ = rc.SetWriteDeadline(time.Now().Add(streamIdleTimeout))
			if _, werr := w.Write(chunk[:k]); werr != nil {
				return written, werr
			}
			if idle != nil {
				idle.touch() // a slow reader is not an idle source
			}
			written += int64(k)
			if flush {
				_ = rc.Flush()
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				if n >= 0 && written < n {
					return written, io.ErrUnexpectedEOF
				}
				return written, nil
			}
			return written, err
		}
	}
	return written, nil
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// idleTimer calls fire when touch has not been called for d.
type idleTimer struct {
	d time.Duration
	t *time.Timer
}

func newIdleTimer(d time.Duration, fire func()) *idleTimer {
	return &idleTimer{d: d, t: time.AfterFunc(d, fire)}
}

func (t *idleTimer) touch() { t.t.Reset(t.d) }
func (t *idleTimer) stop()  { t.t.Stop() }

// idleReader touches an idle timer on every read that moved bytes.
type idleReader struct {
	r io.Reader
	t *idleTimer
}

func (r *idleReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	if n > 0 {
		r.t.touch()
	}
	return n, err
}

// ociError is the OCI distribution error body.
type ociError struct {
	Errors []ociErrorItem `json:"errors"`
}

type ociErrorItem struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// writeOCIError writes {"errors":[{"code":...,"message":...}]} with status.
func writeOCIError(w http.ResponseWriter, status int, code, msg string) {
	b, _ := json.Marshal(ociError{Errors: []ociErrorItem{{Code: code, Message: msg}}})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Docker-Distribution-Api-Version", "registry/2.0")
	h.Del("Content-Length")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// ociCode is the OCI error code for an upstream or Fetcher status.
func ociCode(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "UNAUTHORIZED"
	case http.StatusForbidden:
		return "DENIED"
	case http.StatusNotFound:
		return "BLOB_UNKNOWN"
	case http.StatusTooManyRequests:
		return "TOOMANYREQUESTS"
	case http.StatusRequestedRangeNotSatisfiable:
		return "RANGE_INVALID"
	}
	return "UNKNOWN"
}

// redact strips credentials and the query from a URL for logs.
func redact(u *url.URL) string {
	c := *u
	c.User = nil
	if c.RawQuery != "" {
		c.RawQuery = "redacted"
	}
	c.Fragment = ""
	return c.String()
}
