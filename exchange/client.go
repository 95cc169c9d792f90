package exchange

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/internal/limit"
	"github.com/dfp2p/dfp2p/internal/wire"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// DefaultIdleTimeout is the longest a fetch waits without any byte arriving.
const DefaultIdleTimeout = 15 * time.Second

type clientConfig struct {
	idle  time.Duration
	log   *slog.Logger
	limit *limit.Limiter
}

// ClientOption configures NewClient.
type ClientOption func(*clientConfig)

// WithIdleTimeout sets the longest time a fetch waits for the stream to open
// or for the next bytes of an answer (default DefaultIdleTimeout). It is not
// a bound on a whole piece: a slow peer that keeps sending is not cut off.
func WithIdleTimeout(d time.Duration) ClientOption {
	return func(c *clientConfig) {
		if d > 0 {
			c.idle = d
		}
	}
}

// WithClientLogger sets the client's logger.
func WithClientLogger(l *slog.Logger) ClientOption {
	return func(c *clientConfig) { c.log = l }
}

// WithDownloadLimit makes every piece byte the client receives wait on l (a
// process's download limit, shared by all its fetches). Reads then take at
// most one burst of l at a time. nil: unlimited.
func WithDownloadLimit(l *limit.Limiter) ClientOption {
	return func(c *clientConfig) { c.limit = l }
}

// Client fetches pieces from peers. It is safe for concurrent use; each
// Fetch uses its own stream, and concurrent Fetch calls to the same peer share
// the connection.
type Client struct {
	h   host.Host
	cfg clientConfig
}

// NewClient returns a client that opens streams from h.
func NewClient(h host.Host, opts ...ClientOption) *Client {
	cfg := clientConfig{idle: DefaultIdleTimeout}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.log == nil {
		cfg.log = slog.New(slog.DiscardHandler)
	}
	return &Client{h: h, cfg: cfg}
}

// Result is the outcome of fetching one piece.
type Result struct {
	Ref   PieceRef
	Bytes int64 // piece bytes received (the piece length on success)
	Err   error
}

// Fetch requests refs from p on one stream (pipelined: all refs are sent at
// once and the server answers in order; more than MaxRefsPerStream refs use
// consecutive streams) and, for each piece the server has, calls deliver with
// a reader that yields exactly the piece's bytes as they arrive. deliver is
// expected to verify the bytes against ref.CID (for example store.WritePiece);
// deliver is called from the calling goroutine, one piece at a time.
//
// Fetch returns one Result per ref, in order. A "not found" or "busy" answer
// only fails that ref (ErrNotFound, ErrBusy). These end the stream, and every
// ref not yet answered then fails with ErrAborted:
//   - an error returned by deliver (it is reported, wrapped, for its ref);
//   - a transport error or idle timeout (no bytes for the idle timeout);
//   - a protocol violation by the peer (ErrProtocol);
//   - the end of ctx (the stream is reset at once).
//
// A deliver that returns nil without reading the whole piece gets that ref
// failed (the rest of the piece is discarded, and the stream goes on).
// Reading body after deliver returned is not allowed. For speed, deliver
// should copy with io.Copy(dst, body) (body implements io.WriterTo, which
// moves the piece in 1 MiB chunks) and must not keep body.
func (c *Client) Fetch(ctx context.Context, p peer.ID, refs []PieceRef, deliver func(PieceRef, io.Reader) error) []Result {
	results := make([]Result, len(refs))
	pending := make([]int, 0, len(refs))
	for i, r := range refs {
		results[i].Ref = r
		if err := r.validate(); err != nil {
			results[i].Err = fmt.Errorf("exchange: invalid ref %d: %w", i, err)
			continue
		}
		pending = append(pending, i)
	}
	for start := 0; start < len(pending); start += MaxRefsPerStream {
		batch := pending[start:min(start+MaxRefsPerStream, len(pending))]
		if err := c.fetchBatch(ctx, p, refs, batch, results, deliver); err != nil {
			for _, j := range pending[start:] {
				if results[j].Err == nil && results[j].Bytes == 0 {
					results[j].Err = fmt.Errorf("%w (%v)", ErrAborted, err)
				}
			}
			break
		}
	}
	return results
}

