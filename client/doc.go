// Package client is the Go SDK for fetching files through dfp2p: it does what
// `dfp2p get` does, as a stream (Open) or into a file (Get).
//
// It talks to a local daemon's HTTP API when one is given; otherwise it runs
// a short-lived in-process peer against the given trackers, or reads the
// origin itself when there are none. A file written by Get appears at its
// path only complete and verified (temp file, sha256 check, fsync, rename).
//
// It owns no piece logic: pieces, verification and scheduling belong to the
// daemon, store and tracker packages.
package client
