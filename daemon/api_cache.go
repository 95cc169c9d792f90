package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/crypto"
	"github.com/dfp2p/dfp2p/internal/httpapi"
	"github.com/dfp2p/dfp2p/store"
)

// The cache API (what `dfp2p ls|stat|gc|pin|unpin|cache verify` call):
//
//	GET    /api/v1/tasks?url=U[&tag=T] | ?digest=sha256:HEX   read: the task that URL (tag,
//	                                                        digest) names, as `get` derives it:
//	                                                        a list of zero or one TaskStatus
//	PUT    /api/v1/tasks/{id}/pin                           preheat: pin (GC never removes it)
//	DELETE /api/v1/tasks/{id}/pin                           preheat: unpin
//	POST   /api/v1/gc {"dry_run":bool}                      admin: GC now; GCResult
//	POST   /api/v1/cache/verify {"repair":bool,"task":ID}   admin: rehash pieces; NDJSON of
//	                                                        VerifyEvent, one per task, then
//	                                                        the summary
//
// Pinning needs preheat, not admin: it is what a preheat job does with what
// it fetched (keep it warm), it removes nothing, and the disk it can hold is
// what preheat can fill anyway. GC deletes cached data and verify reads the
// whole cache and, with repair, starts downloads: both are admin.

// maxCacheBody bounds the JSON body of the cache endpoints.
const maxCacheBody = 4 << 10

// GCRequest is the body of POST /api/v1/gc.
type GCRequest struct {
	DryRun bool `json:"dry_run"`
}

// GCRemoval is one task GC removed (or, in a dry run, would remove).
type GCRemoval struct {
	ID     content.TaskID `json:"id"`
	URL    string         `json:"url,omitempty"` // redacted
	Bytes  int64          `json:"bytes"`
	Reason string         `json:"reason"` // store.ReasonTTL or store.ReasonWatermark
}

// GCResult is the answer of POST /api/v1/gc.
type GCResult struct {
	DryRun     bool        `json:"dry_run"`
	Removed    []GCRemoval `json:"removed"` // least recently used first
	FreedBytes int64       `json:"freed_bytes"`
	// Warning is set when part of GC could not run (the file system could
	// not be measured, so the watermark step was skipped).
	Warning string `json:"warning,omitempty"`
}

// VerifyRequest is the body of POST /api/v1/cache/verify.
type VerifyRequest struct {
	// Repair fetches again, through the normal download path (peers,
	// tracker, origin), every piece missing from a task that was complete
	// once: those verify dropped now and those dropped before.
	Repair bool `json:"repair"`
	// Task limits the check to one task; empty checks every task.
	Task content.TaskID `json:"task,omitempty"`
}

// VerifyTask is what verify found in (and did to) one task.
type VerifyTask struct {
	ID      content.TaskID `json:"id"`
	URL     string         `json:"url,omitempty"` // redacted
	Checked int            `json:"checked"`       // pieces rehashed
	Bad     []int          `json:"bad,omitempty"` // pieces whose bytes did not match their CID
	Dropped int            `json:"dropped"`       // of those, removed from the store now
	// Missing is how many pieces the task lacked after the check (with
	// Repair: before refetching), Refetched how many of them came back.
	Missing   int    `json:"missing"`
	Refetched int    `json:"refetched"`
	Complete  bool   `json:"complete"` // after verify (and repair)
	Error     string `json:"error,omitempty"`
}

// VerifySummary adds up a verify run.
type VerifySummary struct {
	Repair    bool `json:"repair"`
	Tasks     int  `json:"tasks"`
	Checked   int  `json:"checked"`
	Bad       int  `json:"bad"`
	Dropped   int  `json:"dropped"`
	Refetched int  `json:"refetched"`
	// Failed counts tasks that could not be checked or repaired.
	Failed int `json:"failed"`
	// Incomplete counts tasks that were complete once and still lack
	// pieces at the end (without Repair: the ones to repair).
	Incomplete int `json:"incomplete"`
}

// VerifyEvent is one line of the NDJSON answer of POST /api/v1/cache/verify:
// a task's result, the summary (the last line), or an error that ended the
// run early.
type VerifyEvent struct {
	Task    *VerifyTask    `json:"task,omitempty"`
	Summary *VerifySummary `json:"summary,omitempty"`
	Error   string         `json:"error,omitempty"`
}

func (d *Daemon) cacheRoutes(mux *http.ServeMux) {
	mux.HandleFunc("PUT /api/v1/tasks/{id}/pin", d.auth.Require(crypto.ScopePreheat, d.handlePin(true)))
	mux.HandleFunc("DELETE /api/v1/tasks/{id}/pin", d.auth.Require(crypto.ScopePreheat, d.handlePin(false)))
	mux.HandleFunc("POST /api/v1/gc", d.auth.Require(crypto.ScopeAdmin, d.handleGC))
	mux.HandleFunc("POST /api/v1/cache/verify", d.auth.Require(crypto.ScopeAdmin, d.handleVerify))
}

