package swarm

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"

	"github.com/dfp2p/dfp2p/cdn"
	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/exchange"
	"github.com/dfp2p/dfp2p/node"
	"github.com/dfp2p/dfp2p/store"
)

// Finder finds peers that may hold a task (for example DHT providers). The
// peers it returns are only candidates: each is asked what it holds.
type Finder interface {
	FindProviders(ctx context.Context, task content.TaskID, max int) ([]peer.AddrInfo, error)
}

// Request names one download.
type Request struct {
	Task content.TaskID
	// URL is recorded in the store with the task (normalised, without
	// signature query parameters, as cdn records it); it is never read.
	// It may be empty.
	URL string
	// Digest, if set, is the expected whole-file sha256 in hex ("sha256:"
	// prefix allowed). A mismatch fails the download with
	// cdn.ErrDigestMismatch and drops the task.
	Digest string
}

var (
	// ErrNoProviders: no provider answered that it holds any of the task.
	ErrNoProviders = errors.New("swarm: no provider holds the task")
	// ErrStalled: providers were found, but no piece was stored for the stall
	// timeout. Pieces stored so far stay in the store; a later Fetch (or a
	// cdn fetch) resumes from them.
	ErrStalled = errors.New("swarm: download stalled")
	// ErrManifestMismatch: every piece matched its CID, but the manifest
	// built from them differs from the one providers sent.
	ErrManifestMismatch = errors.New("swarm: content does not match the providers' manifest")
)

// Defaults.
const (
	DefaultStallTimeout  = 15 * time.Second
	DefaultStarveTimeout = 6 * time.Second
	DefaultMaxConcurrent = 16
	DefaultRefresh       = 2 * time.Second
	DefaultLookupTimeout = 5 * time.Second
	DefaultMaxProviders  = 20
)

const (
	// refsPerStream is how many pieces one exchange stream carries
	// (pipelined), as the daemon does.
	refsPerStream = 4
	// pollParallel bounds the status queries (with their dials) at once.
	pollParallel = 8
	// lookupRetryPause is the wait before the one retry of the first lookup.
	lookupRetryPause = 300 * time.Millisecond
	// hashBufSize is the read size when hashing the file back.
	hashBufSize = 1 << 20
)

type config struct {
	log           *slog.Logger
	stall         time.Duration
	starve        time.Duration
	maxConcurrent int
	refresh       time.Duration
	lookup        time.Duration
	counter       func(peer.ID, int64)
	failed        func(peer.ID, error, bool) // WithFailureObserver
	maxProviders  int
	picker        []PickerOption
	// checkManifest vets a provider's manifest (its signature); a manifest
	// that fails is ignored and the provider counts as a partial one.
	checkManifest func(*exchange.Status) error
	// patient: the first lookup keeps retrying until the lookup timeout
	// instead of once (FetchOrElect waits for an elected reader's first
	// pieces).
	patient bool
}

// Option configures New.
type Option func(*config)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.log = l
		}
	}
}

// WithStallTimeout sets how long Fetch waits without any piece stored before
// it fails with ErrStalled (default DefaultStallTimeout).
func WithStallTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.stall = d
		}
	}
}

// WithStarveTimeout sets how long the providers may hold none of the missing
// pieces (nothing in flight, nothing to ask for, after status refreshes)
// before Fetch gives up with ErrStalled (default DefaultStarveTimeout). It
// ends a download early when the providers are themselves stuck on the same
// pieces (a tracker died under all of them), so the caller reads the rest
// from the origin; a provider still filling in (an elected origin reader)
// keeps it going with every refresh.
func WithStarveTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.starve = d
		}
	}
}

// WithManifestCheck makes the fetcher use a provider's manifest only if fn
// accepts it (in a closed cluster: the seed's signature verifies against the
// cluster CA). Other providers' manifests are ignored; their pieces are
// still used, each verified against its CID, and the manifest is then built
// from the pieces.
func WithManifestCheck(fn func(*exchange.Status) error) Option {
	return func(c *config) { c.checkManifest = fn }
}

