// Package daemon owns the long-running peer on each host: it keeps pieces on
// disk (store), serves them to other peers (exchange), downloads tasks by
// asking the tracker which parent serves which piece, falls back to the origin
// when no tracker is reachable, streams finished bytes to local clients
// through its HTTP API, re-announces what it holds, and runs garbage
// collection.
//
// It makes no scheduling decisions of its own while a tracker answers: it
// executes the tracker's assignments and reports the outcome. It must not
// write outside its data dir: clients write their own output files.
package daemon
