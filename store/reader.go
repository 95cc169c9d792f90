package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/dfp2p/dfp2p/content"
	"github.com/ipfs/go-cid"
)

// NewReader returns the task's bytes in order from off to the end, reading
// piece files one at a time. If it reaches a piece that is not held, Read
// fails with an ErrNotFound error; use NewReaderContext to wait for pieces
// still being downloaded. The task stays active (see Acquire) until the
// reader is closed.
func (s *Store) NewReader(id content.TaskID, off int64) (io.ReadCloser, error) {
	return s.newReader(nil, id, off)
}

// NewReaderContext is NewReader, but a Read that reaches a piece not yet held
// waits until it is written, ctx is done, or the store is closed.
func (s *Store) NewReaderContext(ctx context.Context, id content.TaskID, off int64) (io.ReadCloser, error) {
	if ctx == nil {
		return nil, fmt.Errorf("%w: nil context", ErrInvalid)
	}
	return s.newReader(ctx, id, off)
}

func (s *Store) newReader(ctx context.Context, id content.TaskID, off int64) (io.ReadCloser, error) {
	ts, err := s.lockedTask(id)
	if err != nil {
		return nil, err
	}
	if off < 0 || off > ts.rec.Length {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: offset %d outside [0,%d]", ErrInvalid, off, ts.rec.Length)
	}
	s.active[id]++
	write := s.touchLocked(ts)
	r := &reader{s: s, ctx: ctx, id: id, ts: ts, off: off, length: ts.rec.Length, pieceSize: ts.rec.PieceSize}
	s.mu.Unlock()
	if write {
		if err := s.persist(id); err != nil {
			s.opts.log.Warn("store: persisting access time", "task", id.Short(), "err", err)
		}
	}
	return r, nil
}

type reader struct {
	s         *Store
	ctx       context.Context // nil: do not wait for pieces
	id        content.TaskID
	ts        *taskState
	off       int64
	length    int64
	pieceSize int64
	cur       io.ReadCloser
	curEnd    int64 // offset where the current piece ends
	closed    bool
}

func (r *reader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, os.ErrClosed
	}
	if r.off >= r.length {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if r.cur == nil {
		idx := int(r.off / r.pieceSize)
		pieceOff, n := content.PieceRange(r.length, r.pieceSize, idx)
		f, err := r.openPiece(idx, n, r.off-pieceOff)
		if err != nil {
			return 0, err
		}
		r.cur, r.curEnd = f, pieceOff+n
	}
	if rem := r.curEnd - r.off; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := r.cur.Read(p)
	r.off += int64(n)
	if r.off == r.curEnd {
		r.cur.Close()
		r.cur = nil
		err = nil
	} else if err == io.EOF {
		err = fmt.Errorf("store: piece file of task %s shorter than expected: %w", r.id.Short(), io.ErrUnexpectedEOF)
	}
	if err == nil && r.off >= r.length {
		err = io.EOF
	}
	return n, err
}

// openPiece opens piece idx (n bytes) positioned at off, waiting for it if
// r.ctx is set.
func (r *reader) openPiece(idx int, n, off int64) (io.ReadCloser, error) {
	s := r.s
	var missing cid.Cid // a CID whose file was found missing
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, ErrClosed
		}
		if s.tasks[r.id] != r.ts {
			s.mu.Unlock()
			return nil, fmt.Errorf("%w: task %s was removed", ErrNotFound, r.id.Short())
		}
		c := r.ts.pieces[idx]
		changed := r.ts.changed
		s.mu.Unlock()
		if c.Defined() && c.Equals(missing) {
			return nil, fmt.Errorf("store: file of piece %d of task %s is missing", idx, r.id.Short())
		}
		if c.Defined() {
			f, err := s.openPieceFile(r.id, idx, c, n, off)
			if err == nil {
				return f, nil
			}
			if !errors.Is(err, os.ErrNotExist) {
				return nil, err
			}
			// Removed since we looked (a bad piece dropped): wait for it again.
			if r.ctx == nil {
				return nil, notHeld(r.id, idx)
			}
			missing = c
			continue
		}
		if r.ctx == nil {
			return nil, notHeld(r.id, idx)
		}
		select {
		case <-changed:
		case <-r.ctx.Done():
			return nil, r.ctx.Err()
		}
	}
}

func notHeld(id content.TaskID, idx int) error {
	return fmt.Errorf("%w: piece %d of task %s not held", ErrNotFound, idx, id.Short())
}

func (r *reader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	if r.cur != nil {
		r.cur.Close()
		r.cur = nil
	}
	r.s.release(r.id)
	return nil
}
