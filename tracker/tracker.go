package tracker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dfp2p/dfp2p/cdn"
	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/crypto/member"
	"github.com/dfp2p/dfp2p/dht"
	"github.com/dfp2p/dfp2p/exchange"
	"github.com/dfp2p/dfp2p/internal/httpapi"
	"github.com/dfp2p/dfp2p/internal/limit"
	"github.com/dfp2p/dfp2p/internal/wire"
	"github.com/dfp2p/dfp2p/node"
	"github.com/dfp2p/dfp2p/oci"
	"github.com/dfp2p/dfp2p/store"
	"github.com/dfp2p/dfp2p/tracker/preheat"
	"github.com/dfp2p/dfp2p/tracker/scheduler"
)

// Config is what a tracker process needs.
type Config struct {
	DataDir     string
	Listen      []string // libp2p multiaddrs
	API         string   // HOST:PORT of the HTTP API; "" disables it
	QueryFilter []string // query parameters dropped from URLs before hashing; nil = content.DefaultQueryFilter
	Logger      *slog.Logger
	// OriginParallel is the number of concurrent range requests per origin fetch.
	OriginParallel int
	// Scheduler overrides the scheduler's defaults when non-zero.
	Scheduler scheduler.Config
	// OriginClient is the HTTP client the seed uses (tests inject one).
	OriginClient *http.Client
	// GCInterval, TaskTTL and the watermarks govern the seed cache as they
	// do a daemon's store (defaults 15m, 24h, 0.8/0.6; GCInterval < 0 disables).
	GCInterval                  time.Duration
	TaskTTL                     time.Duration
	HighWatermark, LowWatermark float64
	// Region and Zone label this tracker's seed for the scheduler's
	// locality preference (peers send their own labels).
	Region, Zone string
	// Bootstrap lists DHT bootstrap multiaddrs (ending in /p2p/ID): other
	// regions' trackers. Through the DHT the seed finds a task another region
	// holds before it reads the origin.
	Bootstrap []string
	// NoDHT turns the DHT off: the seed always reads the origin.
	NoDHT bool
	// DHTOptions are extra options for the DHT (tests shorten timings).
	DHTOptions []dht.Option
	// Open runs an open cluster: no membership certificates, any peer may
	// register, fetch pieces and make the seed read origins. For demos.
	Open bool
	// CAKeyFile is the cluster CA's private key; by default
	// DIR/cluster-ca.key, created on first start. The trackers of a group,
	// and of the regions of one cluster, share one CA.
	CAKeyFile string
	// CertTTL is how long membership certificates last (DefaultCertTTL).
	CertTTL time.Duration
	// APICertFile and APIKeyFile serve the HTTP API over TLS when set.
	APICertFile, APIKeyFile string
	// EncryptKey (32 bytes) turns on encryption of the seed's cached pieces
	// at rest with EncryptCipher (store.Ciphers; default aes-256-gcm).
	EncryptKey    []byte
	EncryptCipher string
	// Limits are the seed's bandwidth limits (0: unlimited); PUT
	// /api/v1/limits changes them at run time.
	Limits limit.Rates
	// Security is the TCP security transport (node.SecurityChoices;
	// "" = node.DefaultSecurity).
	Security string
	// NodeOptions are extra options for the libp2p host (the simulation
	// runner supplies its UDP sockets).
	NodeOptions []node.Option
	// Host, when set, is used instead of building one (in-process
	// simulations on a simulated network). It stays the caller's: Close
	// does not close it, and Listen, Security and NodeOptions are ignored.
	Host host.Host
	// PreheatRegistries maps registry names of image references to base
	// URLs for image preheat (as the daemons' --proxy-registry);
	// PreheatAuthFile holds registry accounts (Docker config.json format).
	PreheatRegistries map[string]string
	PreheatAuthFile   string
}

