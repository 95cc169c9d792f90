// Package exchange owns dfp2p's piece protocol: fetching pieces, named by
// (task, index, CID), from one peer over a libp2p stream, both the client and
// the server side; and the status query, asking one peer what it holds of a
// task. It must not decide which peer to ask: the tracker's scheduler, the
// daemon and package swarm do that.
//
// # Wire format
//
// A client opens a stream for ProtocolID, writes one request frame and closes
// its write side. Frames are internal/wire frames (unsigned varint length +
// JSON):
//
//	request:  {"pieces":[{"task":"<64 hex>","index":3,"cid":{"/":"bafk..."}}, ...]}   (1..MaxRefsPerStream refs)
//
// The server answers every requested piece in request order with a header
// frame, followed, for status "ok" only, by exactly length raw piece bytes:
//
//	header:   {"status":"ok","length":16777216}
//	          {"status":"not_found"}   the server lacks the piece or holds different bytes (CID differs)
//	          {"status":"busy"}        no upload slot freed up in time; every later piece gets "busy" too
//
// A "not_found" answer does not end the stream: the server goes on with the
// next piece, so one missing piece costs one header, not a new stream. After a
// "busy" answer the server answers "busy" for the rest of the request and
// closes the stream. Once all pieces are answered the server closes the
// stream. Any other condition (a malformed request, a disk error mid-piece,
// a timeout) resets the stream.
//
// # Status query
//
// With WithStatus, the server also answers StatusProtocolID: what it holds of
// one task. The client opens a stream, writes one request frame, closes its
// write side and reads one answer frame; the server then closes the stream:
//
//	request:  {"task":"<64 hex>"}                                     (at most 256 bytes)
//	answer:   {"status":"not_found"}   the peer holds no piece of the task and no manifest (or cannot tell)
//	          {"status":"ok","task":"<64 hex>","length":20971520,"piece_size":2097152,
//	           "have":"<base64 bitfield>","digests":"<base64>","manifest":{...}}
//
// "have" is a content.Bitfield (bit i%8 of byte i/8 set for each piece held).
// "digests" is, for each set bit in index order, the 32-byte sha2-256 digest
// of that piece's CID (CIDv1, raw, sha2-256), concatenated: a compact form
// of the CIDs with no per-CID framing to validate. "manifest" is the task's
// canonical manifest (content.Manifest.Encode) embedded as a JSON value; it is
// present only when every piece is held. The client rejects (ErrProtocol) an
// answer for another task, an invalid geometry, a bitfield or digest list of
// the wrong size, an "ok" with no piece and no manifest, and a manifest that
// is not canonical, describes another task or geometry, or lists other CIDs
// than the digests.
//
// A server builds and sends at most a few status answers at once; a query
// that finds no free slot within the queue timeout has its stream reset.
//
// # Limits
//
// Every read is bounded in size (request and header frames, piece length at
// most content.MaxValidPieceSize) and in time (an idle deadline refreshed while
// bytes flow). A request holds at most MaxRefsPerStream refs; Client.Fetch
// splits longer lists over consecutive streams. A status answer is at most
// content.MaxManifestSize plus the base64 of a digest and a bit per piece for
// content.MaxPieces pieces, plus 4 KiB (about 139 MiB); the client's buffer
// grows with the bytes received, not with the announced length.
package exchange

import (
	"errors"
	"fmt"
	"sync"

	"github.com/dfp2p/dfp2p/content"
	"github.com/ipfs/go-cid"
)

// ProtocolID is the libp2p protocol of the piece exchange.
const ProtocolID = "/dfp2p/exchange/1.0.0"

const (
	// MaxRefsPerStream bounds the pieces requested on one stream.
	MaxRefsPerStream = 64
	// maxRequestSize bounds the request frame: 64 refs are about 10 KiB.
	maxRequestSize = 64 << 10
	// maxHeaderSize bounds a response header frame.
	maxHeaderSize = 1 << 10
	// copyBufSize is the chunk size for moving piece bytes, on both sides.
	// Large chunks keep per-call overhead (deadline updates, locking in
	// the QUIC stream, hashing setup) negligible next to the bytes moved.
	copyBufSize = 1 << 20
)

// Response statuses.
const (
	statusOK       = "ok"
	statusNotFound = "not_found"
	statusBusy     = "busy"
)

// Errors reported in Result.Err (test with errors.Is).
var (
	// ErrNotFound: the peer does not hold the piece, or holds a piece with a
	// different CID under that (task, index).
	ErrNotFound = errors.New("exchange: piece not found on peer")
	// ErrBusy: the peer had no free upload slot; try later or elsewhere.
	ErrBusy = errors.New("exchange: peer busy")
	// ErrProtocol: the peer broke the protocol (malformed header, impossible
	// length, stream ended early). The peer should not be asked again soon.
	ErrProtocol = errors.New("exchange: protocol violation")
	// ErrAborted: the piece was not fetched because the stream failed on an
	// earlier piece (see that piece's error) or the context ended.
	ErrAborted = errors.New("exchange: not fetched, stream aborted")
)

// PieceRef names one piece to fetch.
type PieceRef struct {
	Task  content.TaskID
	Index int
	CID   cid.Cid
}

func (r PieceRef) String() string {
	return fmt.Sprintf("%s/%d(%s)", r.Task.Short(), r.Index, r.CID)
}

func (r PieceRef) validate() error {
	if !r.Task.Valid() {
		return fmt.Errorf("invalid task id %q", r.Task)
	}
	if r.Index < 0 || r.Index >= content.MaxPieces {
		return fmt.Errorf("invalid piece index %d", r.Index)
	}
	if _, err := content.SHA256Of(r.CID); err != nil {
		return err
	}
	return nil
}

type wireRef struct {
	Task  content.TaskID `json:"task"`
	Index int            `json:"index"`
	CID   cid.Cid        `json:"cid"`
}

type request struct {
	Pieces []wireRef `json:"pieces"`
}

type header struct {
	Status string `json:"status"`
	Length int64  `json:"length,omitempty"`
}

// bufPool holds copyBufSize buffers shared by clients and servers.
var bufPool = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

func getBuf() *[]byte  { return bufPool.Get().(*[]byte) }
func putBuf(b *[]byte) { bufPool.Put(b) }
