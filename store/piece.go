package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/dfp2p/dfp2p/content"
	"github.com/ipfs/go-cid"
	bolt "go.etcd.io/bbolt"
)

// release ends an internal Acquire.
func (s *Store) release(id content.TaskID) {
	s.mu.Lock()
	if s.active[id]--; s.active[id] <= 0 {
		delete(s.active, id)
	}
	s.mu.Unlock()
}

// lookupLocked finds a task and checks idx; mu must be held.
func (s *Store) lookupLocked(id content.TaskID, idx int) (*taskState, error) {
	if s.closed {
		return nil, ErrClosed
	}
	ts := s.tasks[id]
	if ts == nil {
		return nil, fmt.Errorf("%w: task %s", ErrNotFound, id.Short())
	}
	if idx < 0 || idx >= ts.n {
		return nil, fmt.Errorf("%w: piece %d out of range [0,%d)", ErrInvalid, idx, ts.n)
	}
	return ts, nil
}

// WritePiece streams piece idx of the task from r into the store while
// hashing it. It reads at most the piece's length plus one byte, so r should
// end where the piece ends (wrap a shared stream in io.LimitReader). If the
// length is wrong, or want is defined and the bytes hash to another CID,
// nothing is stored and the error wraps ErrBadPiece. If want is cid.Undef (the
// seed reading the origin), the computed CID is accepted. Errors reading r are
// returned as they are (not ErrBadPiece).
//
// Writing a piece that is already held reads and verifies r all the same (so
// the caller's stream stays in step) and then keeps the held file; it returns
// the CID if the bytes agree with it and an ErrBadPiece error if they do not.
// Concurrent writers of one piece leave exactly one file.
func (s *Store) WritePiece(id content.TaskID, idx int, want cid.Cid, r io.Reader) (cid.Cid, error) {
	if err := checkID(id); err != nil {
		return cid.Undef, err
	}
	if want.Defined() {
		if _, err := content.SHA256Of(want); err != nil {
			return cid.Undef, fmt.Errorf("%w: want: %v", ErrInvalid, err)
		}
	}
	if r == nil {
		return cid.Undef, fmt.Errorf("%w: nil reader", ErrInvalid)
	}
	s.mu.Lock()
	ts, err := s.lookupLocked(id, idx)
	if err != nil {
		s.mu.Unlock()
		return cid.Undef, err
	}
	s.active[id]++
	_, n := content.PieceRange(ts.rec.Length, ts.rec.PieceSize, idx)
	s.mu.Unlock()
	defer s.release(id)

	f, err := os.CreateTemp(s.taskDir(id), strconv.Itoa(idx)+"-*"+tmpSuffix)
	if err != nil {
		return cid.Undef, fmt.Errorf("store: %w", err)
	}
	tmp := f.Name()
	committed := false
	defer func() {
		if !committed {
			f.Close()
			os.Remove(tmp)
		}
	}()
	var w io.Writer = f
	var enc *encWriter
	if s.crypt != nil {
		if enc, err = s.crypt.newEncWriter(f, id, idx, n); err != nil {
			return cid.Undef, err
		}
		defer enc.release()
		w = enc
	}
	got, err := copyHashed(w, r, n)
	if err != nil {
		return cid.Undef, fmt.Errorf("piece %d of task %s: %w", idx, id.Short(), err)
	}
	if want.Defined() && !got.Equals(want) {
		return cid.Undef, fmt.Errorf("%w: piece %d of task %s hashes to %s, want %s", ErrBadPiece, idx, id.Short(), got, want)
	}
	if enc != nil {
		if err := enc.finish(); err != nil {
			return cid.Undef, err
		}
	}
	if s.opts.sync {
		if err := f.Sync(); err != nil {
			return cid.Undef, fmt.Errorf("store: %w", err)
		}
	}
	if err := f.Close(); err != nil {
		return cid.Undef, fmt.Errorf("store: %w", err)
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return cid.Undef, ErrClosed
	}
	if s.tasks[id] != ts { // cannot happen while active; be safe anyway
		s.mu.Unlock()
		return cid.Undef, fmt.Errorf("%w: task %s", ErrNotFound, id.Short())
	}
	if cur := ts.pieces[idx]; cur.Defined() {
		s.mu.Unlock()
		if cur.Equals(got) {
			return got, nil
		}
		return cid.Undef, fmt.Errorf("%w: piece %d of task %s hashes to %s but %s is held", ErrBadPiece, idx, id.Short(), got, cur)
	}
	if err := os.Rename(tmp, s.piecePath(id, idx, got)); err != nil {
		s.mu.Unlock()
		return cid.Undef, fmt.Errorf("store: %w", err)
	}
	committed = true
	ts.pieces[idx] = got
	ts.held++
	ts.bytes += n
	s.usage += n
	write := s.touchLocked(ts)
	ts.notify()
	held := ts.held
	s.mu.Unlock()
	if write {
		if err := s.persist(id); err != nil {
			s.opts.log.Warn("store: persisting access time", "task", id.Short(), "err", err)
		}
	}
	s.emit(Event{Kind: EventPiece, Task: id, Held: held})
	return got, nil
}

