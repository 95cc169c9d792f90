package cdn

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/dfp2p/dfp2p/internal/limit"
)

// Defaults.
const (
	DefaultParallel   = 4
	DefaultRetries    = 3
	DefaultTimeout    = 30 * time.Second
	DefaultJobTimeout = time.Hour
	// failedJobTTL is how long a failed job is kept so that a burst of peers
	// sees the same error instead of each starting a new origin fetch.
	failedJobTTL = 2 * time.Second
)

// Option configures a Fetcher.
type Option interface{ applyFetcher(*Fetcher) }

// SeedOption configures a Seed.
type SeedOption interface{ applySeed(*Seed) }

type fetcherOption func(*Fetcher)

func (o fetcherOption) applyFetcher(f *Fetcher) { o(f) }

type seedOption func(*Seed)

func (o seedOption) applySeed(s *Seed) { o(s) }

// WithHTTPClient sets the client used for origin requests. Its Timeout, if
// any, bounds whole responses, so leave it zero for large files and use
// WithTimeout instead. Default: a client with its own transport.
func WithHTTPClient(c *http.Client) Option {
	return fetcherOption(func(f *Fetcher) {
		if c != nil {
			f.client = c
		}
	})
}

// WithParallel sets how many ranged requests run at once (default 4).
func WithParallel(n int) Option {
	return fetcherOption(func(f *Fetcher) {
		if n > 0 {
			f.parallel = n
		}
	})
}

// WithRetries sets how many times one range (or one pass of a sequential
// stream that made no progress) is retried after a 5xx, 408, 429, a network
// error or a short or mismatched body, with exponential backoff (default 3).
// Other 4xx statuses are never retried.
func WithRetries(n int) Option {
	return fetcherOption(func(f *Fetcher) {
		if n >= 0 {
			f.retries = n
		}
	})
}

// WithByteCounter registers fn to be called with the number of bytes read from
// origin bodies, as they are read. fn must be safe for concurrent use.
func WithByteCounter(fn func(n int64)) Option {
	return fetcherOption(func(f *Fetcher) { f.counter = fn })
}

// WithRateLimit makes every byte read from origin bodies wait on each limit
// of g (a process's origin and download limits, shared by all its fetches).
// Body reads then take at most one burst at a time, and the stall timeout
// does not run while a read waits for the limit.
func WithRateLimit(g limit.Group) Option {
	return fetcherOption(func(f *Fetcher) { f.limit = g })
}

// WithTimeout bounds the wait for an origin's response headers and any stall
// between reads of a body (default 30s). Zero disables it.
func WithTimeout(d time.Duration) Option {
	return fetcherOption(func(f *Fetcher) {
		if d >= 0 {
			f.timeout = d
		}
	})
}

// WithTempDir sets where bodies of unknown length are spooled before they are
// cut into pieces (default os.TempDir()).
func WithTempDir(dir string) Option {
	return fetcherOption(func(f *Fetcher) { f.tempDir = dir })
}

// WithJobTimeout bounds one seed job (default 1h).
func WithJobTimeout(d time.Duration) SeedOption {
	return seedOption(func(s *Seed) {
		if d > 0 {
			s.jobTimeout = d
		}
	})
}

// LoggerOption sets a logger; it is accepted by both NewFetcher and NewSeed.
type LoggerOption struct{ l *slog.Logger }

// WithLogger sets the logger (default: discard). URLs are logged without
// their query strings.
func WithLogger(l *slog.Logger) LoggerOption { return LoggerOption{l} }

func (o LoggerOption) applyFetcher(f *Fetcher) {
	if o.l != nil {
		f.log = o.l
	}
}

func (o LoggerOption) applySeed(s *Seed) {
	if o.l != nil {
		s.log = o.l
	}
}