// fetchBatch runs one stream. It fills results for the refs it reaches and
// returns a non-nil error when the stream failed.
func (c *Client) fetchBatch(ctx context.Context, p peer.ID, refs []PieceRef, batch []int, results []Result, deliver func(PieceRef, io.Reader) error) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	octx, cancel := context.WithTimeout(ctx, c.cfg.idle)
	st, err := c.h.NewStream(octx, p, ProtocolID)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return fmt.Errorf("exchange: open stream to %s: %w", p, err)
	}
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer func() {
		stop()
		if err != nil {
			st.Reset()
			c.cfg.log.Debug("exchange: fetch stream failed", "peer", p, "err", err)
		} else {
			st.Close()
		}
	}()

	req := request{Pieces: make([]wireRef, len(batch))}
	for k, i := range batch {
		req.Pieces[k] = wireRef(refs[i])
	}
	var rb bytes.Buffer
	if err := wire.WriteMsg(&rb, req); err != nil {
		return err
	}
	if err := st.SetWriteDeadline(time.Now().Add(c.cfg.idle)); err != nil {
		return err
	}
	if _, err := st.Write(rb.Bytes()); err != nil {
		return fmt.Errorf("exchange: send request to %s: %w", p, err)
	}
	// The request is written. CloseWrite fails if the server has already
	// answered everything and closed (which stops our write direction);
	// its answers are still there to read.
	_ = st.CloseWrite()

	br := bufio.NewReaderSize(st, 32<<10)
	for _, i := range batch {
		res := &results[i]
		if err := c.fetchOne(ctx, st, br, p, res, deliver); err != nil {
			if ctx.Err() != nil {
				// The reset came from ctx: report that, not the reset.
				err = fmt.Errorf("%w (%v)", ctx.Err(), err)
				res.Err = err
			}
			if res.Err == nil {
				res.Err = err
			}
			return err
		}
	}
	return nil
}

// fetchOne reads one answer. A returned error is fatal for the stream; res.Err
// may be set without an error for per-piece failures.
func (c *Client) fetchOne(ctx context.Context, st network.Stream, br *bufio.Reader, p peer.ID, res *Result, deliver func(PieceRef, io.Reader) error) error {
	if err := st.SetReadDeadline(time.Now().Add(c.cfg.idle)); err != nil {
		return err
	}
	frame, err := wire.ReadFrame(br, maxHeaderSize)
	if err != nil {
		return readError(p, "header", err)
	}
	var h header
	if err := json.Unmarshal(frame, &h); err != nil {
		return fmt.Errorf("%w: bad header from %s: %v", ErrProtocol, p, err)
	}
	switch h.Status {
	case statusOK:
	case statusNotFound:
		res.Err = fmt.Errorf("%w: %s from %s", ErrNotFound, res.Ref, p)
		return nil
	case statusBusy:
		res.Err = fmt.Errorf("%w: %s", ErrBusy, p)
		return nil
	default:
		return fmt.Errorf("%w: unknown status %q from %s", ErrProtocol, h.Status, p)
	}
	if h.Length <= 0 || h.Length > content.MaxValidPieceSize {
		return fmt.Errorf("%w: piece length %d from %s", ErrProtocol, h.Length, p)
	}

	body := &pieceBody{st: st, r: br, remaining: h.Length, idle: c.cfg.idle, ctx: ctx, limit: c.cfg.limit}
	derr := deliver(res.Ref, body)
	body.done = true
	res.Bytes = h.Length - body.remaining
	if body.err != nil {
		// The stream failed under deliver; that is the cause, whatever
		// deliver made of it.
		return readError(p, "piece", body.err)
	}
	if derr != nil {
		return fmt.Errorf("exchange: deliver %s from %s: %w", res.Ref, p, derr)
	}
	if body.remaining > 0 {
		body.done = false
		if _, err := io.Copy(io.Discard, body); err != nil {
			return readError(p, "piece", err)
		}
		res.Err = fmt.Errorf("exchange: deliver returned before reading all of %s", res.Ref)
	}
	return nil
}