// Tracker is a running tracker process: libp2p host, scheduler, seed, store,
// exchange server and HTTP API.
type Tracker struct {
	cfg     Config
	log     *slog.Logger
	h       host.Host
	st      *store.Store
	seed    *cdn.Seed
	xs      *exchange.Server
	dht     *dht.DHT
	members *member.Members
	cluster *cluster      // nil in an open cluster
	auth    *httpapi.Auth // nil in an open cluster
	api     *httpapi.Server
	self    string
	limits  *limit.Set
	m       *metrics
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu    sync.Mutex
	sched *scheduler.Scheduler
	tasks map[content.TaskID]*taskState
	addrs map[string][]string // peer -> its advertised multiaddrs

	preheat  *preheat.Manager
	resolver *oci.Resolver
	traffic  traffic // bytes delivered to peers, for the dashboard (under mu)
}

type taskState struct {
	url       string
	length    int64
	pieceSize int64
	cids      []cid.Cid
	job       *cdn.Job
	created   time.Time
	// claims holds what peers said they hold of pieces whose CID this
	// tracker does not know yet (it took the task over from another
	// tracker): a holding counts only once the seed has hashed the piece.
	claims map[string][]bool
	edges  edgeBook // bytes per parent->child edge, for the dashboard
}

// joinLocked registers peer's holdings with the scheduler, counting only
// pieces whose CID the tracker knows and remembering the rest.
func (t *Tracker) joinLocked(task content.TaskID, ts *taskState, p string, have []bool, now time.Time) error {
	var known []bool
	if have != nil {
		known = make([]bool, len(have))
		pending := false
		for i, h := range have {
			if !h {
				continue
			}
			if ts.cids[i].Defined() {
				known[i] = true
			} else {
				pending = true
			}
		}
		if pending {
			if ts.claims == nil {
				ts.claims = map[string][]bool{}
			}
			ts.claims[p] = have
		} else {
			delete(ts.claims, p)
		}
	}
	return t.sched.Join(string(task), p, false, known, now)
}

