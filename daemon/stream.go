package daemon

import (
	"context"
	"errors"
	"io"

	"github.com/dfp2p/dfp2p/content"
)

// Stream reads a download's bytes in order, waiting for pieces as they land.
// After Read returns io.EOF, SHA256 gives the whole-file sha256 from the
// verified manifest, for the reader to compare with what it received.
type Stream struct {
	d   *Daemon
	dl  *download
	ctx context.Context

	Task   content.TaskID
	Length int64

	piece int
	off   int64
	cur   io.ReadCloser
	left  int64
	err   error
}

// Read implements io.Reader.
func (s *Stream) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	for s.cur == nil {
		if s.off >= s.Length {
			// Every byte is out; EOF only once the manifest checked out.
			select {
			case <-s.dl.done:
			case <-s.ctx.Done():
				s.err = s.ctx.Err()
				return 0, s.err
			}
			if s.dl.err != nil {
				s.err = s.dl.err
				return 0, s.err
			}
			s.err = io.EOF
			return 0, io.EOF
		}
		if err := s.dl.waitPiece(s.ctx, s.piece); err != nil {
			s.err = err
			return 0, err
		}
		f, n, _, err := s.d.st.OpenPiece(s.Task, s.piece)
		if err != nil {
			s.err = err
			return 0, err
		}
		s.cur, s.left = f, n
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.cur.Read(p)
	s.left -= int64(n)
	s.off += int64(n)
	if s.left == 0 || err != nil {
		_ = s.cur.Close()
		s.cur = nil
		s.piece++
		if err != nil && !errors.Is(err, io.EOF) {
			s.err = err
			return n, err
		}
		if s.left != 0 {
			s.err = io.ErrUnexpectedEOF
			return n, s.err
		}
	}
	return n, nil
}

// Close releases the stream. The download itself goes on.
func (s *Stream) Close() error {
	if s.cur != nil {
		_ = s.cur.Close()
		s.cur = nil
	}
	if s.err == nil {
		s.err = errors.New("stream closed")
	}
	return nil
}

// SHA256 is the whole-file sha256 (hex) from the manifest, once the stream
// has reached EOF; "" before.
func (s *Stream) SHA256() string {
	if s.err != io.EOF || s.dl.manifest == nil {
		return ""
	}
	return s.dl.manifest.SHA256
}

// Stats tells where the download's bytes came from so far.
func (s *Stream) Stats() Stats { return s.dl.stats() }

// Held and Pieces report the download's progress in pieces.
func (s *Stream) Progress() (held, pieces int) {
	s.dl.mu.Lock()
	defer s.dl.mu.Unlock()
	return s.dl.held, len(s.dl.have)
}
