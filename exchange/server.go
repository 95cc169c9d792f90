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
	"sync"
	"time"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/internal/limit"
	"github.com/dfp2p/dfp2p/internal/wire"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Source is what a Server serves from. store.(*Store).OpenPiece has this
// shape. OpenPiece returns a reader of the piece's bytes positioned at its
// first byte (the server reads it sequentially and closes it; a store with
// encryption at rest hands out decrypted bytes), its length and its CID; any
// error is answered as "not found", and a Read error resets the stream. A
// peer serves the pieces it holds while it still downloads others: the server
// only asks the Source, piece by piece.
type Source interface {
	OpenPiece(task content.TaskID, idx int) (io.ReadCloser, int64, cid.Cid, error)
}

// Server defaults.
const (
	DefaultMaxUploads = 32
	// DefaultQueueTimeout is how long a requested piece waits for an upload
	// slot before the server answers "busy". It must stay well below the
	// clients' idle timeout, or they give up first.
	DefaultQueueTimeout = 5 * time.Second
	// DefaultServerIdleTimeout bounds how long the server waits for the
	// request, and for the client to accept more bytes.
	DefaultServerIdleTimeout = 15 * time.Second
)

type serverConfig struct {
	maxUploads   int
	queueTimeout time.Duration
	idle         time.Duration
	observe      func(peer.ID, int64)
	log          *slog.Logger
	status       func(content.TaskID) (*Status, error)
	limit        *limit.Limiter
}

// ServerOption configures NewServer.
type ServerOption func(*serverConfig)

// WithMaxUploads bounds the pieces uploaded at the same time by this server
// (default DefaultMaxUploads). A piece beyond the bound waits for a slot for
// up to the queue timeout, then it and the rest of its request are answered
// "busy".
func WithMaxUploads(n int) ServerOption {
	return func(c *serverConfig) {
		if n > 0 {
			c.maxUploads = n
		}
	}
}

// WithQueueTimeout sets how long a piece waits for an upload slot (default
// DefaultQueueTimeout).
func WithQueueTimeout(d time.Duration) ServerOption {
	return func(c *serverConfig) {
		if d > 0 {
			c.queueTimeout = d
		}
	}
}

// WithServerIdleTimeout sets how long the server waits for a request or for
// the client to accept bytes (default DefaultServerIdleTimeout).
func WithServerIdleTimeout(d time.Duration) ServerOption {
	return func(c *serverConfig) {
		if d > 0 {
			c.idle = d
		}
	}
}

// WithUploadObserver registers f, called after each piece upload (complete or
// not) with the peer and the piece bytes written to it. f must be fast and
// safe for concurrent use.
func WithUploadObserver(f func(p peer.ID, bytes int64)) ServerOption {
	return func(c *serverConfig) { c.observe = f }
}

// WithUploadLimit makes every piece byte the server sends wait on l (a
// process's upload limit, shared by all its streams); pieces then go out in
// chunks of at most one burst of l. nil: unlimited.
func WithUploadLimit(l *limit.Limiter) ServerOption {
	return func(c *serverConfig) { c.limit = l }
}

// WithServerLogger sets the server's logger.
func WithServerLogger(l *slog.Logger) ServerOption {
	return func(c *serverConfig) { c.log = l }
}

// WithStatus makes the server answer status queries (StatusProtocolID) with
// fn, which reports what this peer holds of a task (StoreStatus builds one
// from a store). fn returns an ErrNotFound error (or any error) for a task
// it does not hold, which is answered "not_found"; a status that fails
// Validate is answered "not_found" too. fn must be safe for concurrent use.
func WithStatus(fn func(content.TaskID) (*Status, error)) ServerOption {
	return func(c *serverConfig) { c.status = fn }
}

