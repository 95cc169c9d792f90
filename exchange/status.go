package exchange

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/internal/wire"
	"github.com/dfp2p/dfp2p/store"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// StatusProtocolID is the libp2p protocol of the status query: what a peer
// holds of one task.
const StatusProtocolID = "/dfp2p/status/1.0.0"

const (
	// maxStatusRequestSize bounds a status request frame ({"task":"<64
	// hex>"} is 75 bytes).
	maxStatusRequestSize = 256
	// maxStatusAnswers bounds the status answers a server builds and sends
	// at once (each may hold a manifest in memory); a request waits for a
	// slot for up to the queue timeout, then its stream is reset.
	maxStatusAnswers = 8
	// maxStatusSize bounds a status answer frame: a manifest (embedded as
	// JSON, at most content.MaxManifestSize), the base64 of one sha2-256
	// digest per piece and of the bitfield, for content.MaxPieces pieces,
	// plus room for the fixed fields.
	maxStatusSize = content.MaxManifestSize +
		(content.MaxPieces*sha256.Size+2)/3*4 +
		(content.MaxPieces/8+2)/3*4 +
		4<<10
)

// Status is what a peer holds of a task.
type Status struct {
	Task      content.TaskID
	Length    int64
	PieceSize int64
	// Have has bit i set for each piece i held.
	Have content.Bitfield
	// CIDs holds the CID of every held piece, in index order of the set
	// bits of Have (len(CIDs) == number of set bits).
	CIDs []cid.Cid
	// Manifest is the canonical encoded manifest; set only when the peer
	// holds the complete task.
	Manifest []byte
	// Signer and Sig, with Manifest, form the seed's signature of the
	// manifest (crypto.SignedManifest: the signer's certificate and its
	// signature) in a closed cluster; empty when the peer has none.
	Signer, Sig []byte
}

// Bounds of the signature fields (an ed25519 signature is 64 bytes, a
// certificate under 1 KiB).
const (
	maxSignerSize = 2 << 10
	maxSigSize    = 1 << 10
)

// NumPieces is the number of pieces of the task.
func (s *Status) NumPieces() int { return content.NumPieces(s.Length, s.PieceSize) }

// Validate checks that the status is well formed and consistent: a valid task
// ID and geometry (the manifest rules), a bitfield of the right length with
// one valid piece CID (CIDv1, raw, sha2-256) per set bit, at least one piece
// held or a manifest, and a manifest, if any, that is canonical, describes
// this task, length and piece size, comes with every piece held, and lists
// the CIDs claimed.
func (s *Status) Validate() error {
	if len(s.Signer) > maxSignerSize || len(s.Sig) > maxSigSize {
		return fmt.Errorf("signature fields too large (%d, %d bytes)", len(s.Signer), len(s.Sig))
	}
	if (len(s.Signer) > 0 || len(s.Sig) > 0) && len(s.Manifest) == 0 {
		return errors.New("a manifest signature without a manifest")
	}
	if !s.Task.Valid() {
		return fmt.Errorf("invalid task id %q", truncate(string(s.Task), 80))
	}
	if err := validGeometry(s.Length, s.PieceSize); err != nil {
		return err
	}
	cids, err := s.PieceCIDs()
	if err != nil {
		return err
	}
	held := len(s.CIDs)
	if held == 0 && len(s.Manifest) == 0 {
		return errors.New("status holds no piece and no manifest")
	}
	if len(s.Manifest) == 0 {
		return nil
	}
	if held != len(cids) {
		return fmt.Errorf("manifest sent with %d of %d pieces held", held, len(cids))
	}
	m, err := content.DecodeManifest(s.Manifest)
	if err != nil {
		return err
	}
	if m.TaskID != s.Task || m.Length != s.Length || m.PieceSize != s.PieceSize {
		return fmt.Errorf("manifest describes task %s (%d bytes, %d-byte pieces), not %s (%d, %d)",
			m.TaskID.Short(), m.Length, m.PieceSize, s.Task.Short(), s.Length, s.PieceSize)
	}
	enc, err := m.Encode()
	if err != nil {
		return err
	}
	if !bytes.Equal(enc, s.Manifest) {
		return errors.New("manifest is not in canonical encoding")
	}
	for i, c := range m.Pieces {
		if !c.Equals(cids[i]) {
			return fmt.Errorf("manifest lists %s for piece %d, status claims %s", c, i, cids[i])
		}
	}
	return nil
}

