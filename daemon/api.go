package daemon

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/crypto"
	"github.com/dfp2p/dfp2p/internal/httpapi"
	"github.com/dfp2p/dfp2p/store"
)

// HTTP API headers and trailers of POST /api/v1/fetch.
const (
	HeaderTask   = "X-Dfp2p-Task"
	HeaderLength = "X-Dfp2p-Length"
	// Trailers, sent after the body:
	TrailerSHA256 = "X-Dfp2p-Sha256" // whole-file sha256 from the verified manifest
	TrailerError  = "X-Dfp2p-Error"  // set when the download failed mid-way
)

// maxFetchBody bounds the JSON body of a fetch request.
const maxFetchBody = 1 << 20

// TaskStatus is one task in the daemon's API.
type TaskStatus struct {
	ID        content.TaskID `json:"id"`
	URL       string         `json:"url,omitempty"`
	Length    int64          `json:"length"`
	PieceSize int64          `json:"piece_size"`
	Pieces    int            `json:"pieces"`
	Held      int            `json:"held"`
	Complete  bool           `json:"complete"`
	Pinned    bool           `json:"pinned"`
	Active    bool           `json:"active"`
	Error     string         `json:"error,omitempty"`
	Stats     *Stats         `json:"stats,omitempty"`

	// Bytes held on disk (plaintext), and when the task was created and
	// last used (what GC's TTL and LRU order look at).
	Bytes      int64     `json:"bytes"`
	CreatedAt  time.Time `json:"created,omitzero"`
	LastAccess time.Time `json:"last_access,omitzero"`
}

func (d *Daemon) apiHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", httpapi.Healthz)
	read := func(h http.HandlerFunc) http.HandlerFunc { return d.auth.Require(crypto.ScopeRead, h) }
	mux.HandleFunc("POST /api/v1/fetch", read(d.handleFetch))
	mux.HandleFunc("GET /api/v1/tasks", read(func(w http.ResponseWriter, r *http.Request) {
		if q := r.URL.Query(); q.Has("url") || q.Has("digest") {
			d.handleLookup(w, r) // api_cache.go
			return
		}
		tasks, err := d.st.Tasks()
		if err != nil {
			httpapi.Error(w, http.StatusInternalServerError, err.Error())
			return
		}
		out := make([]TaskStatus, 0, len(tasks))
		for _, t := range tasks {
			out = append(out, d.status(t))
		}
		httpapi.JSON(w, http.StatusOK, out)
	}))
	mux.HandleFunc("GET /api/v1/tasks/{id}", read(func(w http.ResponseWriter, r *http.Request) {
		id := content.TaskID(r.PathValue("id"))
		if !id.Valid() {
			httpapi.Error(w, http.StatusBadRequest, "invalid task id")
			return
		}
		t, err := d.st.Task(id)
		if errors.Is(err, store.ErrNotFound) {
			d.mu.Lock()
			dl, ok := d.active[id]
			d.mu.Unlock()
			if !ok {
				httpapi.Error(w, http.StatusNotFound, "unknown task")
				return
			}
			st := dl.stats()
			httpapi.JSON(w, http.StatusOK, TaskStatus{ID: id, Active: true, Stats: &st})
			return
		}
		if err != nil {
			httpapi.Error(w, http.StatusInternalServerError, err.Error())
			return
		}
		httpapi.JSON(w, http.StatusOK, d.status(t))
	}))
	d.limits.Mount(mux, d.auth, d.log)
	d.cacheRoutes(mux) // api_cache.go
	httpapi.Pprof(mux, d.auth)
	mux.HandleFunc("GET /metrics", read(promhttp.HandlerFor(d.m.reg, promhttp.HandlerOpts{}).ServeHTTP))
	return mux
}

func (d *Daemon) status(t store.Task) TaskStatus {
	s := TaskStatus{ID: t.ID, URL: content.RedactURL(t.URL), Length: t.Length, PieceSize: t.PieceSize,
		Pieces: t.Pieces, Held: t.Held, Complete: t.Complete, Pinned: t.Pinned,
		Bytes: t.Bytes, CreatedAt: t.CreatedAt, LastAccess: t.LastAccess}
	d.mu.Lock()
	defer d.mu.Unlock()
	if dl, ok := d.active[t.ID]; ok {
		st := dl.stats()
		s.Active, s.Stats = true, &st
	} else if st, ok := d.recent[t.ID]; ok {
		s.Stats = &st
	}
	return s
}

// StatusFor maps a download error to an HTTP status: the origin's own status
// when the origin failed (404 stays 404), 400 for a bad request, 502 for
// other failures upstream.
func StatusFor(err error) int {
	var de *Error
	if errors.As(err, &de) {
		switch {
		case de.BadRequest:
			return http.StatusBadRequest
		case de.OriginStatus >= 400 && de.OriginStatus <= 599:
			return de.OriginStatus
		}
	}
	return http.StatusBadGateway
}

func (d *Daemon) handleFetch(w http.ResponseWriter, r *http.Request) {
	var req Request
	lift := httpapi.BodyDeadline(w)
	dec := json.NewDecoder(io.LimitReader(r.Body, maxFetchBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(&req)
	if err == nil { // the rest of the body, under the deadline too
		_, err = io.Copy(io.Discard, io.LimitReader(r.Body, maxFetchBody))
	}
	if err != nil {
		httpapi.Error(w, http.StatusBadRequest, "bad fetch request: "+err.Error())
		return
	}
	lift()
	s, err := d.Open(r.Context(), req)
	if err != nil {
		var de *Error
		status := StatusFor(err)
		body := httpapi.ErrorBody{Error: err.Error()}
		if errors.As(err, &de) {
			body.OriginStatus = de.OriginStatus
		}
		httpapi.JSON(w, status, body)
		return
	}
	defer s.Close()
	w.Header().Set("Trailer", TrailerSHA256+", "+TrailerError)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set(HeaderTask, string(s.Task))
	w.Header().Set(HeaderLength, strconv.FormatInt(s.Length, 10))
	w.WriteHeader(http.StatusOK)
	buf := make([]byte, 256<<10)
	_, err = io.CopyBuffer(w, s, buf)
	if err != nil {
		w.Header().Set(TrailerError, httpapi.OneLine(err.Error(), 1024))
		return
	}
	w.Header().Set(TrailerSHA256, s.SHA256())
}