// WithMaxConcurrent bounds the pieces in flight at once, over all providers
// (default DefaultMaxConcurrent).
func WithMaxConcurrent(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.maxConcurrent = n
		}
	}
}

// WithRefresh sets how often providers are looked up again and their
// statuses polled again (default DefaultRefresh): partial providers gain
// pieces meanwhile, new ones appear, and those that stop answering are
// dropped.
func WithRefresh(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.refresh = d
		}
	}
}

// WithLookupTimeout bounds the first lookup with its status queries (and its
// one retry), and each later lookup, status query and dial (default
// DefaultLookupTimeout).
func WithLookupTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.lookup = d
		}
	}
}

// WithByteCounter registers fn, called with the provider and the bytes of
// each piece stored from it. It is called from the goroutine running Fetch.
func WithByteCounter(fn func(from peer.ID, n int64)) Option {
	return func(c *config) { c.counter = fn }
}

// WithMaxProviders bounds the providers asked per lookup (default
// DefaultMaxProviders).
func WithMaxProviders(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.maxProviders = n
		}
	}
}

// WithPickerOptions passes options to each download's Picker (per-peer limit,
// backoff).
func WithPickerOptions(opts ...PickerOption) Option {
	return func(c *config) { c.picker = append(c.picker, opts...) }
}

// Fetcher downloads tasks from providers. It is safe for concurrent use for
// different tasks; like cdn.Fetcher it does not stop two concurrent Fetch
// calls for the same task.
type Fetcher struct {
	h      host.Host
	xc     *exchange.Client
	w      cdn.PieceWriter
	finder Finder
	cfg    config
}

// New returns a Fetcher that finds providers with f, talks to them from h
// through xc and writes pieces into w.
func New(h host.Host, xc *exchange.Client, w cdn.PieceWriter, f Finder, opts ...Option) *Fetcher {
	cfg := config{
		log:           slog.New(slog.DiscardHandler),
		stall:         DefaultStallTimeout,
		starve:        DefaultStarveTimeout,
		maxConcurrent: DefaultMaxConcurrent,
		refresh:       DefaultRefresh,
		lookup:        DefaultLookupTimeout,
		maxProviders:  DefaultMaxProviders,
	}
	for _, o := range opts {
		o(&cfg)
	}
	return &Fetcher{h: h, xc: xc, w: w, finder: f, cfg: cfg}
}

var fetchSeq atomic.Uint64

// Fetch downloads req.Task from providers into the PieceWriter, completes it
// there and returns its manifest. Pieces already held are not fetched again.
// It fails with ErrNoProviders when no provider holds any of the task, with
// ErrStalled when no piece arrives for the stall timeout, with
// cdn.ErrDigestMismatch or ErrManifestMismatch when the result does not match
// (see the package doc), and with ctx's error when ctx ends. obs may be nil;
// its calls follow the cdn.Observer contract and are made from the goroutine
// running Fetch. Every goroutine Fetch starts has returned when it returns.
func (f *Fetcher) Fetch(ctx context.Context, req Request, obs cdn.Observer) (*content.Manifest, error) {
	if !req.Task.Valid() {
		return nil, fmt.Errorf("swarm: invalid task id %q", req.Task)
	}
	digest := strings.ToLower(strings.TrimPrefix(req.Digest, "sha256:"))
	if digest != "" && !content.TaskID(digest).Valid() {
		return nil, fmt.Errorf("swarm: invalid digest %q: want 64 hex characters", req.Digest)
	}
	var norm string
	if req.URL != "" {
		var err error
		if norm, err = content.NormalizeURL(req.URL, content.DefaultQueryFilter); err != nil {
			return nil, fmt.Errorf("swarm: invalid URL %s: %w", content.RedactURL(req.URL), err)
		}
	}
	if obs == nil {
		obs = nopObserver{}
	}
	d := &download{
		f:        f,
		task:     req.Task,
		url:      norm,
		digest:   digest,
		obs:      obs,
		log:      f.cfg.log.With("task", req.Task.Short()),
		tag:      fmt.Sprintf("dfp2p-swarm-%s-%d", req.Task.Short(), fetchSeq.Add(1)),
		provs:    make(map[peer.ID]*prov),
		bad:      make(map[peer.ID]bool),
		warned:   make(map[peer.ID]bool),
		inflight: make(map[int]int),
		results:  make(chan pieceResult, f.cfg.maxConcurrent),
		polls:    make(chan *pollRound, 1),
	}
	ctx, cancel := context.WithCancel(ctx)
	start := time.Now()
	m, err := d.run(ctx)
	cancel()
	d.wg.Wait()
	for id := range d.provs {
		node.Unprotect(f.h, id, d.tag)
	}
	if err != nil {
		level := slog.LevelInfo
		if errors.Is(err, ErrNoProviders) {
			level = slog.LevelDebug // the common case before a fallback
		}
		d.log.Log(context.Background(), level, "swarm: fetch failed", "err", err, "elapsed", time.Since(start))
		return nil, err
	}
	d.log.Info("swarm: fetch done", "length", m.Length, "pieces", len(m.Pieces), "elapsed", time.Since(start))
	return m, nil
}

