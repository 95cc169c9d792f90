package preheat

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/oci"
)

// Backend is what a Manager needs from the tracker.
type Backend interface {
	// Seed has the tracker's seed fetch t (or joins the fetch under way,
	// exactly as a daemon's registration does) and waits for its end.
	Seed(ctx context.Context, t Target) error
	// SeedProgress is how many bytes of task the seed holds, of how many.
	SeedProgress(task content.TaskID) (done, total int64)
	// Candidates are the live peers that could be warmed.
	Candidates() []Candidate
	// AskPeer sends req to peer over ProtocolID and returns its answer.
	AskPeer(ctx context.Context, peer string, req PeerRequest) (*PeerResponse, error)
}

// Resolver resolves image references (oci.Resolver).
type Resolver interface {
	Resolve(ctx context.Context, ref oci.Ref, p oci.Platform) (*oci.Image, error)
}

// Config configures a Manager. Zero fields take the defaults.
type Config struct {
	Backend  Backend
	Resolver Resolver
	// QueryFilter is the tracker's (content.DefaultQueryFilter if nil): the
	// URL task IDs must be the ones daemons derive.
	QueryFilter []string
	Logger      *slog.Logger

	// MaxJobs is how many jobs are kept; the oldest finished ones are
	// dropped first (default 200).
	MaxJobs int
	// MaxActive is how many jobs may be pending or running; more are
	// refused with ErrBusy (default 32).
	MaxActive int
	// MaxRunning is how many jobs run at once; the rest wait, pending
	// (default 4).
	MaxRunning int
	// MaxSeeds bounds the seed fetches preheat runs at once, over all jobs
	// (default 3): each is itself OriginParallel ranged requests, so a
	// 50-layer image reads at most MaxSeeds*OriginParallel ranges at a time.
	MaxSeeds int
	// MaxPeerCalls bounds concurrent calls to peers over all jobs (default 64).
	MaxPeerCalls int
	// JobTimeout ends a job (failed) after this long (default 2h).
	JobTimeout time.Duration
	// PeerWait is how long a peer call waits for the peer's downloads
	// before it answers (default 20s).
	PeerWait time.Duration
	// PeerFailures is how many calls in a row may fail before a peer is
	// given up (default 3).
	PeerFailures int
	// Poll is how often seed progress is sampled (default 500ms).
	Poll time.Duration
}

// ErrBusy is returned by Submit when MaxActive jobs are unfinished.
var ErrBusy = errors.New("too many preheat jobs pending or running; try again later")

// BadRequestError marks a request the caller must fix.
type BadRequestError struct{ Err error }

func (e *BadRequestError) Error() string { return e.Err.Error() }
func (e *BadRequestError) Unwrap() error { return e.Err }

// Manager runs preheat jobs and keeps their state in memory. Jobs live as
// long as the Manager (the tracker process); they are not persisted.
type Manager struct {
	cfg      Config
	log      *slog.Logger
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	running  *fifo // job slots, granted in submission order
	seeds    chan struct{}
	peerCall chan struct{}

	mu   sync.Mutex
	jobs map[string]*job
	seq  []string // job IDs, oldest first
}

type job struct {
	req   *parsed
	place chan struct{} // its place in the running queue, taken at Submit
	mu    sync.Mutex
	v     Job
	tg    []Target
}

func (j *job) view() Job {
	j.mu.Lock()
	defer j.mu.Unlock()
	v := j.v
	v.Items = slices.Clone(j.v.Items)
	v.Chosen = slices.Clone(j.v.Chosen)
	return v
}

func (j *job) update(fn func(v *Job)) {
	j.mu.Lock()
	defer j.mu.Unlock()
	fn(&j.v)
}

