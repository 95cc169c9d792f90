package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dfp2p/dfp2p/content"
	"github.com/ipfs/go-cid"
	bolt "go.etcd.io/bbolt"
)

var (
	// ErrBadPiece means bytes did not match the expected CID or length, or a
	// held piece disagrees with a manifest.
	ErrBadPiece = errors.New("store: bad piece")
	// ErrNotFound means the task is unknown or the piece is not held.
	ErrNotFound = errors.New("store: not found")
	// ErrInvalid means an argument was malformed (task ID, index, geometry).
	ErrInvalid = errors.New("store: invalid argument")
	// ErrInUse means the task is active (Acquire, a write or a reader) and
	// cannot be deleted.
	ErrInUse = errors.New("store: task in use")
	// ErrIncomplete is returned by Complete when pieces are missing.
	ErrIncomplete = errors.New("store: task incomplete")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("store: closed")
)

const (
	metaFile  = "meta.db"
	tasksDir  = "tasks"
	trashDir  = "trash"
	tmpSuffix = ".tmp"

	bufSize = 256 << 10
	// accessPersistEvery bounds how stale a persisted LastAccess may be.
	accessPersistEvery = time.Minute
	// maxURLLen bounds the URL kept in a task record.
	maxURLLen = 16 << 10
)

var (
	bucketTasks     = []byte("tasks")
	bucketManifests = []byte("manifests")
	bucketMeta      = []byte("meta")
	keySchema       = []byte("schema")
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

type options struct {
	ttl       time.Duration
	high, low float64
	quota     int64
	now       func() time.Time
	sync      bool
	log       *slog.Logger
	events    func(Event)
	encKey    []byte
	encCipher string
}

// Option configures Open.
type Option func(*options)

// WithTTL sets how long an unpinned, inactive task may go without access
// before GC removes it (default 24h). d <= 0 disables TTL removal.
func WithTTL(d time.Duration) Option { return func(o *options) { o.ttl = d } }

// WithWatermarks sets the disk-use fractions for GC (default 0.80/0.60): when
// use is above high, least-recently-used unpinned inactive tasks are removed
// until use is at or below low. Open fails unless 0 <= low <= high <= 1;
// high = 1 disables watermark removal.
func WithWatermarks(high, low float64) Option {
	return func(o *options) { o.high, o.low = high, low }
}

// WithQuota makes the watermarks relative to bytes instead of the size of the
// filesystem holding dir; use is then the bytes held by the store. 0 (default)
// uses the filesystem (statfs): use is everything used on it, not only ours.
func WithQuota(bytes int64) Option { return func(o *options) { o.quota = bytes } }

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.now = now
		}
	}
}