type nopObserver struct{}

func (nopObserver) Started(content.TaskID, int64, int64) {}
func (nopObserver) Piece(content.TaskID, int, cid.Cid)   {}

// download is the state of one Fetch. Everything but wg and the channels is
// owned by the goroutine running Fetch.
type download struct {
	f      *Fetcher
	task   content.TaskID
	url    string
	digest string
	obs    cdn.Observer
	log    *slog.Logger
	tag    string // connection-manager protection tag

	length    int64
	pieceSize int64
	n         int
	want      []cid.Cid // the CID each piece must have (Undef: nobody claimed it yet)
	got       []cid.Cid // CIDs of the pieces held
	manifest  *content.Manifest
	root      cid.Cid
	picker    *Picker

	provs    map[peer.ID]*prov
	bad      map[peer.ID]bool // sent a bad piece: never asked again
	warned   map[peer.ID]bool // a disagreement was logged
	inflight map[int]int      // piece -> streams fetching it
	running  int              // refs handed to fetch goroutines, results not yet seen

	wg      sync.WaitGroup
	results chan pieceResult
	polls   chan *pollRound
}

// prov is a provider in use.
type prov struct {
	info peer.AddrInfo
	cids []cid.Cid // its last claims, Undef where it holds nothing
}

type pieceResult struct {
	ref   exchange.PieceRef
	peer  peer.ID
	bytes int64
	err   error
}

// localError marks a failure of the PieceWriter that is not the provider's
// fault (disk full, store closed): it ends the download.
type localError struct{ err error }

