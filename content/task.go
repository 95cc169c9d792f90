package content

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"sort"
	"strings"
)

// TaskID names one task (one file). It is 64 lower-case hex characters: the
// sha256 of the normalised URL and tag, or the file's own sha256 when the user
// gives a digest.
type TaskID string

// DefaultQueryFilter lists query parameters removed before a URL is hashed
// into a TaskID: signatures and expiry stamps that differ per requester but
// name the same bytes. A trailing '*' matches any suffix; matching is
// case-insensitive.
var DefaultQueryFilter = []string{
	"X-Amz-*",        // AWS SigV4 presigned URLs
	"X-Goog-*",       // GCS signed URLs
	"AWSAccessKeyId", // AWS SigV2
	"Signature",
	"Expires",
	"Key-Pair-Id", // CloudFront
	"Policy",
}

// Valid reports whether t is well formed.
func (t TaskID) Valid() bool {
	if len(t) != 64 {
		return false
	}
	for _, c := range []byte(t) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Short is a prefix of the ID for logs.
func (t TaskID) Short() string {
	if len(t) > 12 {
		return string(t[:12])
	}
	return string(t)
}

// ErrUnsupportedScheme is returned for URLs that are not http or https.
var ErrUnsupportedScheme = errors.New("unsupported URL scheme (only http and https)")

// ParseURL checks that raw is an absolute http(s) URL with a host.
func ParseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid URL %q: %w", raw, err)
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
	case "":
		return nil, fmt.Errorf("invalid URL %q: missing scheme (want http:// or https://)", raw)
	default:
		return nil, fmt.Errorf("%w: %q", ErrUnsupportedScheme, u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("invalid URL %q: missing host", raw)
	}
	if u.User != nil {
		return nil, fmt.Errorf("invalid URL %q: credentials in URLs are not accepted; pass them with -H 'Authorization: ...'", raw)
	}
	return u, nil
}

// NormalizeURL returns the canonical form of raw used for task IDs: scheme and
// host lower-cased, default ports dropped, the path cleaned, the fragment
// removed, filtered query parameters removed and the rest sorted.
func NormalizeURL(raw string, filter []string) (string, error) {
	u, err := ParseURL(raw)
	if err != nil {
		return "", err
	}
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	if port := u.Port(); port != "" && !(scheme == "http" && port == "80" || scheme == "https" && port == "443") {
		host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	} else {
		trailing := strings.HasSuffix(p, "/")
		p = path.Clean(p)
		if trailing && p != "/" {
			p += "/"
		}
	}
	q := u.Query()
	keys := make([]string, 0, len(q))
	for k := range q {
		if !filtered(k, filter) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(scheme + "://" + host + p)
	for i, k := range keys {
		vs := append([]string(nil), q[k]...)
		sort.Strings(vs)
		for j, v := range vs {
			if i == 0 && j == 0 {
				b.WriteByte('?')
			} else {
				b.WriteByte('&')
			}
			b.WriteString(url.QueryEscape(k) + "=" + url.QueryEscape(v))
		}
	}
	return b.String(), nil
}

func filtered(key string, filter []string) bool {
	for _, f := range filter {
		if prefix, ok := strings.CutSuffix(f, "*"); ok {
			if len(key) >= len(prefix) && strings.EqualFold(key[:len(prefix)], prefix) {
				return true
			}
		} else if strings.EqualFold(key, f) {
			return true
		}
	}
	return false
}

// TaskIDFor derives the TaskID of a URL download. A non-empty digest
// ("sha256:HEX") wins: the same bytes are one task wherever they come from.
func TaskIDFor(rawURL, tag, digest string, filter []string) (TaskID, error) {
	if digest != "" {
		return ParseDigest(digest)
	}
	norm, err := NormalizeURL(rawURL, filter)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write([]byte("dfp2p-task-v1\x00"))
	h.Write([]byte(norm))
	h.Write([]byte{0})
	h.Write([]byte(tag))
	return TaskID(hex.EncodeToString(h.Sum(nil))), nil
}

// ParseDigest accepts "sha256:HEX" (64 hex characters, any case) and returns
// the hex part as a TaskID.
func ParseDigest(d string) (TaskID, error) {
	algo, hexpart, ok := strings.Cut(d, ":")
	if !ok || algo != "sha256" {
		return "", fmt.Errorf("invalid digest %q: want sha256:<64 hex characters>", d)
	}
	id := TaskID(strings.ToLower(hexpart))
	if !id.Valid() {
		return "", fmt.Errorf("invalid digest %q: want sha256:<64 hex characters>", d)
	}
	return id, nil
}

// RedactURL returns raw without its query string, fragment and user info, for
// logs and APIs: signed URLs carry credentials in their query.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<invalid URL>"
	}
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = "<redacted>"
	}
	u.Fragment = ""
	return u.String()
}
