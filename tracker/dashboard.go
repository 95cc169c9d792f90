package tracker

import (
	"cmp"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/internal/httpapi"
	"github.com/dfp2p/dfp2p/tracker/ui"
)

// This file feeds the dashboard (tracker/ui): bytes per parent→child edge
// of each task, counted from piece reports, throughput samples, and the
// overview and edges endpoints. It is bookkeeping only: the scheduler is
// asked (Scheduler.Assigned) which parent a reported piece was assigned
// from, before Done frees the assignment.

// maxEdgesPerTask bounds the edges remembered per task. Bytes on further
// edges are counted in edgeBook.dropped. Edges live in the taskState and
// go with it.
const maxEdgesPerTask = 1024

// trafficSamples is how many one-second samples of the byte counters the
// tracker keeps: a minute of throughput history.
const trafficSamples = 61

type edgeKey struct{ from, to string }

// edgeBook counts the piece bytes each child received from each parent in
// one task.
type edgeBook struct {
	bytes   map[edgeKey]int64
	dropped int64 // bytes on edges beyond maxEdgesPerTask
}

func (b *edgeBook) add(from, to string, n int64) {
	k := edgeKey{from, to}
	if _, ok := b.bytes[k]; !ok && len(b.bytes) >= maxEdgesPerTask {
		b.dropped += n
		return
	}
	if b.bytes == nil {
		b.bytes = map[edgeKey]int64{}
	}
	b.bytes[k] += n
}

// Edge is bytes one peer (or the seed) sent another in a task, as reported
// by the receiver.
type Edge struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Bytes int64  `json:"bytes"`
}

// list returns the edges, most bytes first (ties by peer IDs: deterministic).
func (b *edgeBook) list() []Edge {
	out := make([]Edge, 0, len(b.bytes))
	for k, n := range b.bytes {
		out = append(out, Edge{From: k.from, To: k.to, Bytes: n})
	}
	slices.SortFunc(out, func(x, y Edge) int {
		return cmp.Or(cmp.Compare(y.Bytes, x.Bytes), cmp.Compare(x.From, y.From), cmp.Compare(x.To, y.To))
	})
	return out
}

// trafficSample is the cumulative byte counters at one instant.
type trafficSample struct {
	at                 time.Time
	origin, seed, peer int64
}

// traffic holds the cumulative bytes peers received through the swarm, by
// source, and a ring of recent samples of them and of the origin bytes.
type traffic struct {
	seed, peer int64 // piece bytes delivered to peers by the seed / by other peers
	ring       [trafficSamples]trafficSample
	n, next    int
}

func (tr *traffic) sample(s trafficSample) {
	tr.ring[tr.next] = s
	tr.next = (tr.next + 1) % len(tr.ring)
	if tr.n < len(tr.ring) {
		tr.n++
	}
}

// samples returns the ring oldest first.
func (tr *traffic) samples() []trafficSample {
	out := make([]trafficSample, 0, tr.n)
	for i := 0; i < tr.n; i++ {
		out = append(out, tr.ring[(tr.next-tr.n+i+len(tr.ring))%len(tr.ring)])
	}
	return out
}

// Rate is the throughput over one sample interval, in bytes per second.
type Rate struct {
	At     int64   `json:"t"` // end of the interval, Unix milliseconds
	Origin float64 `json:"origin"`
	Seed   float64 `json:"seed"`
	Peer   float64 `json:"peer"`
}

// rates turns consecutive samples into per-second rates.
func rates(ss []trafficSample) []Rate {
	out := make([]Rate, 0, len(ss))
	for i := 1; i < len(ss); i++ {
		a, b := ss[i-1], ss[i]
		d := b.at.Sub(a.at).Seconds()
		if d <= 0 {
			continue
		}
		out = append(out, Rate{At: b.at.UnixMilli(),
			Origin: float64(b.origin-a.origin) / d, Seed: float64(b.seed-a.seed) / d, Peer: float64(b.peer-a.peer) / d})
	}
	return out
}

// countDoneLocked credits the piece bytes of each finished piece to the
// edge it was assigned on. Call it before Scheduler.Done, which frees the
// assignments. Pieces not in flight to child (it found them elsewhere) are
// not credited.
func (t *Tracker) countDoneLocked(task content.TaskID, ts *taskState, child string, done []int) {
	for _, i := range done {
		parent, ok := t.sched.Assigned(string(task), child, i)
		if !ok {
			continue
		}
		_, n := content.PieceRange(ts.length, ts.pieceSize, i)
		ts.edges.add(parent, child, n)
		if parent == t.self {
			t.traffic.seed += n
		} else {
			t.traffic.peer += n
		}
	}
}

// sampleTrafficLocked records the byte counters; the tick loop calls it
// every second.
func (t *Tracker) sampleTrafficLocked(now time.Time) {
	t.traffic.sample(trafficSample{at: now, origin: counterValue(t.m.bytes.WithLabelValues("origin")), seed: t.traffic.seed, peer: t.traffic.peer})
}

