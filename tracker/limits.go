package tracker

import "github.com/dfp2p/dfp2p/internal/limit"

// Limits returns the tracker's (its seed's) bandwidth limits: Download
// (bytes the seed reads from origins and copies from other seeds and
// peers), Upload (piece bytes served to peers) and Origin (origin reads).
// Changing them takes effect at once for every transfer.
func (t *Tracker) Limits() *limit.Set { return t.limits }
