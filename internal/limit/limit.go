package limit

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Burst bounds.
const (
	MinBurst = 64 << 10
	MaxBurst = 4 << 20
)

// Burst is the bucket size used for a rate in bytes per second: rate/20,
// clamped to [MinBurst, MaxBurst] (see the package documentation).
func Burst(bps int64) int {
	return int(min(max(bps/20, MinBurst), MaxBurst))
}

// Limiter is one byte rate shared by every caller that waits on it. The zero
// value and a nil *Limiter are unlimited. It is safe for concurrent use.
type Limiter struct {
	mu  sync.Mutex // serializes SetRate
	cur atomic.Pointer[bucket]
}

// bucket is one rate's token bucket. It is replaced, never changed, when the
// rate changes; changed is closed then, so waiters move to the new bucket.
type bucket struct {
	bps     int64
	burst   int
	tb      *rate.Limiter // nil: unlimited
	changed chan struct{}
}

var unlimited = &bucket{changed: make(chan struct{})} // never closed: nobody waits on it

// New returns a Limiter at bps bytes per second (<= 0: unlimited).
func New(bps int64) *Limiter {
	l := &Limiter{}
	l.SetRate(bps)
	return l
}

func (l *Limiter) load() *bucket {
	if l == nil {
		return unlimited
	}
	if b := l.cur.Load(); b != nil {
		return b
	}
	return unlimited
}

// Rate returns the limit in bytes per second (0: unlimited).
func (l *Limiter) Rate() int64 { return l.load().bps }

// SetRate changes the limit to bps bytes per second (<= 0: unlimited). It
// takes effect at once, also for callers waiting on the old rate: they give
// back their reservation and wait again at the new one.
func (l *Limiter) SetRate(bps int64) {
	bps = max(bps, 0)
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.cur.Load()
	if old != nil && old.bps == bps {
		return
	}
	nb := unlimited
	if bps > 0 {
		burst := Burst(bps)
		nb = &bucket{bps: bps, burst: burst, tb: rate.NewLimiter(rate.Limit(bps), burst), changed: make(chan struct{})}
	}
	l.cur.Store(nb)
	if old != nil && old != unlimited {
		close(old.changed)
	}
}

// Chunk is the most bytes one wait covers: the burst, or 0 when unlimited.
func (l *Limiter) Chunk() int { return l.load().burst }

// WaitN blocks until n bytes may pass, in waits of at most one burst. It
// returns ctx's error if ctx ends first; the bytes of the unfinished wait
// are then not counted.
func (l *Limiter) WaitN(ctx context.Context, n int) error {
	for n > 0 {
		b := l.load()
		if b.tb == nil {
			return nil
		}
		c := min(n, b.burst)
		r := b.tb.ReserveN(time.Now(), c) // c <= burst: always OK
		if d := r.Delay(); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				r.Cancel()
				return context.Cause(ctx)
			case <-b.changed:
				t.Stop()
				r.Cancel()
				continue // wait for these bytes at the new rate
			}
		}
		n -= c
	}
	return nil
}

// Reader returns r limited by l (see Group.Reader).
func (l *Limiter) Reader(ctx context.Context, r io.Reader) io.Reader { return Group{l}.Reader(ctx, r) }

// Writer returns w limited by l (see Group.Writer).
func (l *Limiter) Writer(ctx context.Context, w io.Writer) io.Writer { return Group{l}.Writer(ctx, w) }

// Group is several limits that every byte must pass, for example the
// download and the origin limit for a daemon's own origin reads. Nil
// members are unlimited.
type Group []*Limiter

// WaitN waits until n bytes may pass every limit of the group.
func (g Group) WaitN(ctx context.Context, n int) error {
	for _, l := range g {
		if err := l.WaitN(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// Chunk is the smallest burst of the group's limits, or 0 when all are
// unlimited: the most bytes to move at once.
func (g Group) Chunk() int {
	c := 0
	for _, l := range g {
		if b := l.Chunk(); b > 0 && (c == 0 || b < c) {
			c = b
		}
	}
	return c
}

// Limited reports whether any limit of the group is set.
func (g Group) Limited() bool { return g.Chunk() > 0 }

// Reader returns a reader that reads at most one burst per call from r and
// then waits for the bytes it read. A wait cut short by ctx returns the
// bytes read with ctx's error.
func (g Group) Reader(ctx context.Context, r io.Reader) io.Reader {
	return &reader{ctx: ctx, r: r, g: g}
}

// Writer returns a writer that waits for each burst-sized chunk before
// writing it to w.
func (g Group) Writer(ctx context.Context, w io.Writer) io.Writer {
	return &writer{ctx: ctx, w: w, g: g}
}

type reader struct {
	ctx context.Context
	r   io.Reader
	g   Group
}

func (r *reader) Read(p []byte) (int, error) {
	if c := r.g.Chunk(); c > 0 && len(p) > c {
		p = p[:c]
	}
	n, err := r.r.Read(p)
	if n > 0 {
		if werr := r.g.WaitN(r.ctx, n); werr != nil {
			return n, werr
		}
	}
	return n, err
}

type writer struct {
	ctx context.Context
	w   io.Writer
	g   Group
}

func (w *writer) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		c := w.g.Chunk()
		if c <= 0 || c > len(p) {
			c = len(p)
		}
		if err := w.g.WaitN(w.ctx, c); err != nil {
			return written, err
		}
		n, err := w.w.Write(p[:c])
		written += n
		if err != nil {
			return written, err
		}
		p = p[c:]
	}
	return written, nil
}