func counterValue(c prometheus.Counter) int64 {
	var m dto.Metric
	if c.Write(&m) != nil {
		return 0
	}
	return int64(m.GetCounter().GetValue())
}

// RegionCount is the number of peers in one region and zone.
type RegionCount struct {
	Region string `json:"region"`
	Zone   string `json:"zone"`
	Peers  int    `json:"peers"`
}

// Overview is the dashboard's summary of the whole tracker.
type Overview struct {
	Time    time.Time `json:"time"`
	Tracker string    `json:"tracker"` // the tracker's (and its seed's) peer ID
	Tasks   int       `json:"tasks"`
	Peers   int       `json:"peers"` // distinct peers registered in any task, the seed excluded
	// OriginBytes is what the seed read from origins; SeedBytes and
	// PeerBytes are piece bytes peers reported receiving from the seed and
	// from other peers; DeliveredBytes is their sum.
	OriginBytes    int64 `json:"origin_bytes"`
	SeedBytes      int64 `json:"seed_bytes"`
	PeerBytes      int64 `json:"peer_bytes"`
	DeliveredBytes int64 `json:"delivered_bytes"`
	// OffloadRatio is DeliveredBytes / OriginBytes: how many times each
	// origin byte reached a peer (0 before the origin was read).
	OffloadRatio float64 `json:"offload_ratio"`
	// PeerShare is PeerBytes / DeliveredBytes: the part peers served each
	// other rather than taking from the seed.
	PeerShare  float64       `json:"peer_share"`
	Throughput []Rate        `json:"throughput"` // oldest first, one per second
	Regions    []RegionCount `json:"regions"`
}

func (t *Tracker) overview() Overview {
	t.mu.Lock()
	defer t.mu.Unlock()
	o := Overview{Time: time.Now().UTC(), Tracker: t.self, Tasks: len(t.tasks),
		OriginBytes: counterValue(t.m.bytes.WithLabelValues("origin")), SeedBytes: t.traffic.seed, PeerBytes: t.traffic.peer,
		Throughput: rates(t.traffic.samples())}
	o.DeliveredBytes = o.SeedBytes + o.PeerBytes
	if o.OriginBytes > 0 {
		o.OffloadRatio = float64(o.DeliveredBytes) / float64(o.OriginBytes)
	}
	if o.DeliveredBytes > 0 {
		o.PeerShare = float64(o.PeerBytes) / float64(o.DeliveredBytes)
	}
	seen := map[string]bool{}
	counts := map[RegionCount]int{}
	for _, p := range t.sched.Peers() {
		if p.Peer == t.self || seen[p.Peer] {
			continue
		}
		seen[p.Peer] = true
		counts[RegionCount{Region: p.Region, Zone: p.Zone}]++
	}
	o.Peers = len(seen)
	o.Regions = make([]RegionCount, 0, len(counts))
	for k, n := range counts {
		k.Peers = n
		o.Regions = append(o.Regions, k)
	}
	slices.SortFunc(o.Regions, func(a, b RegionCount) int {
		return cmp.Or(cmp.Compare(a.Region, b.Region), cmp.Compare(a.Zone, b.Zone))
	})
	return o
}

// TaskEdges is the swarm graph of one task.
type TaskEdges struct {
	Task content.TaskID `json:"task"`
	Seed string         `json:"seed"` // the seed's peer ID
	// Edges are parent→child bytes, most first; DroppedBytes went over
	// edges beyond the per-task cap.
	Edges        []Edge `json:"edges"`
	DroppedBytes int64  `json:"dropped_bytes"`
}

// dashboardRoutes registers the dashboard's page and its JSON endpoints.
// read wraps a handler in the read-scope check.
func (t *Tracker) dashboardRoutes(mux *http.ServeMux, read func(http.HandlerFunc) http.HandlerFunc) {
	ui.Register(mux)
	mux.HandleFunc("GET /api/v1/overview", read(func(w http.ResponseWriter, r *http.Request) {
		httpapi.JSON(w, http.StatusOK, t.overview())
	}))
	mux.HandleFunc("GET /api/v1/tasks/{id}/edges", read(func(w http.ResponseWriter, r *http.Request) {
		id := content.TaskID(r.PathValue("id"))
		t.mu.Lock()
		ts, ok := t.tasks[id]
		var out TaskEdges
		if ok {
			out = TaskEdges{Task: id, Seed: t.self, Edges: ts.edges.list(), DroppedBytes: ts.edges.dropped}
		}
		t.mu.Unlock()
		if !ok {
			httpapi.Error(w, http.StatusNotFound, "unknown task")
			return
		}
		httpapi.JSON(w, http.StatusOK, out)
	}))
}