// Server answers piece requests from a Source.
type Server struct {
	h     host.Host
	src   Source
	cfg   serverConfig
	slots chan struct{}
	// statusSlots bounds the status answers built and sent at once.
	statusSlots chan struct{}

	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	closed  bool
	streams map[network.Stream]struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

// NewServer registers the exchange stream handler on h, serving from src, and
// the status handler if WithStatus is given.
func NewServer(h host.Host, src Source, opts ...ServerOption) *Server {
	cfg := serverConfig{
		maxUploads:   DefaultMaxUploads,
		queueTimeout: DefaultQueueTimeout,
		idle:         DefaultServerIdleTimeout,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.log == nil {
		cfg.log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		h:           h,
		src:         src,
		cfg:         cfg,
		slots:       make(chan struct{}, cfg.maxUploads),
		statusSlots: make(chan struct{}, maxStatusAnswers),
		ctx:         ctx,
		cancel:      cancel,
		streams:     make(map[network.Stream]struct{}),
	}
	h.SetStreamHandler(ProtocolID, s.handle)
	if cfg.status != nil {
		h.SetStreamHandler(StatusProtocolID, s.handleStatus)
	}
	return s
}

// Close removes the stream handlers, resets the streams being served and
// waits for their handlers to return.
func (s *Server) Close() error {
	s.once.Do(func() {
		s.h.RemoveStreamHandler(ProtocolID)
		if s.cfg.status != nil {
			s.h.RemoveStreamHandler(StatusProtocolID)
		}
		s.mu.Lock()
		s.closed = true
		for st := range s.streams {
			st.Reset()
		}
		s.mu.Unlock()
		s.cancel()
		s.wg.Wait()
	})
	return nil
}

func (s *Server) track(st network.Stream) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.streams[st] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(st network.Stream) {
	s.mu.Lock()
	delete(s.streams, st)
	s.mu.Unlock()
	s.wg.Done()
}

func (s *Server) handle(st network.Stream) {
	if !s.track(st) {
		st.Reset()
		return
	}
	defer s.untrack(st)
	if err := s.serve(st); err != nil {
		st.Reset()
		s.cfg.log.Debug("exchange: serve stream failed", "peer", st.Conn().RemotePeer(), "err", err)
		return
	}
	st.Close()
}

func (s *Server) serve(st network.Stream) error {
	remote := st.Conn().RemotePeer()
	if err := st.SetReadDeadline(time.Now().Add(s.cfg.idle)); err != nil {
		return err
	}
	frame, err := wire.ReadFrame(bufio.NewReaderSize(st, 4<<10), maxRequestSize)
	if err != nil {
		return fmt.Errorf("read request: %w", err)
	}
	var req request
	if err := json.Unmarshal(frame, &req); err != nil {
		return fmt.Errorf("%w: bad request: %v", ErrProtocol, err)
	}
	if n := len(req.Pieces); n == 0 || n > MaxRefsPerStream {
		return fmt.Errorf("%w: request for %d pieces", ErrProtocol, n)
	}
	for _, r := range req.Pieces {
		if err := PieceRef(r).validate(); err != nil {
			return fmt.Errorf("%w: %v", ErrProtocol, err)
		}
	}

	var hb bytes.Buffer
	writeHeader := func(h header) error {
		hb.Reset()
		if err := wire.WriteMsg(&hb, h); err != nil {
			return err
		}
		if err := st.SetWriteDeadline(time.Now().Add(s.cfg.idle)); err != nil {
			return err
		}
		_, err := st.Write(hb.Bytes())
		return err
	}

	for i, r := range req.Pieces {
		f, size, ok := s.open(PieceRef(r))
		if !ok {
			if err := writeHeader(header{Status: statusNotFound}); err != nil {
				return err
			}
			continue
		}
		if !s.acquire() {
			f.Close()
			if s.ctx.Err() != nil {
				return s.ctx.Err()
			}
			s.cfg.log.Debug("exchange: busy", "peer", remote, "piece", PieceRef(r), "pending", len(req.Pieces)-i)
			for range req.Pieces[i:] {
				if err := writeHeader(header{Status: statusBusy}); err != nil {
					return err
				}
			}
			return nil
		}
		n, err := s.upload(st, f, size, writeHeader)
		<-s.slots
		f.Close()
		if s.cfg.observe != nil && n > 0 {
			s.cfg.observe(remote, n)
		}
		if err != nil {
			return fmt.Errorf("upload %s: %w", PieceRef(r), err)
		}
	}
	return nil
}

// open asks the Source for the piece and checks its CID and size.
func (s *Server) open(r PieceRef) (io.ReadCloser, int64, bool) {
	f, size, c, err := s.src.OpenPiece(r.Task, r.Index)
	if err != nil {
		s.cfg.log.Debug("exchange: piece not served", "piece", r, "err", err)
		return nil, 0, false
	}
	if !c.Equals(r.CID) || size <= 0 || size > content.MaxValidPieceSize {
		s.cfg.log.Debug("exchange: stored piece does not match request", "piece", r, "stored", c, "size", size)
		f.Close()
		return nil, 0, false
	}
	return f, size, true
}

// acquire takes an upload slot, waiting up to the queue timeout.
func (s *Server) acquire() bool {
	return acquireSlot(s.ctx, s.slots, s.cfg.queueTimeout)
}

// upload writes the ok header and size bytes of f. It returns the piece bytes
// written.
func (s *Server) upload(st network.Stream, f io.Reader, size int64, writeHeader func(header) error) (int64, error) {
	if err := writeHeader(header{Status: statusOK, Length: size}); err != nil {
		return 0, err
	}
	bp := getBuf()
	defer putBuf(bp)
	buf := *bp
	var sent int64
	if c := s.cfg.limit.Chunk(); c > 0 && c < len(buf) {
		buf = buf[:c]
	}
	for sent < size {
		chunk := buf[:min(int64(len(buf)), size-sent)]
		if err := s.cfg.limit.WaitN(s.ctx, len(chunk)); err != nil {
			return sent, err
		}
		if _, err := io.ReadFull(f, chunk); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return sent, fmt.Errorf("read piece: %w", err)
		}
		if err := st.SetWriteDeadline(time.Now().Add(s.cfg.idle)); err != nil {
			return sent, err
		}
		n, err := st.Write(chunk)
		sent += int64(n)
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}