// PieceCIDs returns one entry per piece: the CID of each held piece and
// cid.Undef for the others. It checks the bitfield, the number of CIDs and
// each CID's form, not the manifest.
func (s *Status) PieceCIDs() ([]cid.Cid, error) {
	n := s.NumPieces()
	if n < 0 || n > content.MaxPieces {
		return nil, fmt.Errorf("%d pieces", n)
	}
	if len(s.Have) != (n+7)/8 {
		return nil, fmt.Errorf("bitfield has %d bytes for %d pieces", len(s.Have), n)
	}
	have, err := s.Have.Bools(n)
	if err != nil {
		return nil, err
	}
	out := make([]cid.Cid, n)
	k := 0
	for i, h := range have {
		if !h {
			continue
		}
		if k >= len(s.CIDs) {
			return nil, fmt.Errorf("fewer CIDs (%d) than pieces held", len(s.CIDs))
		}
		if _, err := content.SHA256Of(s.CIDs[k]); err != nil {
			return nil, fmt.Errorf("piece %d: %w", i, err)
		}
		out[i] = s.CIDs[k]
		k++
	}
	if k != len(s.CIDs) {
		return nil, fmt.Errorf("%d CIDs for %d pieces held", len(s.CIDs), k)
	}
	return out, nil
}

// ParseManifest decodes Manifest; it returns nil, nil when there is none.
func (s *Status) ParseManifest() (*content.Manifest, error) {
	if len(s.Manifest) == 0 {
		return nil, nil
	}
	return content.DecodeManifest(s.Manifest)
}

func validGeometry(length, pieceSize int64) error {
	if length < 0 {
		return fmt.Errorf("negative length %d", length)
	}
	if pieceSize < content.MinValidPieceSize || pieceSize > content.MaxValidPieceSize || pieceSize&(pieceSize-1) != 0 {
		return fmt.Errorf("invalid piece size %d", pieceSize)
	}
	if n := content.NumPieces(length, pieceSize); n > content.MaxPieces {
		return fmt.Errorf("%d pieces exceeds limit %d", n, content.MaxPieces)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// StoreStatus answers status queries from a store: the task's geometry, the
// pieces held with their CIDs and, when the task is complete, its manifest.
// A task that is unknown, or of which no piece is held and that is not
// complete, is reported as ErrNotFound.
func StoreStatus(st *store.Store) func(content.TaskID) (*Status, error) {
	return func(id content.TaskID) (*Status, error) {
		t, err := st.Task(id)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil, fmt.Errorf("%w: task %s", ErrNotFound, id.Short())
			}
			return nil, err
		}
		have := st.Have(id)
		if have == nil {
			return nil, fmt.Errorf("%w: task %s", ErrNotFound, id.Short())
		}
		s := &Status{Task: id, Length: t.Length, PieceSize: t.PieceSize}
		held := 0
		for i, h := range have {
			if !h {
				continue
			}
			c, ok := st.PieceCID(id, i)
			if !ok { // dropped since Have
				have[i] = false
				continue
			}
			s.CIDs = append(s.CIDs, c)
			held++
		}
		s.Have = content.NewBitfield(have)
		if t.Complete && held == len(have) {
			// If a piece was replaced since Task, the server's Validate
			// catches the disagreement and answers "not found" this once.
			s.Manifest = t.Manifest
		}
		if held == 0 && len(s.Manifest) == 0 {
			return nil, fmt.Errorf("%w: task %s: no piece held", ErrNotFound, id.Short())
		}
		return s, nil
	}
}

type statusRequest struct {
	Task content.TaskID `json:"task"`
}

type statusResponse struct {
	Status    string           `json:"status"`
	Task      content.TaskID   `json:"task,omitempty"`
	Length    int64            `json:"length,omitempty"`
	PieceSize int64            `json:"piece_size,omitempty"`
	Have      content.Bitfield `json:"have,omitempty"`
	// Digests is the sha2-256 digests of the held pieces' CIDs, 32 bytes
	// each, concatenated in index order (base64 in JSON).
	Digests  []byte          `json:"digests,omitempty"`
	Manifest json.RawMessage `json:"manifest,omitempty"`
	Signer   []byte          `json:"signer,omitempty"`
	Sig      []byte          `json:"sig,omitempty"`
}

