// Package cluster is the one harness end-to-end tests and `make demo` use to
// start dfp2p clusters: it builds the dfp2p binary once, runs trackers and
// daemons as real processes on loopback with their own data dirs, runs a
// counting HTTP origin, and tears everything down — processes first, then
// temp dirs — even when a test fails.
//
// It is test infrastructure: product code must not import it.
package cluster