// WithSync sets whether piece files are fsynced before they are renamed into
// place (default true).
func WithSync(sync bool) Option { return func(o *options) { o.sync = sync } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// EventKind says what happened to a task.
type EventKind int

// Event kinds.
const (
	// EventPiece: a verified piece was stored. Held is the count afterwards,
	// so Held == 1 marks the first piece of the task.
	EventPiece EventKind = iota + 1
	// EventComplete: the manifest was stored; Root is its CID.
	EventComplete
	// EventRemoved: the task and its pieces were deleted (GC or DeleteTask).
	EventRemoved
)

// Event is a change to the store's contents, for announcing them (the DHT
// provides what the store holds).
type Event struct {
	Kind EventKind
	Task content.TaskID
	Held int     // EventPiece
	Root cid.Cid // EventComplete
}

// WithEvents calls fn after every change in Event. fn runs synchronously on
// the writer's goroutine, outside the store's locks: it must return quickly
// and must not call back into the store's write path.
func WithEvents(fn func(Event)) Option { return func(o *options) { o.events = fn } }

func (s *Store) emit(e Event) {
	if s.opts.events != nil {
		s.opts.events(e)
	}
}

// Task is a snapshot of a task's record and derived piece counts.
type Task struct {
	ID         content.TaskID
	URL        string
	Length     int64
	PieceSize  int64
	Manifest   []byte // encoded manifest, set by Complete; Tasks leaves it nil
	Complete   bool
	Pinned     bool
	CreatedAt  time.Time
	LastAccess time.Time
	Bytes      int64 // bytes of pieces held (derived)
	Pieces     int   // number of pieces (derived from Length/PieceSize)
	Held       int   // number held (derived)
}

// record is what bbolt holds per task.
type record struct {
	URL        string    `json:"url"`
	Length     int64     `json:"length"`
	PieceSize  int64     `json:"piece_size"`
	Complete   bool      `json:"complete,omitempty"`
	Pinned     bool      `json:"pinned,omitempty"`
	CreatedAt  time.Time `json:"created"`
	LastAccess time.Time `json:"access"`
}

type taskState struct {
	rec             record
	n               int
	pieces          []cid.Cid // cid.Undef where not held
	held            int
	bytes           int64
	persistedAccess time.Time
	// changed is closed (and replaced) whenever a piece is added or the task
	// goes away; readers waiting for a piece select on it.
	changed chan struct{}
}

func (ts *taskState) notify() {
	close(ts.changed)
	ts.changed = make(chan struct{})
}

// Store holds pieces and task records under one directory.
type Store struct {
	dir   string
	opts  options
	db    *bolt.DB
	crypt *crypter // nil: piece files are plain

	// dbMu serialises record writes and task creation/removal; it is taken
	// before mu, never while holding mu.
	dbMu   sync.Mutex
	gcMu   sync.Mutex
	mu     sync.Mutex
	closed bool
	tasks  map[content.TaskID]*taskState
	active map[content.TaskID]int
	usage  int64
	gcm    gcMetrics
}

// Open opens (creating if needed) the store in dir, rebuilding the index of
// held pieces from the task dirs.
func Open(dir string, opts ...Option) (*Store, error) {
	o := options{
		ttl:  24 * time.Hour,
		high: 0.80, low: 0.60,
		now:  time.Now,
		sync: true,
		log:  slog.New(slog.DiscardHandler),
	}
	for _, opt := range opts {
		opt(&o)
	}
	if !(0 <= o.low && o.low <= o.high && o.high <= 1) {
		return nil, fmt.Errorf("%w: watermarks high=%v low=%v (want 0 <= low <= high <= 1)", ErrInvalid, o.high, o.low)
	}
	if o.quota < 0 {
		return nil, fmt.Errorf("%w: negative quota", ErrInvalid)
	}
	if dir == "" {
		return nil, fmt.Errorf("%w: empty dir", ErrInvalid)
	}
	var crypt *crypter
	if o.encKey != nil || o.encCipher != "" {
		c, err := newCrypter(o.encKey, o.encCipher)
		if err != nil {
			return nil, err
		}
		crypt = c
	}
	o.encKey = nil
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{dir, filepath.Join(dir, tasksDir), filepath.Join(dir, trashDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	if err := emptyDir(filepath.Join(dir, trashDir)); err != nil {
		return nil, fmt.Errorf("store: emptying trash: %w", err)
	}
	db, err := bolt.Open(filepath.Join(dir, metaFile), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("store: opening %s (in use by another process?): %w", filepath.Join(dir, metaFile), err)
	}
	s := &Store{
		dir:    dir,
		opts:   o,
		db:     db,
		crypt:  crypt,
		tasks:  make(map[content.TaskID]*taskState),
		active: make(map[content.TaskID]int),
		gcm:    newGCMetrics(),
	}
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// load reads the records and scans the task dirs.
func (s *Store) load() error {
	var bad [][]byte
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := checkSchema(tx); err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(bucketManifests); err != nil {
			return err
		}
		b, err := tx.CreateBucketIfNotExists(bucketTasks)
		if err != nil {
			return err
		}
		err = b.ForEach(func(k, v []byte) error {
			id := content.TaskID(k)
			var r record
			if err := json.Unmarshal(v, &r); err != nil || !id.Valid() || validGeometry(r.Length, r.PieceSize) != nil {
				bad = append(bad, append([]byte(nil), k...))
				return nil
			}
			if r.Complete && tx.Bucket(bucketManifests).Get(k) == nil {
				r.Complete = false
			}
			n := content.NumPieces(r.Length, r.PieceSize)
			s.tasks[id] = &taskState{
				rec:             r,
				n:               n,
				pieces:          make([]cid.Cid, n),
				persistedAccess: r.LastAccess,
				changed:         make(chan struct{}),
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range bad {
			s.opts.log.Warn("store: dropping unreadable task record", "key", fmt.Sprintf("%q", k))
			if err := b.Delete(k); err != nil {
				return err
			}
			if err := tx.Bucket(bucketManifests).Delete(k); err != nil {
				return err
			}
		}
		// Manifests without a task record are dropped too.
		var orphans [][]byte
		if err := tx.Bucket(bucketManifests).ForEach(func(k, _ []byte) error {
			if s.tasks[content.TaskID(k)] == nil {
				orphans = append(orphans, append([]byte(nil), k...))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range orphans {
			if err := tx.Bucket(bucketManifests).Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: reading %s: %w", metaFile, err)
	}

	root := filepath.Join(s.dir, tasksDir)
	ents, err := os.ReadDir(root)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	for _, e := range ents {
		id := content.TaskID(e.Name())
		if !id.Valid() || s.tasks[id] == nil || !e.IsDir() {
			s.opts.log.Warn("store: removing task dir without a record", "name", e.Name())
			if err := os.RemoveAll(filepath.Join(root, e.Name())); err != nil {
				return fmt.Errorf("store: %w", err)
			}
		}
	}
	for id, ts := range s.tasks {
		if err := s.scanTask(id, ts); err != nil {
			return err
		}
		s.usage += ts.bytes
	}
	return nil
}

// scanTask rebuilds one task's have-index from its dir.
func (s *Store) scanTask(id content.TaskID, ts *taskState) error {
	dir := s.taskDir(id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	dup := make(map[int]bool)
	remove := func(name, why string) error {
		s.opts.log.Warn("store: removing file", "task", id.Short(), "name", name, "why", why)
		return os.RemoveAll(filepath.Join(dir, name))
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, tmpSuffix) {
			if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
				return fmt.Errorf("store: %w", err)
			}
			continue
		}
		idx, c, ok := parsePieceName(name)
		var why string
		switch {
		case !ok || !e.Type().IsRegular():
			why = "not a piece file"
		case idx >= ts.n:
			why = "index out of range"
		}
		if why == "" {
			info, err := e.Info()
			if err != nil {
				return fmt.Errorf("store: %w", err)
			}
			_, n := content.PieceRange(ts.rec.Length, ts.rec.PieceSize, idx)
			if why, err = s.pieceFileProblem(id, idx, n, filepath.Join(dir, name), info.Size()); err != nil {
				return err
			}
		}
		if why == "" && ts.pieces[idx].Defined() {
			dup[idx] = true
			why = "duplicate index"
		}
		if why != "" {
			if err := remove(name, why); err != nil {
				return fmt.Errorf("store: %w", err)
			}
			continue
		}
		ts.pieces[idx] = c
	}
	for idx := range dup {
		if err := remove(pieceName(idx, ts.pieces[idx]), "duplicate index"); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		ts.pieces[idx] = cid.Undef
	}
	for i, c := range ts.pieces {
		if c.Defined() {
			_, n := content.PieceRange(ts.rec.Length, ts.rec.PieceSize, i)
			ts.held++
			ts.bytes += n
		}
	}
	if ts.rec.Complete && ts.held != ts.n {
		// Pieces went missing while we were down: the task is no longer
		// complete. The manifest stays; Complete can be called again.
		ts.rec.Complete = false
	}
	return nil
}

// pieceFileProblem says why the file at path, of the given size, cannot be
// piece idx (n bytes) of task id, or "" if it can. Without encryption only
// the size is looked at (a file of the plain size is never opened here); with
// encryption the header is read and authenticated, but not the segments.
func (s *Store) pieceFileProblem(id content.TaskID, idx int, n int64, path string, size int64) (string, error) {
	if s.crypt == nil {
		if size == n {
			return "", nil
		}
		if size == encodedSize(n) && hasMagic(path) {
			return "encrypted piece file in a store opened without encryption", nil
		}
		return fmt.Sprintf("size %d, want %d", size, n), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("store: %w", err)
	}
	defer f.Close()
	_, err = s.crypt.openReader(f, id, idx, n)
	var bad *badFileError
	if errors.As(err, &bad) {
		return bad.msg, nil
	}
	return "", err
}

func pieceName(idx int, c cid.Cid) string { return strconv.Itoa(idx) + "-" + c.String() }

// parsePieceName accepts only the exact names pieceName produces.
func parsePieceName(name string) (int, cid.Cid, bool) {
	a, b, ok := strings.Cut(name, "-")
	if !ok {
		return 0, cid.Undef, false
	}
	idx, err := strconv.Atoi(a)
	if err != nil || idx < 0 || strconv.Itoa(idx) != a {
		return 0, cid.Undef, false
	}
	c, err := cid.Decode(b)
	if err != nil || c.String() != b {
		return 0, cid.Undef, false
	}
	if _, err := content.SHA256Of(c); err != nil {
		return 0, cid.Undef, false
	}
	return idx, c, true
}

func emptyDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// Close flushes pending access times and closes the metadata database. Readers
// and files already handed out stay usable; other calls fail with ErrClosed.
func (s *Store) Close() error {
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	type pending struct {
		id  content.TaskID
		rec record
	}
	var dirty []pending
	for id, ts := range s.tasks {
		if !ts.rec.LastAccess.Equal(ts.persistedAccess) {
			dirty = append(dirty, pending{id, ts.rec})
		}
		ts.notify() // wake waiting readers; they will see ErrClosed
	}
	s.mu.Unlock()
	var errs []error
	if len(dirty) > 0 {
		errs = append(errs, s.db.Update(func(tx *bolt.Tx) error {
			for _, p := range dirty {
				if err := putRecord(tx, p.id, p.rec); err != nil {
					return err
				}
			}
			return nil
		}))
	}
	errs = append(errs, s.db.Close())
	return errors.Join(errs...)
}

func putRecord(tx *bolt.Tx, id content.TaskID, r record) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketTasks).Put([]byte(id), v)
}

func (s *Store) taskDir(id content.TaskID) string {
	return filepath.Join(s.dir, tasksDir, string(id))
}

func (s *Store) piecePath(id content.TaskID, idx int, c cid.Cid) string {
	return filepath.Join(s.taskDir(id), pieceName(idx, c))
}

func checkID(id content.TaskID) error {
	if !id.Valid() {
		return fmt.Errorf("%w: task id %q", ErrInvalid, truncate(string(id), 80))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func validGeometry(length, pieceSize int64) error {
	if length < 0 {
		return fmt.Errorf("%w: negative length %d", ErrInvalid, length)
	}
	if pieceSize < content.MinValidPieceSize || pieceSize > content.MaxValidPieceSize || pieceSize&(pieceSize-1) != 0 {
		return fmt.Errorf("%w: piece size %d", ErrInvalid, pieceSize)
	}
	if n := content.NumPieces(length, pieceSize); n < 0 || n > content.MaxPieces {
		return fmt.Errorf("%w: %d pieces exceeds limit %d", ErrInvalid, n, content.MaxPieces)
	}
	return nil
}

// snapshot builds a Task from state; mu must be held.
func (s *Store) snapshot(id content.TaskID, ts *taskState) Task {
	return Task{
		ID:         id,
		URL:        ts.rec.URL,
		Length:     ts.rec.Length,
		PieceSize:  ts.rec.PieceSize,
		Complete:   ts.rec.Complete,
		Pinned:     ts.rec.Pinned,
		CreatedAt:  ts.rec.CreatedAt,
		LastAccess: ts.rec.LastAccess,
		Bytes:      ts.bytes,
		Pieces:     ts.n,
		Held:       ts.held,
	}
}

// persist writes the task's current record, if it still exists.
func (s *Store) persist(id content.TaskID) error {
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	ts := s.tasks[id]
	if ts == nil {
		s.mu.Unlock()
		return nil
	}
	rec := ts.rec
	s.mu.Unlock()
	if err := s.db.Update(func(tx *bolt.Tx) error { return putRecord(tx, id, rec) }); err != nil {
		return fmt.Errorf("store: writing record: %w", err)
	}
	s.mu.Lock()
	if ts := s.tasks[id]; ts != nil && rec.LastAccess.After(ts.persistedAccess) {
		ts.persistedAccess = rec.LastAccess
	}
	s.mu.Unlock()
	return nil
}

// touchLocked sets LastAccess to now and reports whether the record should be
// written; mu must be held.
func (s *Store) touchLocked(ts *taskState) bool {
	now := s.opts.now()
	if now.After(ts.rec.LastAccess) {
		ts.rec.LastAccess = now
	}
	d := ts.rec.LastAccess.Sub(ts.persistedAccess)
	return d >= accessPersistEvery || d <= -accessPersistEvery
}

// EnsureTask creates the task if it is missing and returns it. If it exists
// with another length or piece size, it returns an ErrInvalid error. Either
// way the task's access time is updated.
func (s *Store) EnsureTask(id content.TaskID, url string, length, pieceSize int64) (Task, error) {
	if err := checkID(id); err != nil {
		return Task{}, err
	}
	if err := validGeometry(length, pieceSize); err != nil {
		return Task{}, err
	}
	if len(url) > maxURLLen {
		return Task{}, fmt.Errorf("%w: URL longer than %d bytes", ErrInvalid, maxURLLen)
	}
	s.dbMu.Lock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.dbMu.Unlock()
		return Task{}, ErrClosed
	}
	if ts := s.tasks[id]; ts != nil {
		if ts.rec.Length != length || ts.rec.PieceSize != pieceSize {
			s.mu.Unlock()
			s.dbMu.Unlock()
			return Task{}, fmt.Errorf("%w: task %s exists with length %d piece size %d, not %d/%d",
				ErrInvalid, id.Short(), ts.rec.Length, ts.rec.PieceSize, length, pieceSize)
		}
		write := s.touchLocked(ts)
		t := s.snapshot(id, ts)
		s.mu.Unlock()
		s.dbMu.Unlock()
		if write {
			if err := s.persist(id); err != nil {
				s.opts.log.Warn("store: persisting access time", "task", id.Short(), "err", err)
			}
		}
		return t, nil
	}
	now := s.opts.now()
	s.mu.Unlock()
	defer s.dbMu.Unlock()

	rec := record{URL: url, Length: length, PieceSize: pieceSize, CreatedAt: now, LastAccess: now}
	if err := s.db.Update(func(tx *bolt.Tx) error { return putRecord(tx, id, rec) }); err != nil {
		return Task{}, fmt.Errorf("store: writing record: %w", err)
	}
	if err := os.MkdirAll(s.taskDir(id), 0o700); err != nil {
		return Task{}, fmt.Errorf("store: %w", err)
	}
	n := content.NumPieces(length, pieceSize)
	ts := &taskState{rec: rec, n: n, pieces: make([]cid.Cid, n), persistedAccess: now, changed: make(chan struct{})}
	s.mu.Lock()
	s.tasks[id] = ts
	t := s.snapshot(id, ts)
	s.mu.Unlock()
	return t, nil
}

// Task returns one task, including its manifest if complete.
func (s *Store) Task(id content.TaskID) (Task, error) {
	if err := checkID(id); err != nil {
		return Task{}, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return Task{}, ErrClosed
	}
	ts := s.tasks[id]
	if ts == nil {
		s.mu.Unlock()
		return Task{}, fmt.Errorf("%w: task %s", ErrNotFound, id.Short())
	}
	t := s.snapshot(id, ts)
	s.mu.Unlock()
	m, err := s.manifest(id)
	if err != nil {
		return Task{}, err
	}
	t.Manifest = m
	return t, nil
}

// Manifest returns the encoded manifest stored by Complete, or ErrNotFound.
func (s *Store) Manifest(id content.TaskID) ([]byte, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	m, err := s.manifest(id)
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("%w: no manifest for task %s", ErrNotFound, id.Short())
	}
	return m, nil
}

func (s *Store) manifest(id content.TaskID) ([]byte, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	var m []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketManifests).Get([]byte(id)); v != nil {
			m = append([]byte(nil), v...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: reading manifest: %w", err)
	}
	return m, nil
}

// Tasks lists all tasks sorted by ID. Manifest is left nil to keep this cheap;
// use Task or Manifest for it.
func (s *Store) Tasks() ([]Task, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	out := make([]Task, 0, len(s.tasks))
	for id, ts := range s.tasks {
		out = append(out, s.snapshot(id, ts))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// lockedTask validates id, takes s.mu and returns the task's state with s.mu
// held. On error s.mu is not held.
func (s *Store) lockedTask(id content.TaskID) (*taskState, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	ts := s.tasks[id]
	if ts == nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: task %s", ErrNotFound, id.Short())
	}
	return ts, nil
}

// Touch marks the task as accessed now.
func (s *Store) Touch(id content.TaskID) error {
	ts, err := s.lockedTask(id)
	if err != nil {
		return err
	}
	write := s.touchLocked(ts)
	s.mu.Unlock()
	if write {
		return s.persist(id)
	}
	return nil
}

// SetPinned pins or unpins a task; GC never removes pinned tasks.
func (s *Store) SetPinned(id content.TaskID, pinned bool) error {
	ts, err := s.lockedTask(id)
	if err != nil {
		return err
	}
	ts.rec.Pinned = pinned
	s.mu.Unlock()
	return s.persist(id)
}

// Acquire marks a task active until release is called (release is
// idempotent). GC and DeleteTask never remove an active task. The task need
// not exist yet, so a caller can acquire before EnsureTask. An invalid ID
// yields a no-op release.
func (s *Store) Acquire(id content.TaskID) (release func()) {
	if !id.Valid() {
		return func() {}
	}
	s.mu.Lock()
	s.active[id]++
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			if s.active[id]--; s.active[id] <= 0 {
				delete(s.active, id)
			}
			s.mu.Unlock()
		})
	}
}

// DeleteTask removes the task's pieces and record. It fails with ErrInUse
// while the task is active.
func (s *Store) DeleteTask(id content.TaskID) error {
	if err := checkID(id); err != nil {
		return err
	}
	_, err := s.removeTask(id, nil)
	return err
}

// removeTask deletes a task if it is inactive and cond (checked under the
// lock) allows it. It returns the bytes freed.
func (s *Store) removeTask(id content.TaskID, cond func(*taskState) error) (int64, error) {
	s.dbMu.Lock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.dbMu.Unlock()
		return 0, ErrClosed
	}
	ts := s.tasks[id]
	if ts == nil {
		s.mu.Unlock()
		s.dbMu.Unlock()
		return 0, fmt.Errorf("%w: task %s", ErrNotFound, id.Short())
	}
	if s.active[id] > 0 {
		s.mu.Unlock()
		s.dbMu.Unlock()
		return 0, fmt.Errorf("%w: task %s", ErrInUse, id.Short())
	}
	if cond != nil {
		if err := cond(ts); err != nil {
			s.mu.Unlock()
			s.dbMu.Unlock()
			return 0, err
		}
	}
	trash, err := os.MkdirTemp(filepath.Join(s.dir, trashDir), string(id)+"-")
	if err == nil {
		err = os.Rename(s.taskDir(id), filepath.Join(trash, "t"))
		if errors.Is(err, os.ErrNotExist) {
			err = nil
		}
	}
	if err != nil {
		s.mu.Unlock()
		s.dbMu.Unlock()
		if trash != "" {
			os.RemoveAll(trash)
		}
		return 0, fmt.Errorf("store: deleting task %s: %w", id.Short(), err)
	}
	delete(s.tasks, id)
	s.usage -= ts.bytes
	ts.notify()
	s.mu.Unlock()

	dbErr := s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketTasks).Delete([]byte(id)); err != nil {
			return err
		}
		return tx.Bucket(bucketManifests).Delete([]byte(id))
	})
	s.dbMu.Unlock()
	s.emit(Event{Kind: EventRemoved, Task: id})
	rmErr := os.RemoveAll(trash)
	if err := errors.Join(dbErr, rmErr); err != nil {
		// The task is gone from the index and its dir from tasks/; leftovers
		// are cleaned at the next Open.
		s.opts.log.Warn("store: cleanup after deleting task", "task", id.Short(), "err", err)
	}
	return ts.bytes, nil
}

// Usage is the number of bytes held by all tasks' pieces.
func (s *Store) Usage() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.usage
}