// New starts a tracker. It returns once the host listens, the HTTP API is
// serving and DIR/addrs is written.
func New(cfg Config) (*Tracker, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.QueryFilter == nil {
		cfg.QueryFilter = content.DefaultQueryFilter
	}
	t := &Tracker{
		cfg:   cfg,
		log:   cfg.Logger.With("component", "tracker"),
		tasks: map[content.TaskID]*taskState{},
		addrs: map[string][]string{},
	}
	scfg := scheduler.DefaultConfig()
	if cfg.Scheduler != (scheduler.Config{}) {
		scfg = cfg.Scheduler
	}
	t.sched = scheduler.New(scfg)
	t.ctx, t.cancel = context.WithCancel(context.Background())
	ok := false
	defer func() {
		if !ok {
			t.Close()
		}
	}()

	if cfg.GCInterval == 0 {
		cfg.GCInterval = 15 * time.Minute
	}
	relay := &dht.Relay{}
	sopts := []store.Option{store.WithLogger(t.log), store.WithEvents(relay.Event), store.WithEncryption(cfg.EncryptKey, cfg.EncryptCipher)}
	if cfg.TaskTTL > 0 {
		sopts = append(sopts, store.WithTTL(cfg.TaskTTL))
	}
	if cfg.HighWatermark > 0 && cfg.LowWatermark > 0 {
		sopts = append(sopts, store.WithWatermarks(cfg.HighWatermark, cfg.LowWatermark))
	}
	st, err := store.Open(cfg.DataDir, sopts...)
	if err != nil {
		return nil, err
	}
	t.st = st
	h := cfg.Host
	if h == nil {
		h, err = node.New(append([]node.Option{node.WithIdentityDir(cfg.DataDir), node.WithListenAddrs(cfg.Listen...),
			node.WithSecurity(cfg.Security), node.WithLogger(t.log)}, cfg.NodeOptions...)...)
		if err != nil {
			return nil, err
		}
	}
	t.h = h
	t.self = h.ID().String()
	t.m = newMetrics()
	t.limits = limit.NewSet(cfg.Limits)
	t.m.reg.MustRegister(t.limits.Collector())
	if cfg.Open {
		t.log.Warn("OPEN CLUSTER (--open): any peer may register, fetch pieces and make this tracker read origins; use it for demos only")
		if t.members, err = member.New(h, nil); err != nil {
			return nil, err
		}
	} else if err := t.startMembership(); err != nil {
		return nil, err
	}
	t.m.reg.MustRegister(t.members.Collectors()...)
	t.m.reg.MustRegister(append(st.Collectors(), node.Collectors(h)...)...)
	gated := t.members.Host()

	fopts := []cdn.Option{cdn.WithLogger(t.log), cdn.WithByteCounter(func(n int64) { t.m.bytes.WithLabelValues("origin").Add(float64(n)) }),
		cdn.WithRateLimit(t.limits.OriginGroup())}
	if cfg.OriginClient != nil {
		fopts = append(fopts, cdn.WithHTTPClient(cfg.OriginClient))
	}
	if cfg.OriginParallel > 0 {
		fopts = append(fopts, cdn.WithParallel(cfg.OriginParallel))
	}
	seedOpts := []cdn.SeedOption{cdn.WithLogger(t.log)}
	if !cfg.NoDHT {
		kd, err := relay.Start(t.ctx, gated, st, t.m.reg, cfg.Bootstrap, t.log, cfg.DHTOptions...)
		if err != nil {
			return nil, err
		}
		t.dht = kd
		kd.AdvertiseRole(trackerRole)
		seedOpts = append(seedOpts, cdn.WithSwarm(&peerSource{t: t, xc: exchange.NewClient(h, exchange.WithDownloadLimit(t.limits.Download))}))
	}
	t.seed = cdn.NewSeed(cdn.NewFetcher(st, fopts...), t, seedOpts...)
	t.xs = exchange.NewServer(gated, st, exchange.WithStatus(t.signedStatus(exchange.StoreStatus(st))),
		exchange.WithUploadObserver(func(_ peer.ID, n int64) { t.m.uploadBytes.Add(float64(n)) }), exchange.WithUploadLimit(t.limits.Upload))
	gated.SetStreamHandler(ProtocolID, t.handleStream)
	if err := t.startPreheat(); err != nil {
		return nil, err
	}

	if cfg.API != "" {
		api, err := httpapi.Listen(cfg.API, cfg.DataDir, t.apiHandler(), t.log, httpapi.WithTLS(cfg.APICertFile, cfg.APIKeyFile))
		if err != nil {
			return nil, err
		}
		t.api = api
	}
	t.wg.Add(1)
	go t.tickLoop()
	if cfg.GCInterval > 0 {
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			st.RunGC(t.ctx, cfg.GCInterval, t.forgetRemoved)
		}()
	}

	if err := node.WriteAddrsFile(filepath.Join(cfg.DataDir, "addrs"), h); err != nil {
		return nil, err
	}
	t.log.Info("tracker listening", "peer", t.self, "addrs", node.Addrs(h), "api", t.APIAddr())
	ok = true
	return t, nil
}

// Host is the tracker's libp2p host.
func (t *Tracker) Host() host.Host { return t.h }

// Addrs are the tracker's full multiaddrs.
func (t *Tracker) Addrs() []string { return node.Addrs(t.h) }

// APIAddr is the HTTP API's listen address, or "".
func (t *Tracker) APIAddr() string {
	return t.api.Addr()
}

// Registry exposes the tracker's Prometheus registry.
func (t *Tracker) Registry() *prometheus.Registry { return t.m.reg }

// Close stops everything the tracker started and waits for it.
func (t *Tracker) Close() error {
	t.cancel()
	t.api.Close()
	t.closePreheat()
	if t.h != nil {
		t.h.RemoveStreamHandler(ProtocolID)
	}
	if t.xs != nil {
		_ = t.xs.Close()
	}
	if t.seed != nil {
		t.seed.Close()
	}
	t.wg.Wait()
	if t.dht != nil {
		_ = t.dht.Close()
	}
	t.closeMembership()
	var err error
	if t.h != nil && t.cfg.Host == nil {
		err = t.h.Close()
	}
	if t.st != nil {
		err = errors.Join(err, t.st.Close())
	}
	return err
}

func (t *Tracker) tickLoop() {
	defer t.wg.Done()
	tk := time.NewTicker(time.Second)
	defer tk.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case now := <-tk.C:
			t.mu.Lock()
			for id := range t.tasks {
				// The seed is a peer like any other and must stay alive in the
				// scheduler's soft state. A nil have is a heartbeat: its
				// holdings arrive through Started and Piece.
				t.joinSeedLocked(id, nil, now)
			}
			t.sched.Tick(now)
			t.sampleTrafficLocked(now)
			t.m.tasks.Set(float64(len(t.tasks)))
			t.m.peers.Set(float64(len(t.sched.Peers())))
			t.m.blockedParents.Set(float64(t.sched.BlockedParents(now)))
			t.mu.Unlock()
			t.reloadRevocations()
		}
	}
}