// encodeStatus turns a valid status into its wire form.
func encodeStatus(s *Status) (statusResponse, error) {
	r := statusResponse{
		Status:    statusOK,
		Task:      s.Task,
		Length:    s.Length,
		PieceSize: s.PieceSize,
		Have:      s.Have,
		Digests:   make([]byte, 0, len(s.CIDs)*sha256.Size),
		Manifest:  json.RawMessage(s.Manifest),
		Signer:    s.Signer,
		Sig:       s.Sig,
	}
	for _, c := range s.CIDs {
		d, err := content.SHA256Of(c)
		if err != nil {
			return statusResponse{}, err
		}
		r.Digests = append(r.Digests, d...)
	}
	return r, nil
}

// decodeStatus parses and validates a status answer for task. It returns an
// ErrNotFound error for "not_found" and an ErrProtocol error for anything
// malformed or inconsistent.
func decodeStatus(b []byte, task content.TaskID) (*Status, error) {
	var r statusResponse
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: bad status answer: %v", ErrProtocol, err)
	}
	switch r.Status {
	case statusOK:
	case statusNotFound:
		return nil, fmt.Errorf("%w: task %s", ErrNotFound, task.Short())
	default:
		return nil, fmt.Errorf("%w: unknown status %q", ErrProtocol, truncate(r.Status, 40))
	}
	if r.Task != task {
		return nil, fmt.Errorf("%w: status for task %q, asked for %s", ErrProtocol, truncate(string(r.Task), 80), task.Short())
	}
	if len(r.Digests)%sha256.Size != 0 {
		return nil, fmt.Errorf("%w: %d digest bytes is not a multiple of %d", ErrProtocol, len(r.Digests), sha256.Size)
	}
	s := &Status{Task: r.Task, Length: r.Length, PieceSize: r.PieceSize, Have: r.Have}
	if k := len(r.Digests) / sha256.Size; k > 0 {
		if k > content.MaxPieces {
			return nil, fmt.Errorf("%w: %d digests", ErrProtocol, k)
		}
		s.CIDs = make([]cid.Cid, k)
		for i := range k {
			c, err := content.CIDFromSHA256(r.Digests[i*sha256.Size : (i+1)*sha256.Size])
			if err != nil {
				return nil, fmt.Errorf("%w: %v", ErrProtocol, err)
			}
			s.CIDs[i] = c
		}
	}
	if len(r.Manifest) > 0 {
		s.Manifest = []byte(r.Manifest)
	}
	s.Signer, s.Sig = r.Signer, r.Sig
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("%w: status: %v", ErrProtocol, err)
	}
	return s, nil
}

func (s *Server) handleStatus(st network.Stream) {
	if !s.track(st) {
		st.Reset()
		return
	}
	defer s.untrack(st)
	if err := s.serveStatus(st); err != nil {
		st.Reset()
		s.cfg.log.Debug("exchange: serve status failed", "peer", st.Conn().RemotePeer(), "err", err)
		return
	}
	st.Close()
}