func readError(p peer.ID, what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %s ended early reading %s", ErrProtocol, p, what)
	}
	if errors.Is(err, wire.ErrTooLarge) {
		return fmt.Errorf("%w: %s from %s: %v", ErrProtocol, what, p, err)
	}
	if errors.Is(err, ErrProtocol) {
		return err
	}
	// binary.ReadUvarint reports an over-long length prefix with an
	// unexported error; only its text identifies it.
	if strings.Contains(err.Error(), "varint overflows") {
		return fmt.Errorf("%w: %s from %s: %v", ErrProtocol, what, p, err)
	}
	return fmt.Errorf("exchange: read %s from %s: %w", what, p, err)
}

// pieceBody yields exactly one piece's bytes from the stream, refreshing the
// idle deadline as bytes arrive, and waits on the download limit for the
// bytes it read before returning them.
type pieceBody struct {
	ctx       context.Context
	limit     *limit.Limiter
	st        network.Stream
	r         *bufio.Reader
	remaining int64
	idle      time.Duration
	lastSet   time.Time
	err       error
	done      bool
}

var errBodyDone = errors.New("exchange: piece body read after deliver returned")

// gatherMin is how many bytes a Read collects (if the piece has that many
// left and p is that large) before returning. QUIC hands out data a packet or
// a few at a time when the reader keeps up; returning such slivers would make
// every consumer (hashing, file writes) pay per-call costs on tiny chunks.
const gatherMin = 256 << 10

func (b *pieceBody) Read(p []byte) (int, error) {
	n, err := b.read(p)
	if n > 0 && b.limit != nil {
		if werr := b.limit.WaitN(b.ctx, n); werr != nil && err == nil {
			b.err, err = werr, werr
		}
	}
	return n, err
}

func (b *pieceBody) read(p []byte) (int, error) {
	if b.done {
		return 0, errBodyDone
	}
	if b.err != nil {
		return 0, b.err
	}
	if b.remaining == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	if c := b.limit.Chunk(); c > 0 && len(p) > c {
		p = p[:c]
	}
	want := min(len(p), gatherMin)
	n := 0
	for n < want {
		// Refresh the idle deadline, but not on every read: it is then at
		// least 15/16 of the idle timeout after the last progress.
		if now := time.Now(); now.Sub(b.lastSet) > b.idle/16 {
			if err := b.st.SetReadDeadline(now.Add(b.idle)); err != nil {
				b.err = err
				return n, err
			}
			b.lastSet = now
		}
		k, err := b.r.Read(p[n:])
		n += k
		b.remaining -= int64(k)
		if err != nil {
			if err == io.EOF && b.remaining == 0 {
				return n, nil // the server closed right after the last piece
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			b.err = err
			return n, err
		}
	}
	return n, nil
}

// WriteTo moves the piece to w in large chunks, so io.Copy(w, body) does not
// fall back to small buffers.
func (b *pieceBody) WriteTo(w io.Writer) (int64, error) {
	bp := getBuf()
	defer putBuf(bp)
	buf := *bp
	var total int64
	for b.remaining > 0 {
		n, err := b.Read(buf)
		if n > 0 {
			wn, werr := w.Write(buf[:n])
			total += int64(wn)
			if werr != nil {
				return total, werr
			}
			if wn != n {
				return total, io.ErrShortWrite
			}
		}
		if err != nil {
			return total, err
		}
	}
	return total, nil
}
