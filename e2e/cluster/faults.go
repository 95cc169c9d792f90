package cluster

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"
)

// OriginFault is one way the origin misbehaves on a request.
type OriginFault string

// The origin's fault modes.
const (
	// Fault5xx answers 503 Service Unavailable before any body byte.
	Fault5xx OriginFault = "503"
	// FaultReset sends the headers and part of the body, then drops the
	// connection (the client sees the body end early).
	FaultReset OriginFault = "reset"
	// FaultCrawl sends the whole body, slowly (CrawlDelay per 64 KiB).
	FaultCrawl OriginFault = "crawl"
)

// FaultSchedule switches origin faults on from a seed, so a run is
// reproducible whatever order requests arrive in: each (file, Range) key
// gets, from a generator seeded with Seed and the key, a number of faulty
// attempts (0 with probability 1-Rate, else 1..MaxInARow) and a fault mode
// for each; attempt k of that key is faulty while k is below that number.
// Keep MaxInARow below the seed's retry budget (cdn.DefaultRetries) for
// faults the cluster must ride out.
type FaultSchedule struct {
	Seed      uint64
	Rate      float64       // fraction of keys that get faulty attempts
	MaxInARow int           // at most this many faulty attempts per key (default 1)
	Modes     []OriginFault // modes to draw from (default all three)
	// CrawlDelay is the wait per 64 KiB in FaultCrawl (default 20 ms).
	CrawlDelay time.Duration
	// Down, when set, answers every file request with this status (an
	// origin that is down), before the schedule is consulted.
	Down int
	// Log receives one line per injected fault; nil discards.
	Log func(format string, args ...any)

	mu       sync.Mutex
	attempts map[string]int
	counts   map[OriginFault]int
}

// SetFaults installs a fault schedule on the origin (nil removes it).
func (o *Origin) SetFaults(s *FaultSchedule) {
	if s != nil {
		s.mu.Lock()
		s.attempts, s.counts = map[string]int{}, map[OriginFault]int{}
		s.mu.Unlock()
	}
	o.faults.Store(s)
}

// Injected returns how many faults of each mode the schedule injected.
func (s *FaultSchedule) Injected() map[OriginFault]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[OriginFault]int{}
	for k, v := range s.counts {
		out[k] = v
	}
	return out
}

// decide returns the fault for this request, or "".
func (s *FaultSchedule) decide(key string) (OriginFault, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	attempt := s.attempts[key]
	s.attempts[key]++
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	rng := rand.New(rand.NewPCG(s.Seed, h.Sum64()))
	if rng.Float64() >= s.Rate {
		return "", attempt
	}
	maxRow := max(s.MaxInARow, 1)
	faulty := 1 + rng.IntN(maxRow)
	modes := s.Modes
	if len(modes) == 0 {
		modes = []OriginFault{Fault5xx, FaultReset, FaultCrawl}
	}
	var mode OriginFault
	for range attempt + 1 {
		mode = modes[rng.IntN(len(modes))]
	}
	if attempt >= faulty {
		return "", attempt
	}
	s.counts[mode]++
	return mode, attempt
}

func (s *FaultSchedule) logf(format string, args ...any) {
	if s.Log != nil {
		s.Log(format, args...)
	}
}

// injectFault applies the origin's fault schedule to a file request. It
// returns true when it answered the request itself; otherwise it may have
// replaced *w with a writer that misbehaves mid-body.
func (o *Origin) injectFault(w *http.ResponseWriter, r *http.Request, file File) bool {
	s := o.faults.Load()
	if s == nil {
		return false
	}
	if s.Down != 0 {
		s.logf("origin fault: down (%d) for %s %s", s.Down, file.Name, r.Header.Get("Range"))
		http.Error(*w, http.StatusText(s.Down), s.Down)
		return true
	}
	if r.Method != http.MethodGet {
		return false
	}
	rng := r.Header.Get("Range")
	key := file.Name + " " + rng
	mode, attempt := s.decide(key)
	if mode == "" {
		return false
	}
	s.logf("origin fault: %s on %s %q (attempt %d)", mode, file.Name, rng, attempt)
	switch mode {
	case Fault5xx:
		http.Error(*w, "injected fault", http.StatusServiceUnavailable)
		return true
	case FaultReset:
		// Cut the body somewhere in its first half, at a point derived
		// from the key, so the client has started reading.
		n := rangeLen(rng, file.Size)
		h := fnv.New64a()
		_, _ = h.Write([]byte(key))
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], s.Seed)
		_, _ = h.Write(b[:])
		cut := int64(1)
		if n > 2 {
			cut = 1 + int64(h.Sum64()%uint64(n/2))
		}
		*w = &resetWriter{ResponseWriter: *w, left: cut}
	case FaultCrawl:
		d := s.CrawlDelay
		if d <= 0 {
			d = 20 * time.Millisecond
		}
		*w = &crawlWriter{ResponseWriter: *w, delay: d}
	}
	return false
}

// rangeLen is the length a "bytes=A-B" / "bytes=A-" header asks for.
func rangeLen(h string, size int64) int64 {
	var a, b int64
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok {
		return size
	}
	if n, _ := fmt.Sscanf(spec, "%d-%d", &a, &b); n == 2 {
		return min(b, size-1) - a + 1
	}
	if n, _ := fmt.Sscanf(spec, "%d-", &a); n == 1 {
		return size - a
	}
	return size
}

// resetWriter passes left bytes, then aborts the handler: net/http closes
// the connection without finishing the body.
type resetWriter struct {
	http.ResponseWriter
	left int64
}

func (w *resetWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > w.left {
		_, _ = w.ResponseWriter.Write(p[:w.left])
		w.left = 0
		if f, ok := w.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		panic(http.ErrAbortHandler)
	}
	w.left -= int64(len(p))
	return w.ResponseWriter.Write(p)
}

// crawlWriter waits delay before every 64 KiB.
type crawlWriter struct {
	http.ResponseWriter
	delay time.Duration
}

func (w *crawlWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		k := min(len(p), 64<<10)
		time.Sleep(w.delay)
		n, err := w.ResponseWriter.Write(p[:k])
		written += n
		if err != nil {
			return written, err
		}
		p = p[k:]
	}
	return written, nil
}