func (e *localError) Error() string { return e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

var errDial = errors.New("swarm: cannot reach provider")

func (d *download) run(ctx context.Context) (*content.Manifest, error) {
	round, err := d.firstLookup(ctx)
	if err != nil {
		return nil, err
	}
	if err := d.setup(round); err != nil {
		return nil, err
	}
	if err := d.loop(ctx); err != nil {
		return nil, err
	}
	return d.finish(ctx)
}

// pollRound is the outcome of one lookup: the providers asked and, for each,
// its validated status or why there is none.
type pollRound struct {
	peers   []peer.AddrInfo
	status  []*exchange.Status
	errs    []error
	findErr error
}

func (r *pollRound) useful() bool {
	for _, s := range r.status {
		if s != nil {
			return true
		}
	}
	return false
}

func (r *pollRound) summary() string {
	if r.findErr != nil && len(r.peers) == 0 {
		return fmt.Sprintf("lookup failed: %v", r.findErr)
	}
	notFound, failed := 0, 0
	var last error
	for _, err := range r.errs {
		switch {
		case err == nil:
		case errors.Is(err, exchange.ErrNotFound):
			notFound++
		default:
			failed++
			last = err
		}
	}
	s := fmt.Sprintf("%d providers found, %d without the task, %d not answering", len(r.peers), notFound, failed)
	if last != nil {
		s += fmt.Sprintf(" (last error: %v)", last)
	}
	return s
}

// firstLookup finds providers and asks them for their status, once more after
// a short pause if none holds anything (until the lookup timeout when
// patient), all within the lookup timeout.
func (d *download) firstLookup(ctx context.Context) (*pollRound, error) {
	lctx, cancel := context.WithTimeout(ctx, d.f.cfg.lookup)
	defer cancel()
	for attempt := 0; ; attempt++ {
		round := lookup(lctx, d.f, d.task, nil, nil)
		if round.useful() {
			return round, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("swarm: %s: %w", d.task.Short(), context.Cause(ctx))
		}
		if (attempt > 0 && !d.f.cfg.patient) || lctx.Err() != nil {
			return nil, fmt.Errorf("%w: task %s: %s", ErrNoProviders, d.task.Short(), round.summary())
		}
		d.log.Debug("swarm: no provider yet; retrying", "why", round.summary())
		t := time.NewTimer(min(lookupRetryPause<<min(attempt, 2), time.Second))
		select {
		case <-t.C:
		case <-lctx.Done():
		}
		t.Stop()
	}
}

// lookup asks the Finder for providers and polls known (first) and the new
// ones, at most maxProviders, skipping self and skip. It touches no download
// state, so it may run on its own goroutine.
func lookup(ctx context.Context, f *Fetcher, task content.TaskID, known []peer.AddrInfo, skip map[peer.ID]bool) *pollRound {
	round := &pollRound{}
	// The lookup may take at most half the time: the polls need the rest.
	fctx, cancel := context.WithTimeout(ctx, f.cfg.lookup/2)
	found, err := f.finder.FindProviders(fctx, task, f.cfg.maxProviders)
	cancel()
	round.findErr = err
	seen := make(map[peer.ID]int)
	add := func(ai peer.AddrInfo) {
		if ai.ID == "" || ai.ID == f.h.ID() || skip[ai.ID] {
			return
		}
		if i, ok := seen[ai.ID]; ok {
			round.peers[i].Addrs = append(round.peers[i].Addrs, ai.Addrs...)
			return
		}
		if len(round.peers) >= f.cfg.maxProviders {
			return
		}
		seen[ai.ID] = len(round.peers)
		round.peers = append(round.peers, peer.AddrInfo{ID: ai.ID, Addrs: append(ai.Addrs[:0:0], ai.Addrs...)})
	}
	for _, ai := range known {
		add(ai)
	}
	for _, ai := range found {
		add(ai)
	}
	round.status = make([]*exchange.Status, len(round.peers))
	round.errs = make([]error, len(round.peers))
	sem := make(chan struct{}, pollParallel)
	var wg sync.WaitGroup
	for i, ai := range round.peers {
		if len(ai.Addrs) > 0 {
			f.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.TempAddrTTL)
		}
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				round.errs[i] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			round.status[i], round.errs[i] = poll(ctx, f, task, ai.ID)
			if st := round.status[i]; st != nil && len(st.Manifest) > 0 && f.cfg.checkManifest != nil {
				if err := f.cfg.checkManifest(st); err != nil {
					f.cfg.log.Warn("swarm: ignoring a provider's manifest", "peer", ai.ID, "task", task.Short(), "err", err)
					st.Manifest, st.Signer, st.Sig = nil, nil, nil
				}
			}
		})
	}
	wg.Wait()
	return round
}

// poll connects to p and asks for its status, within the lookup timeout.
func poll(ctx context.Context, f *Fetcher, task content.TaskID, p peer.ID) (*exchange.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, f.cfg.lookup)
	defer cancel()
	if err := f.h.Connect(ctx, peer.AddrInfo{ID: p}); err != nil {
		return nil, fmt.Errorf("%w %s: %v", errDial, p, err)
	}
	return f.xc.Status(ctx, p, task)
}