func (s *Server) serveStatus(st network.Stream) error {
	if err := st.SetReadDeadline(time.Now().Add(s.cfg.idle)); err != nil {
		return err
	}
	var req statusRequest
	if err := wire.ReadMsg(bufio.NewReaderSize(st, maxStatusRequestSize), maxStatusRequestSize, &req); err != nil {
		return fmt.Errorf("read status request: %w", err)
	}
	if !req.Task.Valid() {
		return fmt.Errorf("%w: status request for invalid task", ErrProtocol)
	}
	if !acquireSlot(s.ctx, s.statusSlots, s.cfg.queueTimeout) {
		return fmt.Errorf("no status slot free for task %s", req.Task.Short())
	}
	defer func() { <-s.statusSlots }()
	resp := statusResponse{Status: statusNotFound}
	stat, err := s.cfg.status(req.Task)
	switch {
	case err != nil || stat == nil:
		if err != nil && !errors.Is(err, ErrNotFound) {
			s.cfg.log.Warn("exchange: status failed", "task", req.Task.Short(), "err", err)
		}
	case stat.Task != req.Task:
		s.cfg.log.Warn("exchange: status source answered for another task", "task", req.Task.Short(), "got", truncate(string(stat.Task), 80))
	default:
		if err := stat.Validate(); err != nil {
			s.cfg.log.Warn("exchange: status source gave an invalid status", "task", req.Task.Short(), "err", err)
			break
		}
		if r, err := encodeStatus(stat); err == nil {
			resp = r
		}
	}
	var buf bytes.Buffer
	if err := wire.WriteMsg(&buf, resp); err != nil {
		return err
	}
	if buf.Len() > maxStatusSize+binary.MaxVarintLen64 {
		s.cfg.log.Warn("exchange: status too large to send", "task", req.Task.Short(), "bytes", buf.Len())
		buf.Reset()
		if err := wire.WriteMsg(&buf, statusResponse{Status: statusNotFound}); err != nil {
			return err
		}
	}
	for b := buf.Bytes(); len(b) > 0; {
		if s.ctx.Err() != nil {
			return s.ctx.Err()
		}
		chunk := b[:min(len(b), copyBufSize)]
		if err := st.SetWriteDeadline(time.Now().Add(s.cfg.idle)); err != nil {
			return err
		}
		n, err := st.Write(chunk)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// acquireSlot takes a slot from slots, waiting up to wait.
func acquireSlot(ctx context.Context, slots chan struct{}, wait time.Duration) bool {
	select {
	case slots <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case slots <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// Status asks p what it holds of task. It returns an ErrNotFound error when
// p does not hold any of the task, and an ErrProtocol error when the answer is
// malformed, too large (see the package doc) or inconsistent in any way (see
// Status.Validate; the answer must also be for task). A returned Status has
// passed Validate. Reads are bounded by the client's idle timeout, refreshed
// while bytes arrive; ctx bounds the whole call.
func (c *Client) Status(ctx context.Context, p peer.ID, task content.TaskID) (*Status, error) {
	if !task.Valid() {
		return nil, fmt.Errorf("exchange: invalid task id %q", truncate(string(task), 80))
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	octx, cancel := context.WithTimeout(ctx, c.cfg.idle)
	st, err := c.h.NewStream(octx, p, StatusProtocolID)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("exchange: open status stream to %s: %w", p, err)
	}
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	frame, err := c.statusRoundTrip(st, p, task)
	stop()
	if err != nil {
		st.Reset()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		c.cfg.log.Debug("exchange: status failed", "peer", p, "err", err)
		return nil, err
	}
	st.Close()
	s, err := decodeStatus(frame, task)
	if err != nil {
		return nil, fmt.Errorf("%w (from %s)", err, p)
	}
	return s, nil
}

// statusRoundTrip sends the request and reads the answer frame.
func (c *Client) statusRoundTrip(st network.Stream, p peer.ID, task content.TaskID) ([]byte, error) {
	var rb bytes.Buffer
	if err := wire.WriteMsg(&rb, statusRequest{Task: task}); err != nil {
		return nil, err
	}
	if err := st.SetWriteDeadline(time.Now().Add(c.cfg.idle)); err != nil {
		return nil, err
	}
	if _, err := st.Write(rb.Bytes()); err != nil {
		return nil, fmt.Errorf("exchange: send status request to %s: %w", p, err)
	}
	// The server may answer and close its side (stopping our sending) as
	// soon as it has read the request, before our FIN: the request is
	// complete, so a failed CloseWrite does not matter; the answer does.
	_ = st.CloseWrite()
	frame, err := readGrowingFrame(&idleReader{st: st, idle: c.cfg.idle}, maxStatusSize)
	if err != nil {
		return nil, readError(p, "status", err)
	}
	return frame, nil
}

// readGrowingFrame reads one wire frame of at most max bytes. Unlike
// wire.ReadFrame it does not allocate the announced length up front: memory
// grows with the bytes that actually arrive, so a peer announcing a huge frame
// costs only what it sends.
func readGrowingFrame(r io.Reader, max int) ([]byte, error) {
	br := bufio.NewReaderSize(r, 32<<10)
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, err
	}
	if n > uint64(max) {
		return nil, fmt.Errorf("%w: %d > %d bytes", wire.ErrTooLarge, n, max)
	}
	var buf bytes.Buffer
	buf.Grow(int(min(n, 64<<10)))
	if _, err := io.CopyN(&buf, br, int64(n)); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf.Bytes(), nil
}

// idleReader reads from a stream, refreshing its read deadline as bytes
// arrive: a read fails only after idle without any byte.
type idleReader struct {
	st      network.Stream
	idle    time.Duration
	lastSet time.Time
}

func (r *idleReader) Read(p []byte) (int, error) {
	if now := time.Now(); now.Sub(r.lastSet) > r.idle/16 {
		if err := r.st.SetReadDeadline(now.Add(r.idle)); err != nil {
			return 0, err
		}
		r.lastSet = now
	}
	return r.st.Read(p)
}
