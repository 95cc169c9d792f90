package preheat

import (
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/dfp2p/dfp2p/content"
)

// ProtocolID is the stream protocol a tracker opens to a daemon to have it
// fetch tasks in the background. Daemons accept it only from members with
// the tracker role (in an open cluster: from the trackers they use).
const ProtocolID protocol.ID = "/dfp2p/preheat/1.0.0"

// Limits of the protocol's messages.
const (
	MaxPeerItems    = 1000
	MaxPeerMessage  = 1 << 20
	MaxPeerWaitMs   = 60_000
	DefaultPeerWait = 20_000
)

// PeerItem names one task for a daemon, as `dfp2p get` would: the daemon
// derives the same task ID. No credentials are sent: the daemon registers
// with the tracker, whose seed already holds the task.
type PeerItem struct {
	URL    string `json:"url"`
	Digest string `json:"digest,omitempty"`
	Tag    string `json:"tag,omitempty"`
}

// PeerRequest asks a daemon to start (or keep) fetching Items and to answer
// when all are finished or after WaitMs, whichever is first.
type PeerRequest struct {
	Items  []PeerItem `json:"items"`
	WaitMs int64      `json:"wait_ms"`
}

// PeerTask is a daemon's state of one task.
type PeerTask struct {
	Task     content.TaskID `json:"task"`
	Complete bool           `json:"complete"`
	Held     int            `json:"held"`
	Pieces   int            `json:"pieces"`
	Error    string         `json:"error,omitempty"`
}

// PeerResponse answers a PeerRequest, one PeerTask per item in order.
type PeerResponse struct {
	Tasks []PeerTask `json:"tasks"`
	Error string     `json:"error,omitempty"`
}