// setup fixes the geometry and the trusted manifest from the first round,
// begins the task in the store, announces what is held and builds the picker.
func (d *download) setup(round *pollRound) error {
	d.length, d.pieceSize = chooseGeometry(round)
	d.n = content.NumPieces(d.length, d.pieceSize)
	d.want = make([]cid.Cid, d.n)
	var m *content.Manifest
	for _, st := range round.status {
		if st != nil && len(st.Manifest) > 0 && st.Length == d.length && st.PieceSize == d.pieceSize {
			if pm, err := st.ParseManifest(); err == nil {
				m = pm
				break
			}
		}
	}
	if err := d.begin(); err != nil {
		return err
	}
	d.loadHeld()
	if m != nil {
		var stale []int
		for i, c := range d.got {
			if c.Defined() && !c.Equals(m.Pieces[i]) {
				stale = append(stale, i)
			}
		}
		if len(stale) > 0 {
			d.log.Warn("swarm: pieces held locally disagree with the providers' manifest; starting the task over",
				"pieces", len(stale), "first", stale[0])
			if err := d.f.w.Drop(d.task); err != nil {
				return fmt.Errorf("swarm: dropping stale task %s: %w", d.task.Short(), err)
			}
			if err := d.begin(); err != nil {
				return err
			}
			d.loadHeld()
		}
		d.adopt(m)
	}
	held := make([]bool, d.n)
	for i, c := range d.got {
		if c.Defined() {
			held[i] = true
			d.want[i] = c
		}
	}
	d.obs.Started(d.task, d.length, d.pieceSize)
	for i, c := range d.got {
		if c.Defined() {
			d.obs.Piece(d.task, i, c)
		}
	}
	d.picker = NewPicker(d.n, held, rand.Int64(), d.f.cfg.picker...)
	d.apply(round)
	return nil
}

// chooseGeometry returns the geometry of the first manifest holder, else the
// most common one (the earliest on a tie).
func chooseGeometry(round *pollRound) (length, pieceSize int64) {
	type geo struct{ length, pieceSize int64 }
	votes := map[geo]int{}
	var order []geo
	for _, st := range round.status {
		if st == nil {
			continue
		}
		g := geo{st.Length, st.PieceSize}
		if len(st.Manifest) > 0 {
			return g.length, g.pieceSize
		}
		if votes[g] == 0 {
			order = append(order, g)
		}
		votes[g]++
	}
	best := order[0]
	for _, g := range order[1:] {
		if votes[g] > votes[best] {
			best = g
		}
	}
	return best.length, best.pieceSize
}

// begin records the task in the store; a local task with other geometry is
// stale and is dropped first (as cdn does).
func (d *download) begin() error {
	w := d.f.w
	have := w.Have(d.task)
	if have != nil && len(have) != d.n {
		d.log.Info("swarm: local task has other geometry; starting over")
		if err := w.Drop(d.task); err != nil {
			return fmt.Errorf("swarm: dropping stale task %s: %w", d.task.Short(), err)
		}
		have = nil
	}
	err := w.Begin(d.task, d.url, d.length, d.pieceSize)
	if err != nil && have != nil {
		d.log.Info("swarm: local task has other geometry; starting over", "err", err)
		if err := w.Drop(d.task); err != nil {
			return fmt.Errorf("swarm: dropping stale task %s: %w", d.task.Short(), err)
		}
		err = w.Begin(d.task, d.url, d.length, d.pieceSize)
	}
	if err != nil {
		return fmt.Errorf("swarm: beginning task %s: %w", d.task.Short(), err)
	}
	return nil
}

// loadHeld reads which pieces the store holds, with their CIDs.
func (d *download) loadHeld() {
	d.got = make([]cid.Cid, d.n)
	for i, ok := range d.f.w.Have(d.task) {
		if !ok || i >= d.n {
			continue
		}
		if c, ok := d.f.w.PieceCID(d.task, i); ok && c.Defined() {
			d.got[i] = c
		}
	}
}

// adopt makes m authoritative for every piece not held or in flight.
func (d *download) adopt(m *content.Manifest) {
	d.manifest = m
	d.root, _ = m.CID()
	for i, c := range m.Pieces {
		if !d.got[i].Defined() && d.inflight[i] == 0 {
			d.want[i] = c
		}
	}
	d.log.Debug("swarm: using the providers' manifest", "root", d.root)
}

