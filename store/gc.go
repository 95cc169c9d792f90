package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/dfp2p/dfp2p/content"
)

// GC reasons.
const (
	ReasonTTL       = "ttl"
	ReasonWatermark = "watermark"
)

// GCReport says what GC removed (or, with dryRun, would remove).
type GCReport struct {
	Removed    []content.TaskID
	FreedBytes int64
	Reason     map[content.TaskID]string // ReasonTTL or ReasonWatermark
	Bytes      map[content.TaskID]int64  // bytes each removed task held
}

type gcCandidate struct {
	id         content.TaskID
	lastAccess time.Time
	bytes      int64
}

// errGCSkip means a task changed between planning and removal.
var errGCSkip = errors.New("store: task changed since GC planned its removal")

// GC removes unpinned, inactive tasks: first those not accessed for the TTL,
// then, while disk use is above the high watermark, the least recently used
// until use is at or below the low watermark. With dryRun it only reports.
// A task that is acquired, pinned or accessed between planning and removal is
// skipped. If the filesystem cannot be measured, watermark removal is skipped
// and the error is returned along with the TTL removals. Runs that are not
// dry runs are counted in the store's metrics (Collectors).
func (s *Store) GC(dryRun bool) (GCReport, error) {
	rep, err := s.gc(dryRun)
	if !dryRun && !errors.Is(err, ErrClosed) {
		s.gcm.record(rep)
	}
	return rep, err
}

func (s *Store) gc(dryRun bool) (GCReport, error) {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()

	rep := GCReport{Reason: make(map[content.TaskID]string), Bytes: make(map[content.TaskID]int64)}
	reason := make(map[content.TaskID]string)
	now := s.opts.now()

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return rep, ErrClosed
	}
	var cands []gcCandidate
	for id, ts := range s.tasks {
		if ts.rec.Pinned || s.active[id] > 0 {
			continue
		}
		cands = append(cands, gcCandidate{id, ts.rec.LastAccess, ts.bytes})
	}
	usage := s.usage
	s.mu.Unlock()
	// Least recently used first; ID breaks ties so the order is stable.
	sort.Slice(cands, func(i, j int) bool {
		if !cands[i].lastAccess.Equal(cands[j].lastAccess) {
			return cands[i].lastAccess.Before(cands[j].lastAccess)
		}
		return cands[i].id < cands[j].id
	})

	var plan []gcCandidate
	var rest []gcCandidate
	for _, c := range cands {
		if s.opts.ttl > 0 && now.Sub(c.lastAccess) >= s.opts.ttl {
			plan = append(plan, c)
			reason[c.id] = ReasonTTL
		} else {
			rest = append(rest, c)
		}
	}

	var diskErr error
	if s.opts.high < 1 {
		used, capacity, err := s.diskUse(usage)
		if err != nil {
			diskErr = fmt.Errorf("store: measuring disk use, watermark GC skipped: %w", err)
			s.opts.log.Warn("store: measuring disk use", "err", err)
		} else if capacity > 0 {
			for _, c := range plan {
				used -= c.bytes
			}
			if float64(used) > s.opts.high*float64(capacity) {
				low := s.opts.low * float64(capacity)
				for _, c := range rest {
					if float64(used) <= low {
						break
					}
					if c.bytes == 0 {
						continue // frees nothing
					}
					plan = append(plan, c)
					reason[c.id] = ReasonWatermark
					used -= c.bytes
				}
			}
		}
	}

	for _, c := range plan {
		if dryRun {
			rep.Removed = append(rep.Removed, c.id)
			rep.Reason[c.id] = reason[c.id]
			rep.Bytes[c.id] = c.bytes
			rep.FreedBytes += c.bytes
			continue
		}
		planned := c.lastAccess
		freed, err := s.removeTask(c.id, func(ts *taskState) error {
			if ts.rec.Pinned || !ts.rec.LastAccess.Equal(planned) {
				return errGCSkip
			}
			return nil
		})
		if err != nil {
			if errors.Is(err, ErrClosed) {
				return rep, err
			}
			if !errors.Is(err, errGCSkip) && !errors.Is(err, ErrInUse) && !errors.Is(err, ErrNotFound) {
				s.opts.log.Warn("store: GC could not remove task", "task", c.id.Short(), "err", err)
			}
			continue
		}
		s.opts.log.Info("store: GC removed task", "task", c.id.Short(), "reason", reason[c.id], "bytes", freed)
		rep.Removed = append(rep.Removed, c.id)
		rep.Reason[c.id] = reason[c.id]
		rep.Bytes[c.id] = freed
		rep.FreedBytes += freed
	}
	return rep, diskErr
}

// diskUse returns used and total bytes for the watermarks: the store's own
// bytes against the quota, or the filesystem's numbers.
func (s *Store) diskUse(usage int64) (used, capacity int64, err error) {
	if s.opts.quota > 0 {
		return usage, s.opts.quota, nil
	}
	return statfs(s.dir)
}

// RunGC runs GC every interval until ctx ends, calling done (if not nil)
// after each run. It is the loop the daemon and the tracker's seed cache
// share; the caller owns the goroutine it runs in.
func (s *Store) RunGC(ctx context.Context, interval time.Duration, done func(GCReport, error)) {
	tk := time.NewTicker(interval)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
			rep, err := s.GC(false)
			if err != nil {
				s.opts.log.Warn("store: gc", "err", err)
			} else if len(rep.Removed) > 0 {
				s.opts.log.Info("store: gc removed tasks", "count", len(rep.Removed), "freed", rep.FreedBytes)
			}
			if done != nil {
				done(rep, err)
			}
		}
	}
}
