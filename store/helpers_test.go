package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/dfp2p/dfp2p/content"
	"github.com/ipfs/go-cid"
)

const ps = content.MinPieceSize // the smallest piece the rule picks

func tid(name string) content.TaskID {
	s := sha256.Sum256([]byte(name))
	return content.TaskID(hex.EncodeToString(s[:]))
}

func randBytes(seed uint64, n int64) []byte {
	r := rand.New(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 1}))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openStore(t testing.TB, dir string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(dir, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// file is a task's bytes with their piece CIDs.
type file struct {
	id     content.TaskID
	data   []byte
	pieces []cid.Cid
}

func newFile(name string, length int64) *file {
	f := &file{id: tid(name), data: randBytes(uint64(len(name))*7919+uint64(length), length)}
	for i := range content.NumPieces(length, ps) {
		f.pieces = append(f.pieces, content.PieceCID(f.piece(i)))
	}
	return f
}

func (f *file) piece(i int) []byte {
	off, n := content.PieceRange(int64(len(f.data)), ps, i)
	return f.data[off : off+n]
}

func (f *file) manifest() *content.Manifest {
	sum := sha256.Sum256(f.data)
	return &content.Manifest{
		Version:   content.ManifestVersion,
		TaskID:    f.id,
		Length:    int64(len(f.data)),
		PieceSize: ps,
		Pieces:    f.pieces,
		SHA256:    hex.EncodeToString(sum[:]),
	}
}

func ensure(t testing.TB, s *Store, f *file) {
	t.Helper()
	if _, err := s.EnsureTask(f.id, "https://example.com/"+string(f.id[:8]), int64(len(f.data)), ps); err != nil {
		t.Fatalf("EnsureTask: %v", err)
	}
}

func writeAll(t testing.TB, s *Store, f *file) {
	t.Helper()
	ensure(t, s, f)
	for i := range f.pieces {
		writePiece(t, s, f, i)
	}
}

func writePiece(t testing.TB, s *Store, f *file, i int) {
	t.Helper()
	c, err := s.WritePiece(f.id, i, f.pieces[i], bytes.NewReader(f.piece(i)))
	if err != nil {
		t.Fatalf("WritePiece %d: %v", i, err)
	}
	if !c.Equals(f.pieces[i]) {
		t.Fatalf("WritePiece %d returned %s, want %s", i, c, f.pieces[i])
	}
}

// listDir returns the sorted names in dir (nil if it does not exist).
func listDir(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

func taskDirOf(dir string, id content.TaskID) string {
	return filepath.Join(dir, "tasks", string(id))
}

func readAll(t testing.TB, r io.ReadCloser) []byte {
	t.Helper()
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return b
}