// forgetRemoved drops what the tracker knows of tasks GC removed from the
// seed cache, so the next registration fetches them again.
func (t *Tracker) forgetRemoved(rep store.GCReport, _ error) {
	for _, id := range rep.Removed {
		t.seed.Forget(id)
		t.mu.Lock()
		delete(t.tasks, id)
		t.sched.RemoveTask(string(id))
		t.mu.Unlock()
	}
}

// Started implements cdn.Observer: the seed learned a task's geometry.
func (t *Tracker) Started(task content.TaskID, length, pieceSize int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ts := t.ensureTaskLocked(task, length, pieceSize)
	have := t.st.Have(task)
	for i, h := range have {
		if h && i < len(ts.cids) {
			if c, ok := t.st.PieceCID(task, i); ok {
				ts.cids[i] = c
			}
		}
	}
	t.joinSeedLocked(task, have, time.Now())
}

// joinSeedLocked joins (or heartbeats, with a nil have) the tracker's own
// seed to a task, with the tracker's locality.
func (t *Tracker) joinSeedLocked(task content.TaskID, have []bool, now time.Time) {
	if t.sched.Join(string(task), t.self, true, have, now) == nil {
		t.sched.SetLocality(string(task), t.self, scheduler.Locality{Region: t.cfg.Region, Zone: t.cfg.Zone})
	}
}

// Piece implements cdn.Observer: the seed holds piece idx.
func (t *Tracker) Piece(task content.TaskID, idx int, c cid.Cid) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ts, ok := t.tasks[task]
	if !ok || idx < 0 || idx >= len(ts.cids) {
		return
	}
	ts.cids[idx] = c
	now := time.Now()
	t.sched.Done(string(task), t.self, []int{idx}, now)
	for p, have := range ts.claims {
		if idx < len(have) && have[idx] {
			t.sched.Done(string(task), p, []int{idx}, now)
		}
	}
}

func (t *Tracker) ensureTaskLocked(task content.TaskID, length, pieceSize int64) *taskState {
	ts, ok := t.tasks[task]
	n := content.NumPieces(length, pieceSize)
	if ok && ts.length == length && ts.pieceSize == pieceSize {
		return ts
	}
	if ok {
		t.sched.RemoveTask(string(task))
	}
	ts = &taskState{length: length, pieceSize: pieceSize, cids: make([]cid.Cid, n), created: time.Now()}
	if ok {
		ts.url, ts.job = t.tasks[task].url, t.tasks[task].job
	}
	t.tasks[task] = ts
	t.sched.AddTask(string(task), n)
	return ts
}

func (t *Tracker) handleStream(s network.Stream) {
	defer s.Close()
	_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
	var req Request
	if err := wire.ReadMsg(bufio.NewReader(s), maxRequestSize, &req); err != nil {
		t.log.Debug("bad tracker request", "peer", s.Conn().RemotePeer(), "err", err)
		t.m.requests.WithLabelValues("invalid", "error").Inc()
		_ = s.Reset()
		return
	}
	_ = s.SetReadDeadline(time.Time{})
	ctx, cancel := context.WithTimeout(t.ctx, 2*time.Minute)
	defer cancel()
	resp := t.handle(ctx, s.Conn().RemotePeer(), &req)
	outcome := "ok"
	if resp.Error != "" {
		outcome = "error"
	}
	t.m.requests.WithLabelValues(requestType(req.Type), outcome).Inc()
	_ = s.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if err := wire.WriteMsg(s, resp); err != nil {
		_ = s.Reset()
	}
}

func unknownTask() *Response {
	return &Response{Error: "unknown task: register first", UnknownTask: true}
}

// seedOutcome reports, without waiting, whether the task's seed job has
// finished and with what manifest or error.
func seedOutcome(j *cdn.Job) (done bool, m *content.Manifest, err error) {
	if j == nil {
		return false, nil, nil
	}
	select {
	case <-j.Done():
		m, err := j.Result()
		return true, m, err
	default:
		return false, nil, nil
	}
}