// apply takes in the statuses of a round: new providers, new holdings,
// providers gone.
func (d *download) apply(round *pollRound) {
	for i, ai := range round.peers {
		id := ai.ID
		if d.bad[id] {
			continue
		}
		st := round.status[i]
		if st == nil {
			if _, ok := d.provs[id]; ok {
				d.log.Debug("swarm: provider dropped", "peer", id, "err", round.errs[i])
				d.dropProv(id)
			}
			continue
		}
		if st.Length != d.length || st.PieceSize != d.pieceSize {
			if !d.warned[id] {
				d.warned[id] = true
				d.log.Warn("swarm: provider disagrees on the task's geometry; not using it", "peer", id,
					"length", st.Length, "piece_size", st.PieceSize, "want_length", d.length, "want_piece_size", d.pieceSize)
			}
			d.dropProv(id)
			continue
		}
		cids, err := st.PieceCIDs()
		if err != nil { // cannot happen: the client validated it
			d.dropProv(id)
			continue
		}
		if len(st.Manifest) > 0 && d.manifest == nil {
			if m, err := st.ParseManifest(); err == nil {
				d.tryAdopt(id, m)
			}
		}
		p := d.provs[id]
		if p == nil {
			p = &prov{}
			d.provs[id] = p
			node.Protect(d.f.h, id, d.tag)
			d.log.Debug("swarm: provider added", "peer", id, "pieces", len(st.CIDs))
		}
		p.info, p.cids = ai, cids
		d.updatePeer(id)
	}
}

// tryAdopt adopts a manifest first seen mid-download if it agrees with every
// piece held or in flight.
func (d *download) tryAdopt(from peer.ID, m *content.Manifest) {
	for i, c := range m.Pieces {
		if d.got[i].Defined() && !d.got[i].Equals(c) || d.inflight[i] > 0 && !d.want[i].Equals(c) {
			if !d.warned[from] {
				d.warned[from] = true
				d.log.Warn("swarm: provider's manifest disagrees with pieces already fetched; not adopting it", "peer", from, "piece", i)
			}
			return
		}
	}
	d.adopt(m)
	for id := range d.provs {
		d.updatePeer(id)
	}
}

// updatePeer tells the picker which pieces id may serve: those it holds with
// the CID we want (the first claim fixes an unclaimed piece's CID).
func (d *download) updatePeer(id peer.ID) {
	p := d.provs[id]
	usable := make([]bool, d.n)
	conflicts, first := 0, -1
	for i, c := range p.cids {
		if !c.Defined() {
			continue
		}
		if !d.want[i].Defined() {
			d.want[i] = c
		}
		if d.want[i].Equals(c) {
			usable[i] = true
		} else if conflicts++; first < 0 {
			first = i
		}
	}
	if conflicts > 0 && !d.warned[id] {
		d.warned[id] = true
		d.log.Warn("swarm: provider claims other CIDs than trusted ones; not asking it for those pieces",
			"peer", id, "pieces", conflicts, "first", first, "claimed", p.cids[first], "want", d.want[first])
	}
	d.picker.PeerHas(string(id), usable)
}

func (d *download) dropProv(id peer.ID) {
	if _, ok := d.provs[id]; !ok {
		return
	}
	d.picker.PeerGone(string(id))
	delete(d.provs, id)
	node.Unprotect(d.f.h, id, d.tag)
}

