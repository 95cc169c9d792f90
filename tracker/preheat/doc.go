// Package preheat owns preheat jobs: turning a request (a URL, or an image
// reference resolved through package oci to its config and layer blobs) into
// items with the very task IDs later pulls use (the blob digest for layers,
// as the registry mirror does; content.TaskIDFor for URLs, as `dfp2p get`
// does), having the tracker's seed fetch each item (bounded tracker-wide),
// choosing a count or share of live peers spread over regions and zones and
// asking them over /dfp2p/preheat/1.0.0 to fetch the items in the
// background, and keeping each job's state and per-item progress in memory,
// bounded, for the tracker's API. It also holds that protocol's messages and
// the HTTP client `dfp2p preheat` uses.
//
// It does not fetch bytes, schedule pieces or open streams itself: the
// tracker supplies a Backend for the seed and the peer calls, and the daemon
// serves the protocol.
package preheat
