// Package client is the Go SDK for fetching files through dfp2p: it does what
// `dfp2p get` does, as a stream (Open) or into a file (Get).
//
// It talks to a local daemon's HTTP API when one is given; otherwise it runs
// a short-lived in-process peer against the given trackers, or reads the
// origin itself when there are none. A file written by Get appears at its
// path only complete and verified (temp file, sha256 check, fsync, rename).
//
// Client drives a running daemon's cache through its HTTP API: list and look
// up tasks (by ID, ID prefix, digest or URL), pin and unpin, run garbage
// collection (or a dry run), and verify (and repair) every cached piece.
// Errors from the daemon are *Error with the HTTP status; errors.Is(err,
// ErrNotFound) tells a task that is not cached.
//
// It owns no piece logic: pieces, verification and scheduling belong to the
// daemon, store and tracker packages.
package client