// New returns a Manager; Close stops its jobs.
func New(cfg Config) *Manager {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&cfg.MaxJobs, 200)
	def(&cfg.MaxActive, 32)
	def(&cfg.MaxRunning, 4)
	def(&cfg.MaxSeeds, 3)
	def(&cfg.MaxPeerCalls, 64)
	def(&cfg.PeerFailures, 3)
	if cfg.JobTimeout <= 0 {
		cfg.JobTimeout = 2 * time.Hour
	}
	if cfg.PeerWait <= 0 {
		cfg.PeerWait = DefaultPeerWait * time.Millisecond
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 500 * time.Millisecond
	}
	if cfg.QueryFilter == nil {
		cfg.QueryFilter = content.DefaultQueryFilter
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := &Manager{cfg: cfg, log: cfg.Logger.With("component", "preheat"), jobs: map[string]*job{},
		running: newFIFO(cfg.MaxRunning), seeds: make(chan struct{}, cfg.MaxSeeds),
		peerCall: make(chan struct{}, cfg.MaxPeerCalls)}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	return m
}

// Close cancels the jobs under way and waits for them.
func (m *Manager) Close() {
	m.cancel()
	m.wg.Wait()
}

// Submit checks req and starts a job for it. Errors are *BadRequestError
// for a bad request, ErrBusy, or the Manager being closed.
func (m *Manager) Submit(req Request) (Job, error) {
	p, err := req.check(m.cfg.QueryFilter)
	if err != nil {
		return Job{}, &BadRequestError{err}
	}
	if p.ref.Registry != "" && m.cfg.Resolver == nil {
		return Job{}, &BadRequestError{errors.New("image preheat is not available on this tracker")}
	}
	var idb [8]byte
	_, _ = rand.Read(idb[:])
	j := &job{req: p, v: Job{ID: hex.EncodeToString(idb[:]), State: StatePending, Created: time.Now().UTC(), Items: []Item{}}}
	if !p.count.Zero() {
		j.v.Peers = p.count.String()
	}
	if p.URL != "" {
		j.v.Kind, j.v.Target = "url", content.RedactURL(p.URL)
	} else {
		j.v.Kind, j.v.Target, j.v.Platform = "image", p.ref.String(), p.platform.String()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx.Err() != nil {
		return Job{}, errors.New("preheat: shutting down")
	}
	active := 0
	for _, o := range m.jobs {
		if !o.view().State.Done() {
			active++
		}
	}
	if active >= m.cfg.MaxActive {
		return Job{}, ErrBusy
	}
	m.jobs[j.v.ID] = j
	m.seq = append(m.seq, j.v.ID)
	m.pruneLocked()
	j.place = m.running.take()
	m.wg.Add(1)
	go m.run(j)
	m.log.Info("preheat job submitted", "job", j.v.ID, "kind", j.v.Kind, "target", j.v.Target, "peers", j.v.Peers)
	return j.view(), nil
}

// pruneLocked drops the oldest finished jobs beyond MaxJobs.
func (m *Manager) pruneLocked() {
	for i := 0; len(m.jobs) > m.cfg.MaxJobs && i < len(m.seq); {
		id := m.seq[i]
		if m.jobs[id].view().State.Done() {
			delete(m.jobs, id)
			m.seq = slices.Delete(m.seq, i, i+1)
			continue
		}
		i++
	}
}

// Get returns one job.
func (m *Manager) Get(id string) (Job, bool) {
	m.mu.Lock()
	j, ok := m.jobs[id]
	m.mu.Unlock()
	if !ok {
		return Job{}, false
	}
	return j.view(), true
}

// List returns the jobs, newest first.
func (m *Manager) List() []Job {
	m.mu.Lock()
	js := make([]*job, 0, len(m.seq))
	for i := len(m.seq) - 1; i >= 0; i-- {
		js = append(js, m.jobs[m.seq[i]])
	}
	m.mu.Unlock()
	out := make([]Job, len(js))
	for i, j := range js {
		out[i] = j.view()
	}
	return out
}

func acquire(ctx context.Context, sem chan struct{}) bool {
	select {
	case sem <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (m *Manager) run(j *job) {
	defer m.wg.Done()
	ctx, cancel := context.WithTimeoutCause(m.ctx, m.cfg.JobTimeout, fmt.Errorf("preheat job timed out after %s", m.cfg.JobTimeout))
	defer cancel()
	err := m.runJob(ctx, j)
	now := time.Now().UTC()
	j.update(func(v *Job) {
		v.Finished = &now
		if err == nil {
			for _, it := range v.Items {
				if it.Error != "" {
					err = fmt.Errorf("%s: %s", it.Name, it.Error)
					break
				}
			}
		}
		if err != nil {
			v.State, v.Error = StateFailed, err.Error()
		} else {
			v.State = StateSucceeded
		}
	})
	v := j.view()
	if err != nil {
		m.log.Warn("preheat job failed", "job", v.ID, "target", v.Target, "err", err)
	} else {
		m.log.Info("preheat job succeeded", "job", v.ID, "target", v.Target, "items", len(v.Items), "peers", len(v.Chosen))
	}
}

func (m *Manager) runJob(ctx context.Context, j *job) error {
	if !m.running.wait(ctx, j.place) {
		return cause(ctx)
	}
	defer m.running.release()
	now := time.Now().UTC()
	j.update(func(v *Job) { v.State, v.Started = StateRunning, &now })

	targets, items, err := m.targets(ctx, j)
	if err != nil {
		return err
	}
	j.mu.Lock()
	j.tg, j.v.Items = targets, items
	j.mu.Unlock()

	// 1. The seed fetches every item, at most MaxSeeds at once tracker-wide.
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			if !acquire(ctx, m.seeds) {
				j.update(func(v *Job) { v.Items[i].Error = "seed: " + cause(ctx).Error() })
				return
			}
			defer func() { <-m.seeds }()
			m.seedOne(ctx, j, i, t)
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return cause(ctx)
	}

	// 2. Chosen peers fetch the items the seed holds.
	if j.req.count.Zero() {
		return nil
	}
	var ready []int
	for i, it := range j.view().Items {
		if it.SeedDone {
			ready = append(ready, i)
		}
	}
	if len(ready) == 0 {
		return nil
	}
	cands := m.cfg.Backend.Candidates()
	chosen := Select(cands, j.req.count.Of(len(cands)), j.v.ID)
	if len(chosen) == 0 {
		return fmt.Errorf("asked to warm %s peers, but no live peer is known to the tracker", j.req.count)
	}
	j.update(func(v *Job) {
		for _, c := range chosen {
			v.Chosen = append(v.Chosen, c.ID)
		}
		for _, i := range ready {
			v.Items[i].PeersAsked = len(chosen)
		}
	})
	for _, c := range chosen {
		wg.Go(func() { m.warmPeer(ctx, j, c.ID, ready) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return cause(ctx)
	}
	return nil
}

func cause(ctx context.Context) error {
	if c := context.Cause(ctx); c != nil {
		return c
	}
	return ctx.Err()
}

// targets resolves the job into what the seed fetches, with the task IDs
// pulls use: a URL's content.TaskIDFor, an image blob's digest.
func (m *Manager) targets(ctx context.Context, j *job) ([]Target, []Item, error) {
	p := j.req
	if p.URL != "" {
		id, err := content.TaskIDFor(p.URL, p.Tag, p.Digest, m.cfg.QueryFilter)
		if err != nil {
			return nil, nil, err
		}
		return []Target{{Task: id, URL: p.URL, Header: p.header, Digest: p.Digest, Tag: p.Tag}},
			[]Item{{Name: content.RedactURL(p.URL), Task: id}}, nil
	}
	img, err := m.cfg.Resolver.Resolve(ctx, p.ref, p.platform)
	if err != nil {
		return nil, nil, fmt.Errorf("resolving %s: %w", p.ref, err)
	}
	j.update(func(v *Job) { v.Manifest = img.ManifestDigest })
	var ts []Target
	var its []Item
	for _, b := range img.Blobs() {
		id, err := content.ParseDigest(b.Digest)
		if err != nil {
			return nil, nil, err
		}
		ts = append(ts, Target{Task: id, URL: b.URL, Header: img.Header, Digest: b.Digest})
		its = append(its, Item{Name: b.Digest, Task: id, BytesTotal: b.Size})
	}
	return ts, its, nil
}

// seedOne runs the seed's fetch of item i, sampling its progress.
func (m *Manager) seedOne(ctx context.Context, j *job, i int, t Target) {
	done := make(chan error, 1)
	go func() { done <- m.cfg.Backend.Seed(ctx, t) }()
	tk := time.NewTicker(m.cfg.Poll)
	defer tk.Stop()
	sample := func() {
		d, total := m.cfg.Backend.SeedProgress(t.Task)
		j.update(func(v *Job) {
			if total > 0 {
				v.Items[i].BytesDone, v.Items[i].BytesTotal = d, total
			}
		})
	}
	for {
		select {
		case <-tk.C:
			sample()
		case err := <-done:
			sample()
			j.update(func(v *Job) {
				if err != nil {
					v.Items[i].Error = "seed: " + err.Error()
					return
				}
				v.Items[i].SeedDone = true
				v.Items[i].BytesDone = v.Items[i].BytesTotal
			})
			return
		}
	}
}

// warmPeer asks peer to fetch the items and follows it until each is
// complete or failed. Each call waits up to PeerWait on the peer's side;
// PeerFailures failed calls in a row give the peer up.
func (m *Manager) warmPeer(ctx context.Context, j *job, peer string, items []int) {
	pending := slices.Clone(items)
	failures := 0
	var lastErr error
	fail := func(msg string) {
		j.update(func(v *Job) {
			for _, i := range pending {
				if v.Items[i].Error == "" {
					v.Items[i].Error = fmt.Sprintf("peer %s: %s", shortPeer(peer), msg)
				}
			}
		})
	}
	for len(pending) > 0 {
		req := PeerRequest{WaitMs: m.cfg.PeerWait.Milliseconds()}
		j.mu.Lock()
		for _, i := range pending {
			req.Items = append(req.Items, j.tg[i].peerItem())
		}
		j.mu.Unlock()
		start := time.Now()
		var resp *PeerResponse
		var err error
		if acquire(ctx, m.peerCall) {
			resp, err = m.cfg.Backend.AskPeer(ctx, peer, req)
			<-m.peerCall
		}
		if ctx.Err() != nil {
			fail(cause(ctx).Error())
			return
		}
		if err == nil && resp.Error != "" {
			err = errors.New(resp.Error)
		}
		if err == nil && len(resp.Tasks) != len(req.Items) {
			err = fmt.Errorf("answered %d tasks for %d items", len(resp.Tasks), len(req.Items))
		}
		if err != nil {
			failures++
			lastErr = err
			m.log.Debug("preheat: peer call failed", "job", j.v.ID, "peer", peer, "err", err)
			if failures >= m.cfg.PeerFailures {
				fail(lastErr.Error())
				return
			}
		} else {
			failures = 0
			var still []int
			j.update(func(v *Job) {
				for k, i := range pending {
					pt := resp.Tasks[k]
					switch {
					case pt.Task != j.tg[i].Task:
						v.Items[i].Error = fmt.Sprintf("peer %s: answered task %s for %s", shortPeer(peer), pt.Task.Short(), j.tg[i].Task.Short())
					case pt.Complete:
						v.Items[i].PeersDone++
					case pt.Error != "":
						if v.Items[i].Error == "" {
							v.Items[i].Error = fmt.Sprintf("peer %s: %s", shortPeer(peer), pt.Error)
						}
					default:
						still = append(still, i)
					}
				}
			})
			pending = still
		}
		// A peer that answers at once (or fails fast) is not asked again
		// for a second.
		if len(pending) > 0 {
			if wait := time.Second - time.Since(start); wait > 0 {
				select {
				case <-time.After(wait):
				case <-ctx.Done():
				}
			}
		}
	}
}

func shortPeer(p string) string {
	if len(p) > 12 {
		return "…" + p[len(p)-8:]
	}
	return p
}
