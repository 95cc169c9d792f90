package store

import (
	"errors"

	"github.com/dfp2p/dfp2p/content"
)

// Begin records a task's geometry; with WritePiece, Have, PieceCID, Complete,
// NewReader and Drop it makes a Store the piece writer an origin fetch
// (package cdn) fills.
func (s *Store) Begin(id content.TaskID, url string, length, pieceSize int64) error {
	_, err := s.EnsureTask(id, url, length, pieceSize)
	return err
}

// Drop deletes a task whose content turned out wrong (a digest mismatch). A
// task still in use is left for its user to delete once released.
func (s *Store) Drop(id content.TaskID) error {
	err := s.DeleteTask(id)
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrInUse) {
		return nil
	}
	return err
}
