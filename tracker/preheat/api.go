package preheat

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/dfp2p/dfp2p/crypto"
	"github.com/dfp2p/dfp2p/internal/httpapi"
)

// maxRequestBody bounds the JSON body of POST /api/v1/preheat.
const maxRequestBody = 256 << 10

// Register mounts the preheat API on mux:
//
//	POST /api/v1/preheat       start a job (scope preheat; 202 + the job)
//	GET  /api/v1/preheat       list jobs, newest first (scope read)
//	GET  /api/v1/preheat/{id}  one job (scope read)
//
// Tokenless loopback callers have only the read scope (httpapi.Auth), so
// starting a job always needs a token: preheat makes the tracker read
// origins and fill disks, which a local process must not do on the
// strength of being local. A nil Auth (open cluster) allows everything.
func (m *Manager) Register(mux *http.ServeMux, a *httpapi.Auth) {
	mux.HandleFunc("POST /api/v1/preheat", a.Require(crypto.ScopePreheat, m.handleSubmit))
	mux.HandleFunc("GET /api/v1/preheat", a.Require(crypto.ScopeRead, func(w http.ResponseWriter, _ *http.Request) {
		httpapi.JSON(w, http.StatusOK, m.List())
	}))
	mux.HandleFunc("GET /api/v1/preheat/{id}", a.Require(crypto.ScopeRead, func(w http.ResponseWriter, r *http.Request) {
		j, ok := m.Get(r.PathValue("id"))
		if !ok {
			httpapi.Error(w, http.StatusNotFound, "unknown preheat job")
			return
		}
		httpapi.JSON(w, http.StatusOK, j)
	}))
}

func (m *Manager) handleSubmit(w http.ResponseWriter, r *http.Request) {
	var req Request
	dec := json.NewDecoder(io.LimitReader(r.Body, maxRequestBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		httpapi.Error(w, http.StatusBadRequest, "bad preheat request: "+httpapi.OneLine(err.Error(), 300))
		return
	}
	j, err := m.Submit(req)
	var bad *BadRequestError
	switch {
	case errors.As(err, &bad):
		httpapi.Error(w, http.StatusBadRequest, httpapi.OneLine(err.Error(), 300))
		return
	case errors.Is(err, ErrBusy):
		w.Header().Set("Retry-After", "30")
		httpapi.Error(w, http.StatusTooManyRequests, err.Error())
		return
	case err != nil:
		httpapi.Error(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	w.Header().Set("Location", "/api/v1/preheat/"+j.ID)
	httpapi.JSON(w, http.StatusAccepted, j)
}
