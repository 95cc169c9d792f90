package httpapi

import (
	"net/http"
	"time"
)

// BodyTimeout bounds how long a handler waits for a request body. The
// servers set only a header timeout (a whole-request ReadTimeout would also
// cut the long streamed answers), so a client that sends headers and then
// a body that never ends would otherwise hold its handler for ever.
const BodyTimeout = 30 * time.Second

// BodyDeadline gives the request body BodyTimeout to arrive and returns the
// function that lifts the deadline again. Call it once the body was read
// whole, before a long answer (a deadline left behind would end the
// connection's background read and cancel the request's context). Do not
// call it after a failed read: the server drains the rest of the body
// before it answers, and only the deadline ends that.
func BodyDeadline(w http.ResponseWriter) (lift func()) { return BodyDeadlineFor(w, BodyTimeout) }

// BodyDeadlineFor is BodyDeadline with a timeout of d.
func BodyDeadlineFor(w http.ResponseWriter, d time.Duration) (lift func()) {
	rc := http.NewResponseController(w)
	if rc.SetReadDeadline(time.Now().Add(d)) != nil {
		return func() {}
	}
	return func() { _ = rc.SetReadDeadline(time.Time{}) }
}
