// Package limit owns dfp2p's bandwidth limits: a byte-rate token bucket
// (golang.org/x/time/rate) per direction and process, shared by every task
// and stream that passes through it, whose rate can be changed while
// transfers run; readers and writers that wait on it with a context; the
// parsing and printing of human rates (100MiB, 1.5GB, 800Mbit); and the
// GET/PUT /api/v1/limits handlers and client the daemon's and the tracker's
// APIs share.
//
// A process has one Set: Download (piece bytes received from peers, seeds
// and origins), Upload (piece bytes served to peers) and Origin (bytes read
// from origins; such bytes pass both Origin and Download). A rate of 0, and
// a nil *Limiter, mean unlimited.
//
// # Burst
//
// A bucket holds at most burst bytes: Burst(rate) = rate/20 (50 ms of
// traffic), at least 64 KiB and at most 4 MiB. Over a window of T seconds
// at most rate*T + burst bytes pass, so the excess is at most 5% over one
// second at any rate of 1.25 MiB/s or more (below that the 64 KiB floor
// dominates: 10% over one second from 640 KiB/s). A smaller burst means
// more waits and more, smaller reads: at the 64 KiB floor and 4 MiB cap a
// 1 GiB/s stream makes at most a few hundred waits a second. Waits are
// taken in chunks no larger than the burst, and readers and writers through
// a limit move at most one burst per call, so the bytes in flight between
// the bucket and the wire stay within one burst per stream.
//
// Package limit must not know pieces, peers or tasks: callers decide which
// bytes count toward which limit.
package limit
