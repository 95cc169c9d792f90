package daemon

import "github.com/dfp2p/dfp2p/internal/limit"

// Limits returns the daemon's bandwidth limits: Download (piece bytes from
// peers, seeds and its own origin reads), Upload (piece bytes served to
// peers) and Origin (its own origin reads). Changing them takes effect at
// once for every transfer.
func (d *Daemon) Limits() *limit.Set { return d.limits }