// loop fetches pieces until all are held.
func (d *download) loop(ctx context.Context) error {
	cfg := d.f.cfg
	refresh := time.NewTicker(cfg.refresh)
	defer refresh.Stop()
	stall := time.NewTimer(cfg.stall)
	defer stall.Stop()
	wake := time.NewTimer(time.Hour)
	defer wake.Stop()
	polling := false
	var starving time.Time // since when nothing could be fetched
	for !d.picker.Complete() {
		now := time.Now()
		d.dispatch(ctx, now)
		at, ok := d.picker.WakeAt(now)
		if ok {
			wake.Reset(at.Sub(now))
		} else {
			wake.Reset(time.Hour)
		}
		switch {
		case ok || d.picker.InFlight() > 0:
			starving = time.Time{}
		case starving.IsZero():
			starving = now
		case now.Sub(starving) >= cfg.starve:
			return fmt.Errorf("%w: task %s: for %v the providers held none of the %d missing pieces (%d providers)",
				ErrStalled, d.task.Short(), cfg.starve, d.picker.Missing(), len(d.provs))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("swarm: %s: %w", d.task.Short(), context.Cause(ctx))
		case r := <-d.results:
			stored, err := d.handle(r)
			if err != nil {
				return err
			}
			if stored {
				stall.Reset(cfg.stall)
			}
		case round := <-d.polls:
			polling = false
			d.apply(round)
		case <-refresh.C:
			if !polling {
				polling = true
				d.startRefresh(ctx)
			}
		case <-stall.C:
			return fmt.Errorf("%w: task %s: no piece stored for %v; %d of %d pieces missing, %d providers in use",
				ErrStalled, d.task.Short(), cfg.stall, d.picker.Missing(), d.n, len(d.provs))
		case <-wake.C:
		}
	}
	return nil
}

// startRefresh looks providers up again and polls them in the background;
// the round comes back on d.polls.
func (d *download) startRefresh(ctx context.Context) {
	known := make([]peer.AddrInfo, 0, len(d.provs))
	for _, p := range d.provs {
		known = append(known, p.info)
	}
	skip := make(map[peer.ID]bool, len(d.bad))
	for id := range d.bad {
		skip[id] = true
	}
	d.wg.Go(func() {
		rctx, cancel := context.WithTimeout(ctx, d.f.cfg.lookup)
		round := lookup(rctx, d.f, d.task, known, skip)
		cancel()
		select {
		case d.polls <- round:
		case <-ctx.Done():
		}
	})
}

// dispatch starts fetches for the picks the free slots allow.
func (d *download) dispatch(ctx context.Context, now time.Time) {
	free := d.f.cfg.maxConcurrent - d.running
	if free <= 0 {
		return
	}
	picks := d.picker.Next(free, now)
	if len(picks) == 0 {
		return
	}
	groups := map[string][]exchange.PieceRef{}
	var order []string
	for _, pk := range picks {
		if _, ok := groups[pk.Peer]; !ok {
			order = append(order, pk.Peer)
		}
		groups[pk.Peer] = append(groups[pk.Peer], exchange.PieceRef{Task: d.task, Index: pk.Piece, CID: d.want[pk.Piece]})
		d.inflight[pk.Piece]++
		d.running++
	}
	for _, name := range order {
		refs := groups[name]
		for len(refs) > 0 {
			k := min(refsPerStream, len(refs))
			batch := refs[:k:k]
			refs = refs[k:]
			pid := peer.ID(name)
			d.wg.Go(func() { d.fetchFrom(ctx, pid, batch) })
		}
	}
}

// fetchFrom fetches refs from pid on one stream and reports each result.
func (d *download) fetchFrom(ctx context.Context, pid peer.ID, refs []exchange.PieceRef) {
	send := func(r pieceResult) {
		select {
		case d.results <- r:
		case <-ctx.Done():
		}
	}
	cctx, cancel := context.WithTimeout(ctx, d.f.cfg.lookup)
	err := d.f.h.Connect(cctx, peer.AddrInfo{ID: pid})
	cancel()
	if err != nil {
		for _, ref := range refs {
			send(pieceResult{ref: ref, peer: pid, err: fmt.Errorf("%w %s: %v", errDial, pid, err)})
		}
		return
	}
	res := d.f.xc.Fetch(ctx, pid, refs, func(ref exchange.PieceRef, body io.Reader) error {
		_, err := d.f.w.WritePiece(ref.Task, ref.Index, ref.CID, body)
		if err == nil || errors.Is(err, store.ErrBadPiece) {
			return err
		}
		return &localError{err}
	})
	for _, r := range res {
		send(pieceResult{ref: r.Ref, peer: pid, bytes: r.Bytes, err: r.Err})
	}
}