// handleLookup answers GET /api/v1/tasks?url=...: the task the URL names,
// derived exactly as a fetch derives it (this daemon's query filter, tag,
// digest), as a list of zero or one task.
func (d *Daemon) handleLookup(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	u, digest := q.Get("url"), q.Get("digest")
	if u != "" {
		if _, err := content.ParseURL(u); err != nil {
			httpapi.Error(w, http.StatusBadRequest, httpapi.OneLine(err.Error(), 300))
			return
		}
	}
	id, err := content.TaskIDFor(u, q.Get("tag"), digest, d.cfg.QueryFilter)
	if err != nil {
		httpapi.Error(w, http.StatusBadRequest, httpapi.OneLine(err.Error(), 300))
		return
	}
	out := []TaskStatus{}
	t, err := d.st.Task(id)
	switch {
	case err == nil:
		out = append(out, d.status(t))
	case errors.Is(err, store.ErrNotFound):
		d.mu.Lock()
		dl, ok := d.active[id]
		d.mu.Unlock()
		if ok {
			st := dl.stats()
			out = append(out, TaskStatus{ID: id, Active: true, Stats: &st})
		}
	default:
		httpapi.Error(w, http.StatusInternalServerError, err.Error())
		return
	}
	httpapi.JSON(w, http.StatusOK, out)
}

func (d *Daemon) handlePin(pin bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := content.TaskID(r.PathValue("id"))
		if !id.Valid() {
			httpapi.Error(w, http.StatusBadRequest, "invalid task id")
			return
		}
		if err := d.st.SetPinned(id, pin); err != nil {
			storeError(w, err)
			return
		}
		t, err := d.st.Task(id)
		if err != nil {
			httpapi.Error(w, http.StatusInternalServerError, err.Error())
			return
		}
		d.log.Info("task pin changed", "task", id.Short(), "pinned", pin)
		httpapi.JSON(w, http.StatusOK, d.status(t))
	}
}

// decodeBody reads a small JSON body into v; an empty body leaves v as it is.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxCacheBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

