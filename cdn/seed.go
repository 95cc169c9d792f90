package cdn

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/dfp2p/dfp2p/content"
)

// ErrClosed is the error of jobs started on, or cancelled by, a closed Seed.
var ErrClosed = errors.New("cdn: seed closed")

// Seed runs at most one origin fetch per task at a time in this process: the
// tracker calls Start for every registration and all of them share one Job.
type Seed struct {
	f          *Fetcher
	swarm      Swarm
	obs        Observer
	log        *slog.Logger
	jobTimeout time.Duration
	failedTTL  time.Duration

	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	jobs   map[content.TaskID]*Job
	closed bool
}

// NewSeed returns a Seed that fetches with f and reports to obs (may be nil).
func NewSeed(f *Fetcher, obs Observer, opts ...SeedOption) *Seed {
	if obs == nil {
		obs = nopObserver{}
	}
	s := &Seed{
		f:          f,
		obs:        obs,
		log:        slog.New(slog.DiscardHandler),
		jobTimeout: DefaultJobTimeout,
		failedTTL:  failedJobTTL,
		jobs:       make(map[content.TaskID]*Job),
	}
	for _, o := range opts {
		o.applySeed(s)
	}
	s.ctx, s.cancel = context.WithCancelCause(context.Background())
	return s
}

// Job is one origin fetch of a task, shared by everyone who asked for it.
type Job struct {
	task    content.TaskID
	started chan struct{} // closed when the geometry is known or the job ended
	done    chan struct{}

	mu        sync.Mutex
	isStarted bool
	length    int64
	pieceSize int64

	// Set before done is closed.
	manifest *content.Manifest
	err      error
	finished time.Time
}

// Start returns the job for req.Task: the running one, the finished one, or a
// new one if there is none or the last one failed more than about two seconds
// ago. A failed job is kept that long so that a burst of peers sees the same
// error instead of each refetching. Finished jobs are kept until Forget.
func (s *Seed) Start(req Request) *Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	if j := s.jobs[req.Task]; j != nil {
		select {
		case <-j.done:
			if j.err == nil || time.Since(j.finished) < s.failedTTL {
				return j
			}
		default:
			return j
		}
	}
	j := &Job{task: req.Task, started: make(chan struct{}), done: make(chan struct{})}
	if s.closed {
		j.finish(nil, ErrClosed)
		return j
	}
	s.jobs[req.Task] = j
	s.wg.Add(1)
	go s.run(j, req)
	return j
}

// Swarm is where a Seed looks before the origin: other seeds and peers that
// hold the task (another region's seed, found through the DHT). Fetch stores
// the task through the same PieceWriter as the origin Fetcher and reports to
// obs like it. It fails when they cannot supply the task; the seed then reads
// the origin, which resumes from the pieces Fetch stored.
type Swarm interface {
	Fetch(ctx context.Context, req Request, obs Observer) (*content.Manifest, error)
}

// WithSwarm makes the seed try sw before the origin for every job.
func WithSwarm(sw Swarm) SeedOption { return seedOption(func(s *Seed) { s.swarm = sw }) }

func (s *Seed) run(j *Job, req Request) {
	defer s.wg.Done()
	ctx, cancel := context.WithTimeoutCause(s.ctx, s.jobTimeout, errors.New("cdn: seed job timed out"))
	defer cancel()
	obs := &jobObserver{j: j, next: s.obs}
	if s.swarm != nil {
		m, err := s.swarm.Fetch(ctx, req, obs)
		if err == nil || ctx.Err() != nil {
			j.finish(m, err)
			return
		}
		s.log.Info("cdn: peers cannot supply the task; reading the origin", "task", req.Task.Short(), "reason", err)
	}
	m, err := s.f.Fetch(ctx, req, obs)
	if err != nil {
		s.log.Warn("cdn: seed job failed", "task", req.Task.Short(), "err", err)
	}
	j.finish(m, err)
}

// Forget removes a finished job, so that the next Start fetches again (for
// example after the task was garbage-collected from the store). A running job
// is left alone.
func (s *Seed) Forget(task content.TaskID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if j := s.jobs[task]; j != nil {
		select {
		case <-j.done:
			delete(s.jobs, task)
		default:
		}
	}
}

// Close cancels running jobs and waits for their goroutines. Later Starts
// return failed jobs.
func (s *Seed) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel(ErrClosed)
	s.wg.Wait()
	s.f.client.CloseIdleConnections()
}

func (j *Job) finish(m *content.Manifest, err error) {
	j.mu.Lock()
	j.manifest, j.err, j.finished = m, err, time.Now()
	if !j.isStarted {
		j.isStarted = true
		close(j.started)
	}
	j.mu.Unlock()
	close(j.done)
}

// Task is the job's task.
func (j *Job) Task() content.TaskID { return j.task }

// Started waits until the file's geometry is known or the job failed. An
// origin error such as a 404 comes back here as *OriginError as soon as the
// origin answers. Once the geometry is known it is returned with a nil error
// even if the job fails later; Done and Result tell the outcome.
func (j *Job) Started(ctx context.Context) (length, pieceSize int64, err error) {
	select {
	case <-j.started:
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.pieceSize == 0 {
		return 0, 0, j.err
	}
	return j.length, j.pieceSize, nil
}

// Done is closed when the job has finished.
func (j *Job) Done() <-chan struct{} { return j.done }

// Result waits for the job to finish and returns its manifest or error.
func (j *Job) Result() (*content.Manifest, error) {
	<-j.done
	return j.manifest, j.err
}

type jobObserver struct {
	j    *Job
	next Observer
}

func (o *jobObserver) Started(task content.TaskID, length, pieceSize int64) {
	// Tell the observer first, so that when Job.Started returns the task is
	// already known downstream.
	o.next.Started(task, length, pieceSize)
	o.j.mu.Lock()
	o.j.length, o.j.pieceSize = length, pieceSize
	if !o.j.isStarted {
		o.j.isStarted = true
		close(o.j.started)
	}
	o.j.mu.Unlock()
}

func (o *jobObserver) Piece(task content.TaskID, idx int, c cid.Cid) {
	o.next.Piece(task, idx, c)
}
