package tracker

import (
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/crypto"
	"github.com/dfp2p/dfp2p/internal/httpapi"
	"github.com/dfp2p/dfp2p/tracker/scheduler"
)

// TaskInfo is one task in the HTTP API.
type TaskInfo struct {
	ID        content.TaskID `json:"id"`
	URL       string         `json:"url,omitempty"`
	Length    int64          `json:"length"`
	PieceSize int64          `json:"piece_size"`
	Pieces    int            `json:"pieces"`
	SeedDone  bool           `json:"seed_complete"`
	Error     string         `json:"error,omitempty"`
	Created   time.Time      `json:"created"`
	Peers     int            `json:"peers"`
	Complete  int            `json:"peers_complete"`
	Inflight  int            `json:"inflight"`
}

// TaskDetail is a task with its peers.
type TaskDetail struct {
	TaskInfo
	PeerList []scheduler.PeerView `json:"peer_list"`
}

func (t *Tracker) apiHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", httpapi.Healthz)
	read := func(h http.HandlerFunc) http.HandlerFunc { return t.auth.Require(crypto.ScopeRead, h) }
	mux.HandleFunc("POST /api/v1/cluster/revoke", t.auth.Require(crypto.ScopeAdmin, t.revokeHandler))
	mux.HandleFunc("GET /api/v1/tasks", read(func(w http.ResponseWriter, r *http.Request) {
		t.mu.Lock()
		out := make([]TaskInfo, 0, len(t.tasks))
		for id := range t.tasks {
			out = append(out, t.taskInfoLocked(id))
		}
		t.mu.Unlock()
		sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
		httpapi.JSON(w, http.StatusOK, out)
	}))
	mux.HandleFunc("GET /api/v1/tasks/{id}", read(func(w http.ResponseWriter, r *http.Request) {
		id := content.TaskID(r.PathValue("id"))
		t.mu.Lock()
		defer t.mu.Unlock()
		if _, ok := t.tasks[id]; !ok {
			httpapi.Error(w, http.StatusNotFound, "unknown task")
			return
		}
		d := TaskDetail{TaskInfo: t.taskInfoLocked(id)}
		_, d.PeerList, _ = t.sched.Task(string(id))
		httpapi.JSON(w, http.StatusOK, d)
	}))
	mux.HandleFunc("GET /api/v1/peers", read(func(w http.ResponseWriter, r *http.Request) {
		t.mu.Lock()
		peers := t.sched.Peers()
		t.mu.Unlock()
		httpapi.JSON(w, http.StatusOK, peers)
	}))
	t.limits.Mount(mux, t.auth, t.log)
	t.preheat.Register(mux, t.auth)
	httpapi.Pprof(mux, t.auth)
	t.dashboardRoutes(mux, read)
	mux.HandleFunc("GET /metrics", read(promhttp.HandlerFor(t.m.reg, promhttp.HandlerOpts{}).ServeHTTP))
	return mux
}

func (t *Tracker) taskInfoLocked(id content.TaskID) TaskInfo {
	ts := t.tasks[id]
	done, _, err := seedOutcome(ts.job)
	info := TaskInfo{ID: id, URL: content.RedactURL(ts.url), Length: ts.length, PieceSize: ts.pieceSize,
		Pieces: len(ts.cids), Created: ts.created, SeedDone: done && err == nil}
	if err != nil {
		info.Error = err.Error()
	}
	if v, _, ok := t.sched.Task(string(id)); ok {
		info.Peers, info.Complete, info.Inflight = v.Peers, v.Complete, v.Inflight
	}
	return info
}