// copyHashed copies exactly n bytes from r to w (reading at most n+1) and
// returns their CID.
func copyHashed(w io.Writer, r io.Reader, n int64) (cid.Cid, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	h := content.NewHasher()
	lr := io.LimitReader(r, n+1)
	var total int64
	for {
		k, err := lr.Read(buf)
		if k > 0 {
			total += int64(k)
			if total > n {
				return cid.Undef, fmt.Errorf("%w: more than %d bytes", ErrBadPiece, n)
			}
			h.Write(buf[:k])
			if w != nil {
				if _, werr := w.Write(buf[:k]); werr != nil {
					return cid.Undef, fmt.Errorf("store: %w", werr)
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return cid.Undef, err
		}
	}
	if total != n {
		return cid.Undef, fmt.Errorf("%w: %d bytes, want %d", ErrBadPiece, total, n)
	}
	return content.CIDFromSHA256(h.Sum(nil))
}

// PieceCID returns the CID of a held piece.
func (s *Store) PieceCID(id content.TaskID, idx int) (cid.Cid, bool) {
	if !id.Valid() {
		return cid.Undef, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ts, err := s.lookupLocked(id, idx)
	if err != nil || !ts.pieces[idx].Defined() {
		return cid.Undef, false
	}
	return ts.pieces[idx], true
}

// Have returns which pieces are held (len = number of pieces), or nil for an
// unknown task.
func (s *Store) Have(id content.TaskID) []bool {
	if !id.Valid() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := s.tasks[id]
	if ts == nil || s.closed {
		return nil
	}
	out := make([]bool, ts.n)
	for i, c := range ts.pieces {
		out[i] = c.Defined()
	}
	return out
}

// OpenPiece opens a held piece for serving and returns a reader of its
// plaintext positioned at its first byte, its length and its CID. The caller
// closes the reader. ErrNotFound if the piece is not held. Without encryption
// the reader is the piece's *os.File. With encryption every segment is
// authenticated before any of its bytes are returned: a piece file that fails
// (tampered, truncated, moved from another piece) makes OpenPiece or Read
// fail with an ErrBadPiece error, and the piece is dropped from the store.
func (s *Store) OpenPiece(id content.TaskID, idx int) (io.ReadCloser, int64, cid.Cid, error) {
	if err := checkID(id); err != nil {
		return nil, 0, cid.Undef, err
	}
	s.mu.Lock()
	ts, err := s.lookupLocked(id, idx)
	if err != nil {
		s.mu.Unlock()
		return nil, 0, cid.Undef, err
	}
	c := ts.pieces[idx]
	if !c.Defined() {
		s.mu.Unlock()
		return nil, 0, cid.Undef, fmt.Errorf("%w: piece %d of task %s not held", ErrNotFound, idx, id.Short())
	}
	_, n := content.PieceRange(ts.rec.Length, ts.rec.PieceSize, idx)
	write := s.touchLocked(ts)
	s.mu.Unlock()
	if write {
		if err := s.persist(id); err != nil {
			s.opts.log.Warn("store: persisting access time", "task", id.Short(), "err", err)
		}
	}
	f, err := s.openPieceFile(id, idx, c, n, 0)
	if errors.Is(err, os.ErrNotExist) { // removed since we looked
		return nil, 0, cid.Undef, fmt.Errorf("%w: piece %d of task %s not held", ErrNotFound, idx, id.Short())
	}
	if err != nil {
		return nil, 0, cid.Undef, err
	}
	return f, n, c, nil
}

// openPieceFile opens the file of piece idx (CID c, n bytes) and returns a
// reader of its plaintext from off. A missing file yields an error wrapping
// os.ErrNotExist. With encryption, a file that fails authentication (at open
// or on a later Read) yields an ErrBadPiece error and the piece is dropped.
func (s *Store) openPieceFile(id content.TaskID, idx int, c cid.Cid, n, off int64) (io.ReadCloser, error) {
	f, err := os.Open(s.piecePath(id, idx, c))
	if errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if s.crypt == nil {
		if off > 0 {
			if _, err := f.Seek(off, io.SeekStart); err != nil {
				f.Close()
				return nil, fmt.Errorf("store: %w", err)
			}
		}
		return f, nil
	}
	d, err := s.crypt.openReader(f, id, idx, n)
	if err == nil && off > 0 {
		err = d.seekPlain(off)
	}
	if err != nil {
		f.Close()
		if errors.Is(err, ErrBadPiece) {
			s.dropCorrupt(id, idx, c, err)
		}
		return nil, err
	}
	d.onBad = func(err error) { s.dropCorrupt(id, idx, c, err) }
	return d, nil
}

// dropCorrupt forgets piece idx if it is still held with CID c, after its
// file failed authentication.
func (s *Store) dropCorrupt(id content.TaskID, idx int, c cid.Cid, why error) {
	s.mu.Lock()
	ts := s.tasks[id]
	if s.closed || ts == nil || idx >= ts.n || !ts.pieces[idx].Equals(c) {
		s.mu.Unlock()
		return
	}
	err := s.dropPieceLocked(id, ts, idx)
	s.mu.Unlock()
	s.opts.log.Warn("store: removed corrupt piece", "task", id.Short(), "piece", idx, "why", why, "err", err)
	if err := s.persist(id); err != nil {
		s.opts.log.Warn("store: persisting task record", "task", id.Short(), "err", err)
	}
}

// dropPieceLocked forgets a held piece and removes its file; mu must be held.
func (s *Store) dropPieceLocked(id content.TaskID, ts *taskState, idx int) error {
	c := ts.pieces[idx]
	if !c.Defined() {
		return nil
	}
	_, n := content.PieceRange(ts.rec.Length, ts.rec.PieceSize, idx)
	ts.pieces[idx] = cid.Undef
	ts.held--
	ts.bytes -= n
	s.usage -= n
	ts.rec.Complete = false
	if err := os.Remove(s.piecePath(id, idx, c)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// Complete checks that every piece is held and matches m, then stores m's
// encoding and marks the task complete. Held pieces whose CID disagrees with
// m are removed and an ErrBadPiece error is returned; if pieces are missing
// the error wraps ErrIncomplete.
func (s *Store) Complete(id content.TaskID, m *content.Manifest) error {
	if m == nil {
		return fmt.Errorf("%w: nil manifest", ErrInvalid)
	}
	enc, err := m.Encode() // validates
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if m.TaskID != id {
		return fmt.Errorf("%w: manifest is for task %s, not %s", ErrInvalid, m.TaskID.Short(), id.Short())
	}

	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	ts, err := s.lockedTask(id)
	if err != nil {
		return err
	}
	if m.Length != ts.rec.Length || m.PieceSize != ts.rec.PieceSize {
		s.mu.Unlock()
		return fmt.Errorf("%w: manifest geometry %d/%d, task has %d/%d", ErrInvalid, m.Length, m.PieceSize, ts.rec.Length, ts.rec.PieceSize)
	}
	wasComplete := ts.rec.Complete
	var bad []int
	var errs []error
	missing := 0
	for i, c := range ts.pieces {
		switch {
		case !c.Defined():
			missing++
		case !c.Equals(m.Pieces[i]):
			bad = append(bad, i)
			errs = append(errs, s.dropPieceLocked(id, ts, i))
		}
	}
	if len(bad) > 0 {
		rec := ts.rec
		s.mu.Unlock()
		if wasComplete {
			errs = append(errs, s.db.Update(func(tx *bolt.Tx) error { return putRecord(tx, id, rec) }))
		}
		s.opts.log.Warn("store: held pieces disagree with manifest; removed", "task", id.Short(), "pieces", bad)
		return errors.Join(append([]error{fmt.Errorf("%w: task %s: %d held pieces disagree with the manifest and were removed (first: %d)",
			ErrBadPiece, id.Short(), len(bad), bad[0])}, errs...)...)
	}
	if missing > 0 {
		s.mu.Unlock()
		return fmt.Errorf("%w: task %s: %d of %d pieces missing", ErrIncomplete, id.Short(), missing, ts.n)
	}
	ts.rec.Complete = true
	s.touchLocked(ts)
	rec := ts.rec
	s.mu.Unlock()
	err = s.db.Update(func(tx *bolt.Tx) error {
		if err := putRecord(tx, id, rec); err != nil {
			return err
		}
		return tx.Bucket(bucketManifests).Put([]byte(id), enc)
	})
	s.mu.Lock()
	if err != nil {
		ts.rec.Complete = wasComplete
	} else if rec.LastAccess.After(ts.persistedAccess) {
		ts.persistedAccess = rec.LastAccess
	}
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("store: writing manifest: %w", err)
	}
	if root, err := m.CID(); err == nil {
		s.emit(Event{Kind: EventComplete, Task: id, Root: root})
	}
	return nil
}

// Verify rehashes every held piece of the task, removes those whose bytes do
// not match their CID and returns their indices. Use it after an unclean
// shutdown with WithSync(false), or to scrub. It is VerifyContext with one
// worker and no deadline.
func (s *Store) Verify(id content.TaskID) ([]int, error) {
	rep, err := s.VerifyContext(context.Background(), id, 1)
	return rep.Bad, err
}

// checkFile reports whether the file of piece idx (CID c) holds exactly n
// bytes hashing to c (after decryption, with encryption: a file that fails
// authentication is bad). A missing file counts as bad.
func (s *Store) checkFile(id content.TaskID, idx int, c cid.Cid, n int64) (bool, error) {
	f, err := os.Open(s.piecePath(id, idx, c))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	defer f.Close()
	var r io.Reader = f
	if s.crypt != nil {
		d, err := s.crypt.openReader(f, id, idx, n)
		if errors.Is(err, ErrBadPiece) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		defer d.Close()
		r = d
	}
	got, err := copyHashed(nil, r, n)
	if errors.Is(err, ErrBadPiece) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	return got.Equals(c), nil
}
