// Package tracker owns the tracker: the libp2p protocol peers use to register
// for a task, ask which parent serves which piece, report finished pieces and
// fetch the manifest (server and client), the tracker's HTTP API, and the
// wiring of the tracker process, which also runs the cluster's CDN seed.
//
// Scheduling decisions live in tracker/scheduler, a pure state machine; this
// package only feeds it events and turns its decisions into answers. The
// tracker never moves piece bytes itself: the seed's store is served by the
// exchange protocol like any other peer's.
package tracker
