package tracker

import (
	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/tracker/scheduler"
)

// ProtocolID is the libp2p protocol peers use to talk to a tracker.
const ProtocolID = "/dfp2p/tracker/1.0.0"

// Message size limits. A request carries at most a have-bitfield of
// content.MaxPieces bits; a manifest answer may be as large as a manifest.
const (
	maxRequestSize  = 1 << 20
	maxResponseSize = content.MaxManifestSize + 4096
)

// Request types.
const (
	TypeRegister = "register" // join a task; the first one starts the seed's origin fetch
	TypeAnnounce = "announce" // heartbeat: "I still hold these pieces"; never starts a fetch
	TypeSchedule = "schedule" // which parent serves which missing piece
	TypeReport   = "report"   // batch of finished and failed pieces
	TypeManifest = "manifest" // the finished task's manifest
	TypeLeave    = "leave"    // forget me for this task
)

// Failure reasons a child reports about a parent.
const (
	ReasonUnreachable = "unreachable"
	ReasonBadPiece    = "bad-piece"
	ReasonNotFound    = "not-found"
	ReasonOther       = "other"
)

// Request is every message a peer sends to a tracker. Fields not used by a
// type are left empty.
type Request struct {
	Type string         `json:"type"`
	Task content.TaskID `json:"task"`

	// register
	URL    string              `json:"url,omitempty"`
	Tag    string              `json:"tag,omitempty"`
	Digest string              `json:"digest,omitempty"`
	Header map[string][]string `json:"header,omitempty"`

	// register, announce
	Addrs []string `json:"addrs,omitempty"`
	Have  Bitfield `json:"have,omitempty"`
	// Region and Zone label the peer for the scheduler's locality
	// preference (same zone, then same region).
	Region string `json:"region,omitempty"`
	Zone   string `json:"zone,omitempty"`

	// schedule
	Max int `json:"max,omitempty"`

	// report
	Done   []int     `json:"done,omitempty"`
	Failed []Failure `json:"failed,omitempty"`
}

// maxLabel bounds a region or zone label.
const maxLabel = 64

func (r *Request) locality() scheduler.Locality {
	return scheduler.Locality{Region: truncLabel(r.Region), Zone: truncLabel(r.Zone)}
}

func truncLabel(s string) string {
	if len(s) > maxLabel {
		return s[:maxLabel]
	}
	return s
}

// Failure is one failed piece fetch: which parent failed which piece, and why.
type Failure struct {
	Piece  int    `json:"piece"`
	Parent string `json:"parent"`
	Reason string `json:"reason"`
}

// Response is the tracker's answer to any Request.
type Response struct {
	// Error is set when the request failed; OriginStatus carries the origin's
	// HTTP status when the failure came from the origin (404 stays 404).
	Error        string `json:"error,omitempty"`
	OriginStatus int    `json:"origin_status,omitempty"`
	// UnknownTask marks an error that registering again cures (the tracker
	// restarted or forgot the task); other errors are final for the task.
	UnknownTask bool `json:"unknown_task,omitempty"`

	Task      content.TaskID `json:"task,omitempty"`
	Length    int64          `json:"length,omitempty"`
	PieceSize int64          `json:"piece_size,omitempty"`
	// Complete is true once the seed holds the whole task and the manifest
	// can be fetched.
	Complete bool `json:"complete,omitempty"`

	Assignments []Assignment `json:"assignments,omitempty"`
	// RetryAfterMs asks the peer to wait before its next schedule request
	// when nothing could be assigned.
	RetryAfterMs int `json:"retry_after_ms,omitempty"`

	Manifest []byte `json:"manifest,omitempty"`
	// Signed is the manifest signed by the seed (crypto.SignedManifest) in a
	// closed cluster; members verify it against the cluster CA.
	Signed []byte `json:"signed,omitempty"`
}

// Assignment tells a child to fetch Piece (whose CID is CID) from Parent.
type Assignment struct {
	Piece  int      `json:"piece"`
	CID    string   `json:"cid"`
	Parent string   `json:"parent"`
	Addrs  []string `json:"addrs,omitempty"`
	Seed   bool     `json:"seed,omitempty"`
}

// Bitfield is content.Bitfield, kept here for the protocol's readers.
type Bitfield = content.Bitfield

// NewBitfield encodes have as a bitfield.
func NewBitfield(have []bool) Bitfield { return content.NewBitfield(have) }

// Error is a failed tracker request as seen by the client.
type Error struct {
	Msg          string
	OriginStatus int
	UnknownTask  bool
}

func (e *Error) Error() string { return e.Msg }