func errResp(err error) *Response {
	var oe *cdn.OriginError
	if errors.As(err, &oe) {
		return &Response{Error: err.Error(), OriginStatus: oe.StatusCode}
	}
	return &Response{Error: err.Error()}
}

func (t *Tracker) handle(ctx context.Context, p peer.ID, req *Request) *Response {
	switch req.Type {
	case TypeRegister:
		return t.register(ctx, p, req)
	case TypeAnnounce:
		return t.announce(p, req)
	case TypeSchedule:
		return t.schedule(p, req)
	case TypeReport:
		return t.report(p, req)
	case TypeManifest:
		return t.manifest(req)
	case TypeLeave:
		t.mu.Lock()
		t.sched.Leave(string(req.Task), p.String())
		if ts, ok := t.tasks[req.Task]; ok {
			delete(ts.claims, p.String())
		}
		t.mu.Unlock()
		return &Response{Task: req.Task}
	default:
		return &Response{Error: fmt.Sprintf("unknown request type %q", req.Type)}
	}
}

func (t *Tracker) register(ctx context.Context, p peer.ID, req *Request) *Response {
	id, err := content.TaskIDFor(req.URL, req.Tag, req.Digest, t.cfg.QueryFilter)
	if err != nil {
		return errResp(err)
	}
	if err := content.CheckHeader(http.Header(req.Header)); err != nil {
		return errResp(err)
	}
	if req.Task != "" && req.Task != id {
		return &Response{Error: fmt.Sprintf("task id %s does not match the URL, tag and digest (want %s)", req.Task.Short(), id.Short())}
	}
	digest := ""
	if req.Digest != "" {
		digest = string(id)
	}
	job := t.seed.Start(cdn.Request{Task: id, URL: req.URL, Header: http.Header(req.Header), Digest: digest})
	length, pieceSize, err := job.Started(ctx)
	if err != nil {
		return errResp(err)
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	ts := t.ensureTaskLocked(id, length, pieceSize)
	ts.url, ts.job = req.URL, job
	have, err := req.Have.Bools(len(ts.cids))
	if err != nil {
		return errResp(err)
	}
	t.addrs[p.String()] = capAddrs(req.Addrs)
	// A register is a fresh start for this peer (it may have restarted):
	// drop what it had in flight so its pieces can be scheduled again.
	t.sched.Leave(string(id), p.String())
	if err := t.joinLocked(id, ts, p.String(), have, now); err != nil {
		return errResp(err)
	}
	t.sched.SetLocality(string(id), p.String(), req.locality())
	return &Response{Task: id, Length: length, PieceSize: pieceSize, Complete: jobDone(job)}
}

func capAddrs(a []string) []string {
	if len(a) > 16 {
		a = a[:16]
	}
	return a
}

// jobDone reports whether the seed finished the task successfully.
func jobDone(j *cdn.Job) bool {
	done, _, err := seedOutcome(j)
	return done && err == nil
}

func (t *Tracker) announce(p peer.ID, req *Request) *Response {
	t.mu.Lock()
	defer t.mu.Unlock()
	ts, ok := t.tasks[req.Task]
	if !ok {
		return unknownTask()
	}
	have, err := req.Have.Bools(len(ts.cids))
	if err != nil {
		return errResp(err)
	}
	if len(req.Addrs) > 0 {
		t.addrs[p.String()] = capAddrs(req.Addrs)
	}
	if err := t.joinLocked(req.Task, ts, p.String(), have, time.Now()); err != nil {
		return errResp(err)
	}
	t.sched.SetLocality(string(req.Task), p.String(), req.locality())
	return &Response{Task: req.Task, Length: ts.length, PieceSize: ts.pieceSize, Complete: jobDone(ts.job)}
}

// maxAssignments bounds one schedule answer.
const maxAssignments = 64

func (t *Tracker) schedule(p peer.ID, req *Request) *Response {
	max := req.Max
	if max <= 0 || max > maxAssignments {
		max = maxAssignments
	}
	start := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	ts, ok := t.tasks[req.Task]
	if !ok || !t.sched.Joined(string(req.Task), p.String()) {
		// Unknown task, or a peer this tracker has not registered (it took
		// the task over from a dead tracker, or the peer expired): the peer
		// must register, with what it holds, before it is scheduled.
		return unknownTask()
	}
	if _, _, err := seedOutcome(ts.job); err != nil {
		// The seed failed (origin error, digest mismatch): the task is dead
		// until someone registers it again.
		return errResp(err)
	}
	as := t.sched.Schedule(string(req.Task), p.String(), max, start)
	t.m.scheduleSeconds.Observe(time.Since(start).Seconds())
	resp := &Response{Task: req.Task, Length: ts.length, PieceSize: ts.pieceSize, Complete: jobDone(ts.job)}
	for _, a := range as {
		if a.Piece < 0 || a.Piece >= len(ts.cids) || !ts.cids[a.Piece].Defined() {
			// Cannot happen while holdings follow known CIDs; if it does,
			// release the assignment instead of leaving it in flight.
			t.sched.Failed(string(req.Task), p.String(), a.Parent, a.Piece, scheduler.FailNotFound, start)
			continue
		}
		out := Assignment{Piece: a.Piece, CID: ts.cids[a.Piece].String(), Parent: a.Parent}
		if a.Parent == t.self {
			out.Seed = true
			out.Addrs = node.Addrs(t.h)
			t.m.assignments.WithLabelValues("seed").Inc()
		} else {
			out.Addrs = t.addrs[a.Parent]
			t.m.assignments.WithLabelValues("peer").Inc()
		}
		resp.Assignments = append(resp.Assignments, out)
	}
	if len(resp.Assignments) == 0 {
		resp.RetryAfterMs = 100
	}
	return resp
}

func (t *Tracker) report(p peer.ID, req *Request) *Response {
	t.mu.Lock()
	defer t.mu.Unlock()
	ts, ok := t.tasks[req.Task]
	if !ok || !t.sched.Joined(string(req.Task), p.String()) {
		return unknownTask()
	}
	n := len(ts.cids)
	now := time.Now()
	done := make([]int, 0, len(req.Done))
	for _, i := range req.Done {
		if i >= 0 && i < n {
			done = append(done, i)
		}
	}
	t.countDoneLocked(req.Task, ts, p.String(), done)
	t.sched.Done(string(req.Task), p.String(), done, now)
	t.m.reported.WithLabelValues("done").Add(float64(len(done)))
	for _, f := range req.Failed {
		if f.Piece < 0 || f.Piece >= n || f.Parent == "" {
			continue
		}
		t.sched.Failed(string(req.Task), p.String(), f.Parent, f.Piece, failReason(f.Reason), now)
		t.m.reported.WithLabelValues(reportOutcome(f.Reason)).Inc()
		if f.Reason == ReasonBadPiece {
			t.log.Warn("peer reported a bad piece", "task", req.Task.Short(), "piece", f.Piece, "parent", f.Parent, "reporter", p)
		}
	}
	return &Response{Task: req.Task}
}

func failReason(s string) scheduler.FailReason {
	switch s {
	case ReasonUnreachable:
		return scheduler.FailUnreachable
	case ReasonBadPiece:
		return scheduler.FailBadPiece
	case ReasonNotFound:
		return scheduler.FailNotFound
	default:
		return scheduler.FailOther
	}
}

func (t *Tracker) manifest(req *Request) *Response {
	t.mu.Lock()
	var job *cdn.Job
	if ts, ok := t.tasks[req.Task]; ok {
		job = ts.job // register may replace it: read it under the lock
	}
	t.mu.Unlock()
	if job == nil {
		return unknownTask()
	}
	done, m, err := seedOutcome(job)
	if !done {
		return &Response{Task: req.Task, RetryAfterMs: 100}
	}
	if err != nil {
		return errResp(err)
	}
	b, err := m.Encode()
	if err != nil {
		return errResp(err)
	}
	signed, err := t.signManifest(b)
	if err != nil {
		return errResp(err)
	}
	return &Response{Task: req.Task, Length: m.Length, PieceSize: m.PieceSize, Complete: true, Manifest: b, Signed: signed}
}
