package content

import (
	"fmt"
	"net/http"

	"golang.org/x/net/http/httpguts"
)

// MaxHeaderBytes bounds the origin request headers a task carries (names
// plus values). Common servers refuse more than 8-16 KiB of headers; the
// bound keeps a tracker registration well below its frame limit.
const MaxHeaderBytes = 64 << 10

// CheckHeader checks origin request headers from a client: every name is
// an HTTP token and every value free of CR, LF and NUL (so nothing can
// smuggle a second header line), and their total size is at most
// MaxHeaderBytes.
func CheckHeader(h http.Header) error {
	total := 0
	for name, values := range h {
		if !httpguts.ValidHeaderFieldName(name) {
			return fmt.Errorf("header name %q is not a valid token", truncateString(name, 64))
		}
		total += len(name)
		for _, v := range values {
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("header %q: control characters are not allowed", truncateString(name, 64))
			}
			total += len(v)
		}
		if total > MaxHeaderBytes {
			return fmt.Errorf("headers larger than %d bytes", MaxHeaderBytes)
		}
	}
	return nil
}

func truncateString(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
