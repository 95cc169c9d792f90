package swarm

import "github.com/libp2p/go-libp2p/core/peer"

// ErrUnreachable is wrapped by the errors of pieces that failed because their
// provider could not be dialled (for callers that classify failures).
var ErrUnreachable = errDial

// WithFailureObserver registers fn, called for each piece fetch that failed
// because of the provider (not the local store): err is the failure
// (errors.Is store.ErrBadPiece, exchange.ErrNotFound, ErrUnreachable...), and
// dropped is true when this failure made the fetcher stop using the provider
// for good (its first bad piece). It is called from the goroutine running
// Fetch.
func WithFailureObserver(fn func(from peer.ID, err error, dropped bool)) Option {
	return func(c *config) { c.failed = fn }
}