// handle takes in one piece result; it reports whether a new piece was stored.
func (d *download) handle(r pieceResult) (bool, error) {
	i := r.ref.Index
	d.running--
	if d.inflight[i]--; d.inflight[i] <= 0 {
		delete(d.inflight, i)
	}
	if r.err == nil {
		d.picker.Done(i)
		if d.got[i].Defined() {
			return false, nil
		}
		d.got[i] = r.ref.CID
		d.obs.Piece(d.task, i, r.ref.CID)
		if d.f.cfg.counter != nil {
			d.f.cfg.counter(r.peer, r.bytes)
		}
		return true, nil
	}
	var le *localError
	if errors.As(r.err, &le) {
		return false, fmt.Errorf("swarm: storing piece %d of %s: %w", i, d.task.Short(), le.err)
	}
	bad := errors.Is(r.err, store.ErrBadPiece)
	d.picker.Failed(i, string(r.peer), bad, time.Now())
	if d.f.cfg.failed != nil {
		d.f.cfg.failed(r.peer, r.err, bad && !d.bad[r.peer])
	}
	if bad && !d.bad[r.peer] {
		d.bad[r.peer] = true
		d.log.Warn("swarm: provider sent a bad piece; not using it again", "peer", r.peer, "piece", i, "err", r.err)
		d.dropProv(r.peer)
	} else if !bad {
		d.log.Debug("swarm: piece fetch failed", "peer", r.peer, "piece", i, "err", r.err)
	}
	return false, nil
}

// finish builds the manifest from the store, checks it and completes the task.
func (d *download) finish(ctx context.Context) (*content.Manifest, error) {
	w := d.f.w
	cids := make([]cid.Cid, d.n)
	for i := range cids {
		c, ok := w.PieceCID(d.task, i)
		if !ok {
			return nil, fmt.Errorf("swarm: piece %d of %s missing from the store after download", i, d.task.Short())
		}
		cids[i] = c
	}
	sum, err := d.hashFile(ctx)
	if err != nil {
		return nil, err
	}
	m := &content.Manifest{
		Version:   content.ManifestVersion,
		TaskID:    d.task,
		Length:    d.length,
		PieceSize: d.pieceSize,
		Pieces:    cids,
		SHA256:    sum,
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("swarm: %w", err)
	}
	if d.digest != "" && sum != d.digest {
		if err := w.Drop(d.task); err != nil {
			d.log.Warn("swarm: dropping task", "err", err)
		}
		return nil, fmt.Errorf("%w: want %s, providers sent %s", cdn.ErrDigestMismatch, d.digest, sum)
	}
	if d.manifest != nil {
		if root, _ := m.CID(); !root.Equals(d.root) {
			return nil, fmt.Errorf("%w: task %s: built %s, providers sent %s (sha256 %s, theirs %s)",
				ErrManifestMismatch, d.task.Short(), root, d.root, sum, d.manifest.SHA256)
		}
	}
	if err := w.Complete(d.task, m); err != nil {
		return nil, fmt.Errorf("swarm: completing task %s: %w", d.task.Short(), err)
	}
	return m, nil
}

// hashFile streams the task back from the store through sha256.
func (d *download) hashFile(ctx context.Context) (string, error) {
	r, err := d.f.w.NewReader(d.task, 0)
	if err != nil {
		return "", fmt.Errorf("swarm: reading back %s: %w", d.task.Short(), err)
	}
	defer r.Close()
	h := content.NewHasher()
	buf := make([]byte, hashBufSize)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return "", fmt.Errorf("swarm: %s: %w", d.task.Short(), context.Cause(ctx))
		}
		k, err := r.Read(buf)
		h.Write(buf[:k])
		n += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", fmt.Errorf("swarm: reading back %s: %w", d.task.Short(), err)
		}
	}
	if n != d.length {
		return "", fmt.Errorf("swarm: reading back %s: %d bytes, want %d", d.task.Short(), n, d.length)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