func (d *Daemon) handleGC(w http.ResponseWriter, r *http.Request) {
	var req GCRequest
	if err := decodeBody(r, &req); err != nil {
		httpapi.Error(w, http.StatusBadRequest, "bad gc request: "+httpapi.OneLine(err.Error(), 200))
		return
	}
	res, err := d.RunGC(req.DryRun)
	if err != nil {
		httpapi.Error(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	httpapi.JSON(w, http.StatusOK, res)
}

// RunGC runs garbage collection now, with the daemon's TTL and watermarks
// (see store.GC). With dryRun nothing is removed and the result says what
// would be. An error means nothing ran (the store is closed); a partial run
// (watermarks skipped) is a result with a Warning.
func (d *Daemon) RunGC(dryRun bool) (GCResult, error) {
	res := GCResult{DryRun: dryRun, Removed: []GCRemoval{}}
	urls := map[content.TaskID]string{}
	if tasks, err := d.st.Tasks(); err == nil {
		for _, t := range tasks {
			urls[t.ID] = content.RedactURL(t.URL)
		}
	}
	rep, err := d.st.GC(dryRun)
	if errors.Is(err, store.ErrClosed) {
		return res, err
	}
	if err != nil {
		res.Warning = err.Error()
	}
	for _, id := range rep.Removed {
		res.Removed = append(res.Removed, GCRemoval{ID: id, URL: urls[id], Bytes: rep.Bytes[id], Reason: rep.Reason[id]})
	}
	res.FreedBytes = rep.FreedBytes
	d.log.Info("gc on request", "dry_run", dryRun, "removed", len(res.Removed), "freed", res.FreedBytes)
	return res, nil
}

// verifyWorkers is how many pieces verify hashes at once: a quarter of the
// CPUs, 1 to 4, so a scrub of a large cache leaves room for downloads.
func verifyWorkers() int { return min(4, max(1, runtime.GOMAXPROCS(0)/4)) }

func (d *Daemon) handleVerify(w http.ResponseWriter, r *http.Request) {
	var req VerifyRequest
	if err := decodeBody(r, &req); err != nil {
		httpapi.Error(w, http.StatusBadRequest, "bad verify request: "+httpapi.OneLine(err.Error(), 200))
		return
	}
	if req.Task != "" && !req.Task.Valid() {
		httpapi.Error(w, http.StatusBadRequest, "invalid task id")
		return
	}
	if !d.verifying.TryLock() {
		httpapi.Error(w, http.StatusConflict, "a cache verify is already running")
		return
	}
	locked := true
	defer func() {
		if locked {
			d.verifying.Unlock()
		}
	}()
	var tasks []store.Task
	if req.Task != "" {
		t, err := d.st.Task(req.Task)
		if err != nil {
			storeError(w, err)
			return
		}
		tasks = []store.Task{t}
	} else {
		var err error
		if tasks, err = d.st.Tasks(); err != nil {
			httpapi.Error(w, http.StatusInternalServerError, err.Error())
			return
		}
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	fl, _ := w.(http.Flusher)
	send := func(ev VerifyEvent) {
		_ = enc.Encode(ev)
		if fl != nil {
			fl.Flush()
		}
	}
	sum, err := d.Verify(r.Context(), req.Repair, tasks, func(vt VerifyTask) { send(VerifyEvent{Task: &vt}) })
	// Done before the last line goes out: a client that starts the next
	// verify as soon as it has the summary must not be told one runs.
	d.verifying.Unlock()
	locked = false
	if err != nil {
		send(VerifyEvent{Error: httpapi.OneLine(err.Error(), 500)})
		return
	}
	send(VerifyEvent{Summary: &sum})
}

// Verify rehashes every held piece of tasks (see store.VerifyContext),
// calling fn with each task's result as it is done. With repair, a task that
// was complete once and lacks pieces afterwards is downloaded again through
// the normal path, and Verify waits for it. It returns early with ctx's
// error; a task that fails is reported in its VerifyTask and counted in
// Failed.
func (d *Daemon) Verify(ctx context.Context, repair bool, tasks []store.Task, fn func(VerifyTask)) (VerifySummary, error) {
	sum := VerifySummary{Repair: repair}
	workers := verifyWorkers()
	for _, t := range tasks {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		vt := VerifyTask{ID: t.ID, URL: content.RedactURL(t.URL)}
		rep, err := d.st.VerifyContext(ctx, t.ID, workers)
		if errors.Is(err, store.ErrNotFound) {
			continue // removed since the list was taken
		}
		vt.Checked, vt.Bad, vt.Dropped = rep.Checked, rep.Bad, rep.Dropped
		if err != nil && ctx.Err() != nil {
			return sum, ctx.Err()
		}
		if len(rep.Bad) > 0 {
			d.m.badPieces.Add(float64(len(rep.Bad)))
			d.log.Warn("verify found bad pieces", "task", t.ID.Short(), "pieces", rep.Bad)
		}
		cur, terr := d.st.Task(t.ID)
		if err == nil {
			err = terr
		}
		if terr == nil {
			vt.Missing, vt.Complete = cur.Pieces-cur.Held, cur.Complete
			if !cur.Complete && cur.Manifest != nil && repair && err == nil {
				held := cur.Held
				err = d.repair(ctx, cur)
				if after, aerr := d.st.Task(t.ID); aerr == nil {
					vt.Refetched, vt.Complete = max(0, after.Held-held), after.Complete
				}
			}
		}
		if err != nil {
			vt.Error = httpapi.OneLine(err.Error(), 500)
			sum.Failed++
		}
		if !vt.Complete && terr == nil && cur.Manifest != nil {
			sum.Incomplete++
		}
		sum.Tasks++
		sum.Checked += vt.Checked
		sum.Bad += len(vt.Bad)
		sum.Dropped += vt.Dropped
		sum.Refetched += vt.Refetched
		if fn != nil {
			fn(vt)
		}
		if err := ctx.Err(); err != nil {
			return sum, err
		}
	}
	return sum, nil
}

// repair downloads a once-complete task again; the download fetches only the
// pieces the store lacks. The request is rebuilt from the task's record: its
// URL, and its digest when the task is named by the file's sha256 (a blob).
// A task fetched with a --tag cannot be rebuilt (the tag is not kept), nor
// can one whose origin needs headers the store never keeps, when no peer or
// seed holds the pieces any more.
func (d *Daemon) repair(ctx context.Context, t store.Task) error {
	req := Request{URL: t.URL}
	if m, err := content.DecodeManifest(t.Manifest); err == nil && content.TaskID(m.SHA256) == t.ID {
		req.Digest = "sha256:" + m.SHA256
	} else if id, err := content.TaskIDFor(t.URL, "", "", d.cfg.QueryFilter); err != nil || id != t.ID {
		return fmt.Errorf("cannot refetch task %s: its URL does not name it (fetched with --tag?); run dfp2p get with the same --tag", t.ID.Short())
	}
	dl, err := d.startTask(t.ID, req)
	if err != nil {
		return err
	}
	select {
	case <-dl.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	dl.mu.Lock()
	err = dl.err
	dl.mu.Unlock()
	if err != nil {
		return fmt.Errorf("refetching task %s: %w", t.ID.Short(), err)
	}
	d.log.Info("verify repaired task", "task", t.ID.Short())
	return nil
}

// storeError answers a store error about one task: 404 when the task is
// not cached, 500 otherwise.
func storeError(w http.ResponseWriter, err error) {
	if errors.Is(err, store.ErrNotFound) {
		httpapi.Error(w, http.StatusNotFound, "task not cached")
		return
	}
	httpapi.Error(w, http.StatusInternalServerError, err.Error())
}
