package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/dfp2p/dfp2p/content"
	"github.com/ipfs/go-cid"
)

func TestWriteReadBack(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	f := newFile("a", 2*ps+12345)
	writeAll(t, s, f)

	tk, err := s.Task(f.id)
	if err != nil {
		t.Fatal(err)
	}
	if tk.Pieces != 3 || tk.Held != 3 || tk.Bytes != int64(len(f.data)) || tk.Length != int64(len(f.data)) || tk.PieceSize != ps {
		t.Fatalf("task = %+v", tk)
	}
	if tk.Complete || tk.Manifest != nil || !strings.HasPrefix(tk.URL, "https://") {
		t.Fatalf("task = %+v", tk)
	}
	if got := s.Usage(); got != int64(len(f.data)) {
		t.Fatalf("Usage = %d", got)
	}
	for i, h := range s.Have(f.id) {
		if !h {
			t.Fatalf("piece %d not held", i)
		}
		c, ok := s.PieceCID(f.id, i)
		if !ok || !c.Equals(f.pieces[i]) {
			t.Fatalf("PieceCID %d = %s %v", i, c, ok)
		}
		fh, n, c2, err := s.OpenPiece(f.id, i)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(fh)
		fh.Close()
		if err != nil || int64(len(b)) != n || !bytes.Equal(b, f.piece(i)) || !c2.Equals(f.pieces[i]) {
			t.Fatalf("OpenPiece %d: n=%d len=%d err=%v", i, n, len(b), err)
		}
	}
	r, err := s.NewReader(f.id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readAll(t, r), f.data) {
		t.Fatal("NewReader bytes differ")
	}
	// Piece files are named <idx>-<cid>; nothing else is left.
	want := []string{pieceName(0, f.pieces[0]), pieceName(1, f.pieces[1]), pieceName(2, f.pieces[2])}
	if got := listDir(t, taskDirOf(dir, f.id)); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("task dir = %v, want %v", got, want)
	}
}

func TestSeedUndefAcceptsComputedCID(t *testing.T) {
	s := openStore(t, t.TempDir())
	f := newFile("seed", ps+1)
	ensure(t, s, f)
	for i := range f.pieces {
		c, err := s.WritePiece(f.id, i, cid.Undef, iotest.HalfReader(bytes.NewReader(f.piece(i))))
		if err != nil || !c.Equals(f.pieces[i]) {
			t.Fatalf("piece %d: %s %v", i, c, err)
		}
	}
}

func TestBadPieceLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	f := newFile("bad", 2*ps)
	ensure(t, s, f)
	other := content.PieceCID([]byte("something else"))
	n := int64(ps)
	cases := []struct {
		name string
		want cid.Cid
		r    io.Reader
		bad  bool // ErrBadPiece expected (else another error)
	}{
		{"wrong cid", other, bytes.NewReader(f.piece(0)), true},
		{"short", f.pieces[0], bytes.NewReader(f.piece(0)[:n-1]), true},
		{"short undef", cid.Undef, bytes.NewReader(f.piece(0)[:n-1]), true},
		{"long", f.pieces[0], io.MultiReader(bytes.NewReader(f.piece(0)), strings.NewReader("x")), true},
		{"long undef", cid.Undef, io.MultiReader(bytes.NewReader(f.piece(0)), strings.NewReader("xyz")), true},
		{"empty", f.pieces[0], strings.NewReader(""), true},
		{"reader error", f.pieces[0], iotest.TimeoutReader(bytes.NewReader(f.piece(0))), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := s.WritePiece(f.id, 0, tc.want, tc.r)
			if err == nil || c.Defined() {
				t.Fatalf("WritePiece = %s, %v", c, err)
			}
			if errors.Is(err, ErrBadPiece) != tc.bad {
				t.Fatalf("errors.Is(%v, ErrBadPiece) = %v", err, !tc.bad)
			}
			if got := listDir(t, taskDirOf(dir, f.id)); len(got) != 0 {
				t.Fatalf("left on disk: %v", got)
			}
			if s.Have(f.id)[0] || s.Usage() != 0 {
				t.Fatal("bad piece recorded")
			}
		})
	}
	// A non-dfp2p CID as want is an argument error.
	v0 := cid.NewCidV0(f.pieces[0].Hash())
	if _, err := s.WritePiece(f.id, 0, v0, bytes.NewReader(f.piece(0))); !errors.Is(err, ErrInvalid) {
		t.Fatalf("CIDv0 want: %v", err)
	}
}

func TestWriteHeldPiece(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	f := newFile("held", ps)
	writeAll(t, s, f)
	// Same bytes again: fine, one file.
	writePiece(t, s, f, 0)
	// Other bytes of the right length with want undefined conflict with the held piece.
	if _, err := s.WritePiece(f.id, 0, cid.Undef, bytes.NewReader(randBytes(99, ps))); !errors.Is(err, ErrBadPiece) {
		t.Fatalf("conflicting rewrite: %v", err)
	}
	if got := listDir(t, taskDirOf(dir, f.id)); len(got) != 1 {
		t.Fatalf("task dir = %v", got)
	}
	if s.Usage() != ps {
		t.Fatalf("Usage = %d", s.Usage())
	}
}

func TestConcurrentWritesSamePiece(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	f := newFile("conc", 3*ps)
	ensure(t, s, f)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := f.pieces[1]
			if g%2 == 0 {
				want = cid.Undef
			}
			c, err := s.WritePiece(f.id, 1, want, iotest.HalfReader(bytes.NewReader(f.piece(1))))
			if err == nil && !c.Equals(f.pieces[1]) {
				err = fmt.Errorf("got %s", c)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := listDir(t, taskDirOf(dir, f.id)); len(got) != 1 || got[0] != pieceName(1, f.pieces[1]) {
		t.Fatalf("task dir = %v", got)
	}
	if tk, _ := s.Task(f.id); tk.Held != 1 || tk.Bytes != ps || s.Usage() != ps {
		t.Fatalf("task = %+v usage %d", tk, s.Usage())
	}
}

func TestConcurrentWriteAndServe(t *testing.T) {
	s := openStore(t, t.TempDir(), WithSync(false))
	f := newFile("serve", 8*ps-5)
	ensure(t, s, f)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := s.NewReaderContext(ctx, f.id, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(r)
		r.Close()
		got <- b
	}()
	var wg sync.WaitGroup
	for i := len(f.pieces) - 1; i >= 0; i-- { // backwards: the reader has to wait
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.WritePiece(f.id, i, f.pieces[i], bytes.NewReader(f.piece(i))); err != nil {
				t.Error(err)
			}
			s.Have(f.id)
			s.Tasks()
		}()
	}
	wg.Wait()
	if b := <-got; !bytes.Equal(b, f.data) {
		t.Fatalf("streamed %d bytes, mismatch", len(b))
	}
}

func TestResume(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	s, err := Open(dir, WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	f := newFile("resume", 4*ps+7)
	ensure(t, s, f)
	writePiece(t, s, f, 0)
	writePiece(t, s, f, 2)
	if err := s.SetPinned(f.id, true); err != nil {
		t.Fatal(err)
	}
	g := newFile("resume-complete", ps+1)
	writeAll(t, s, g)
	if err := s.Complete(g.id, g.manifest()); err != nil {
		t.Fatal(err)
	}
	clk.Advance(10 * time.Second) // below the persist interval: only Close writes it
	if err := s.Touch(g.id); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Task(f.id); !errors.Is(err, ErrClosed) {
		t.Fatalf("Task after Close: %v", err)
	}

	// Junk a crash or a stranger could leave behind.
	td := taskDirOf(dir, f.id)
	junk := map[string]int64{
		"1-abc.tmp":                  10,     // interrupted write
		"garbage":                    1,      // unparsable
		"01-" + f.pieces[1].String(): ps,     // non-canonical index
		"9-" + f.pieces[1].String():  ps,     // index out of range
		pieceName(3, f.pieces[3]):    ps - 1, // wrong size
		"1-" + strings.ToUpper("x"):  ps,     // not a CID
	}
	for name, n := range junk {
		if err := os.WriteFile(filepath.Join(td, name), make([]byte, n), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	stray := filepath.Join(dir, "tasks", string(tid("no record")))
	os.MkdirAll(stray, 0o700)
	os.WriteFile(filepath.Join(dir, "tasks", "README"), []byte("hi"), 0o600)
	os.MkdirAll(filepath.Join(dir, "trash", "x", "t"), 0o700)

	s2 := openStore(t, dir, WithClock(clk.Now))
	if got := fmt.Sprint(s2.Have(f.id)); got != "[true false true false false]" {
		t.Fatalf("Have after resume = %s", got)
	}
	want := []string{pieceName(0, f.pieces[0]), pieceName(2, f.pieces[2])}
	if got := listDir(t, td); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("task dir after resume = %v", got)
	}
	if got := listDir(t, filepath.Join(dir, "tasks")); len(got) != 2 {
		t.Fatalf("tasks/ = %v", got)
	}
	if got := listDir(t, filepath.Join(dir, "trash")); len(got) != 0 {
		t.Fatalf("trash/ = %v", got)
	}
	tk, err := s2.Task(f.id)
	if err != nil || !tk.Pinned || tk.Held != 2 || tk.Bytes != 2*ps || tk.Complete {
		t.Fatalf("task = %+v, %v", tk, err)
	}
	tg, err := s2.Task(g.id)
	enc, _ := g.manifest().Encode()
	if err != nil || !tg.Complete || !bytes.Equal(tg.Manifest, enc) || !tg.LastAccess.Equal(clk.Now()) {
		t.Fatalf("complete task = %+v, %v", tg, err)
	}
	if s2.Usage() != 2*ps+int64(len(g.data)) {
		t.Fatalf("Usage = %d", s2.Usage())
	}
	// The rest can be written and the whole read back.
	writePiece(t, s2, f, 1)
	writePiece(t, s2, f, 3)
	writePiece(t, s2, f, 4)
	r, err := s2.NewReader(f.id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readAll(t, r), f.data) {
		t.Fatal("data differs after resume")
	}
}

func TestResumeMissingPieceUncompletes(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	f := newFile("uncomplete", 2*ps)
	writeAll(t, s, f)
	if err := s.Complete(f.id, f.manifest()); err != nil {
		t.Fatal(err)
	}
	s.Close()
	os.Remove(filepath.Join(taskDirOf(dir, f.id), pieceName(1, f.pieces[1])))
	s2 := openStore(t, dir)
	if tk, _ := s2.Task(f.id); tk.Complete || tk.Held != 1 {
		t.Fatalf("task = %+v", tk)
	}
	writePiece(t, s2, f, 1)
	if err := s2.Complete(f.id, f.manifest()); err != nil {
		t.Fatal(err)
	}
}

func TestOpenLocked(t *testing.T) {
	dir := t.TempDir()
	openStore(t, dir)
	if _, err := Open(dir); err == nil {
		t.Fatal("second Open of the same dir succeeded")
	}
}

func TestComplete(t *testing.T) {
	s := openStore(t, t.TempDir())
	f := newFile("complete", 3*ps-1)
	ensure(t, s, f)
	writePiece(t, s, f, 0)
	writePiece(t, s, f, 2)
	if err := s.Complete(f.id, f.manifest()); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("Complete with a missing piece: %v", err)
	}
	writePiece(t, s, f, 1)

	// A manifest that disagrees about piece 1: that piece is dropped.
	m := f.manifest()
	m.Pieces = append([]cid.Cid(nil), m.Pieces...)
	m.Pieces[1] = content.PieceCID([]byte("not it"))
	err := s.Complete(f.id, m)
	if !errors.Is(err, ErrBadPiece) {
		t.Fatalf("Complete with mismatching manifest: %v", err)
	}
	if got := fmt.Sprint(s.Have(f.id)); got != "[true false true]" {
		t.Fatalf("Have = %s", got)
	}
	if tk, _ := s.Task(f.id); tk.Complete || tk.Held != 2 || tk.Bytes != 2*ps-1 {
		t.Fatalf("task = %+v", tk)
	}

	// Wrong geometry or task is an argument error and changes nothing.
	other := newFile("other", 3*ps-1).manifest()
	if err := s.Complete(f.id, other); !errors.Is(err, ErrInvalid) {
		t.Fatalf("manifest of another task: %v", err)
	}
	if err := s.Complete(f.id, &content.Manifest{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid manifest: %v", err)
	}

	writePiece(t, s, f, 1)
	if err := s.Complete(f.id, f.manifest()); err != nil {
		t.Fatal(err)
	}
	tk, err := s.Task(f.id)
	enc, _ := f.manifest().Encode()
	if err != nil || !tk.Complete || !bytes.Equal(tk.Manifest, enc) {
		t.Fatalf("task = %+v, %v", tk, err)
	}
	if b, err := s.Manifest(f.id); err != nil || !bytes.Equal(b, enc) {
		t.Fatalf("Manifest = %v", err)
	}
	if ts, _ := s.Tasks(); len(ts) != 1 || ts[0].Manifest != nil || !ts[0].Complete {
		t.Fatalf("Tasks = %+v", ts)
	}
}

func TestEmptyTask(t *testing.T) {
	s := openStore(t, t.TempDir())
	f := newFile("empty", 0)
	ensure(t, s, f)
	if h := s.Have(f.id); h == nil || len(h) != 0 {
		t.Fatalf("Have = %v", h)
	}
	if err := s.Complete(f.id, f.manifest()); err != nil {
		t.Fatal(err)
	}
	r, err := s.NewReader(f.id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if b := readAll(t, r); len(b) != 0 {
		t.Fatal("bytes from an empty task")
	}
}

func TestNewReaderOffsets(t *testing.T) {
	s := openStore(t, t.TempDir())
	f := newFile("reader", 3*ps+100)
	writeAll(t, s, f)
	L := int64(len(f.data))
	readFrom(t, s, f, 0, 1, ps-1, ps, ps+1, 2*ps+12345, 3*ps, L-1, L)
	for _, off := range []int64{-1, L + 1} {
		if _, err := s.NewReader(f.id, off); !errors.Is(err, ErrInvalid) {
			t.Fatalf("off %d: %v", off, err)
		}
	}
	if _, err := s.NewReader(tid("nope"), 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown task: %v", err)
	}
}

// readFrom reads f back through NewReader from each offset, in small
// odd-sized reads that cross piece (and segment) boundaries, and checks the
// bytes.
func readFrom(t *testing.T, s *Store, f *file, offsets ...int64) {
	t.Helper()
	for _, off := range offsets {
		r, err := s.NewReader(f.id, off)
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		buf := make([]byte, 77777)
		for {
			n, err := r.Read(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("off %d: %v", off, err)
			}
		}
		r.Close()
		if !bytes.Equal(got, f.data[off:]) {
			t.Fatalf("off %d: %d bytes, mismatch", off, len(got))
		}
	}
}

func TestNewReaderMissingPiece(t *testing.T) {
	s := openStore(t, t.TempDir())
	f := newFile("gap", 3*ps)
	ensure(t, s, f)
	writePiece(t, s, f, 0)
	writePiece(t, s, f, 2)
	r, err := s.NewReader(f.id, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	r.Close()
	if !errors.Is(err, ErrNotFound) || !bytes.Equal(b, f.data[:ps]) {
		t.Fatalf("read %d bytes, err %v", len(b), err)
	}

	// With a context the reader waits, and gives up when the context ends.
	ctx, cancel := context.WithCancel(context.Background())
	r, err = s.NewReaderContext(ctx, f.id, ps)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := io.ReadAll(r); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("reader returned before the piece arrived: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	r.Close()
	r.Close() // idempotent
}

func TestDeleteTask(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	f := newFile("del", 2*ps)
	writeAll(t, s, f)
	release := s.Acquire(f.id)
	if err := s.DeleteTask(f.id); !errors.Is(err, ErrInUse) {
		t.Fatalf("DeleteTask while acquired: %v", err)
	}
	r, _ := s.NewReader(f.id, 0)
	release()
	release() // idempotent
	if err := s.DeleteTask(f.id); !errors.Is(err, ErrInUse) {
		t.Fatalf("DeleteTask while reading: %v", err)
	}
	r.Close()
	if err := s.DeleteTask(f.id); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Task(f.id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Task after delete: %v", err)
	}
	if err := s.DeleteTask(f.id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if s.Have(f.id) != nil || s.Usage() != 0 {
		t.Fatal("still indexed")
	}
	if _, err := os.Stat(taskDirOf(dir, f.id)); !os.IsNotExist(err) {
		t.Fatalf("task dir: %v", err)
	}
	if got := listDir(t, filepath.Join(dir, "trash")); len(got) != 0 {
		t.Fatalf("trash = %v", got)
	}
	// Re-creating it starts from scratch.
	ensure(t, s, f)
	if tk, _ := s.Task(f.id); tk.Held != 0 {
		t.Fatalf("task = %+v", tk)
	}
}

func TestVerify(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	f := newFile("verify", 3*ps)
	writeAll(t, s, f)
	if err := s.Complete(f.id, f.manifest()); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(taskDirOf(dir, f.id), pieceName(1, f.pieces[1]))
	if err := os.WriteFile(p, randBytes(5, ps), 0o600); err != nil { // rot, right size
		t.Fatal(err)
	}
	bad, err := s.Verify(f.id)
	if err != nil || fmt.Sprint(bad) != "[1]" {
		t.Fatalf("Verify = %v, %v", bad, err)
	}
	if tk, _ := s.Task(f.id); tk.Complete || tk.Held != 2 {
		t.Fatalf("task = %+v", tk)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatal("corrupt piece still on disk")
	}
}

func TestInputValidation(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	f := newFile("valid", 2*ps)
	ensure(t, s, f)
	badIDs := []content.TaskID{"", "..", "../../../etc", content.TaskID(strings.ToUpper(string(f.id))),
		f.id + "/x", content.TaskID(strings.Repeat("g", 64)), f.id[:63]}
	for _, id := range badIDs {
		if _, err := s.EnsureTask(id, "u", 1, ps); !errors.Is(err, ErrInvalid) {
			t.Fatalf("EnsureTask(%q): %v", id, err)
		}
		if _, err := s.WritePiece(id, 0, cid.Undef, strings.NewReader("x")); !errors.Is(err, ErrInvalid) {
			t.Fatalf("WritePiece(%q): %v", id, err)
		}
		if _, err := s.Task(id); !errors.Is(err, ErrInvalid) {
			t.Fatalf("Task(%q): %v", id, err)
		}
		if _, _, _, err := s.OpenPiece(id, 0); !errors.Is(err, ErrInvalid) {
			t.Fatalf("OpenPiece(%q): %v", id, err)
		}
		if s.Have(id) != nil {
			t.Fatalf("Have(%q)", id)
		}
		s.Acquire(id)()
	}
	for _, idx := range []int{-1, 2, 1 << 40} {
		if _, err := s.WritePiece(f.id, idx, cid.Undef, strings.NewReader("x")); !errors.Is(err, ErrInvalid) {
			t.Fatalf("WritePiece idx %d: %v", idx, err)
		}
		if _, _, _, err := s.OpenPiece(f.id, idx); !errors.Is(err, ErrInvalid) {
			t.Fatalf("OpenPiece idx %d: %v", idx, err)
		}
		if _, ok := s.PieceCID(f.id, idx); ok {
			t.Fatalf("PieceCID idx %d", idx)
		}
	}
	if _, _, _, err := s.OpenPiece(f.id, 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("OpenPiece of a piece not held: %v", err)
	}
	if _, err := s.WritePiece(tid("unknown"), 0, cid.Undef, strings.NewReader("x")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("WritePiece unknown task: %v", err)
	}
	for _, g := range [][2]int64{{-1, ps}, {1, 0}, {1, ps + 1}, {1, content.MinValidPieceSize / 2}, {1, 2 * content.MaxValidPieceSize}, {content.MaxPieces*ps + 1, ps}} {
		if _, err := s.EnsureTask(tid("geom"), "u", g[0], g[1]); !errors.Is(err, ErrInvalid) {
			t.Fatalf("EnsureTask geometry %v: %v", g, err)
		}
	}
	// Any power of two in the valid range is accepted, not only the rule's.
	for _, size := range []int64{content.MinValidPieceSize, content.MaxValidPieceSize} {
		if _, err := s.EnsureTask(tid(fmt.Sprint("geom", size)), "u", 1, size); err != nil {
			t.Fatalf("EnsureTask piece size %d: %v", size, err)
		}
	}
	// Same task with other geometry.
	if _, err := s.EnsureTask(f.id, "u", 2*ps+1, ps); !errors.Is(err, ErrInvalid) {
		t.Fatalf("EnsureTask other length: %v", err)
	}
	if _, err := s.EnsureTask(f.id, "u", 2*ps, 2*ps); !errors.Is(err, ErrInvalid) {
		t.Fatalf("EnsureTask other piece size: %v", err)
	}
	if _, err := s.EnsureTask(f.id, "u", 2*ps, ps); err != nil {
		t.Fatalf("EnsureTask same geometry: %v", err)
	}
	for _, w := range [][2]float64{{0.5, 0.6}, {1.1, 0.5}, {0.5, -0.1}} {
		if _, err := Open(t.TempDir(), WithWatermarks(w[0], w[1])); !errors.Is(err, ErrInvalid) {
			t.Fatalf("watermarks %v: %v", w, err)
		}
	}
	// Nothing escaped dir.
	if got := listDir(t, dir); fmt.Sprint(got) != "[meta.db tasks trash]" {
		t.Fatalf("dir = %v", got)
	}
}

func TestCloseWakesWaitingReader(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := newFile("wake", ps)
	ensure(t, s, f)
	r, err := s.NewReaderContext(context.Background(), f.id, 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := io.ReadAll(r); done <- err }()
	time.Sleep(20 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v", err)
	}
	r.Close()
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// WithEvents reports stored pieces, completion (with the manifest's root)
// and removal, in order, and nothing for a rejected piece.
func TestEvents(t *testing.T) {
	var mu sync.Mutex
	var got []Event
	s := openStore(t, t.TempDir(), WithEvents(func(e Event) { mu.Lock(); got = append(got, e); mu.Unlock() }))
	f := newFile("events", 2*ps)
	ensure(t, s, f)
	if _, err := s.WritePiece(f.id, 0, f.pieces[1], bytes.NewReader(f.piece(0))); !errors.Is(err, ErrBadPiece) {
		t.Fatalf("bad piece: %v", err)
	}
	writePiece(t, s, f, 0)
	writePiece(t, s, f, 1)
	if err := s.Complete(f.id, f.manifest()); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTask(f.id); err != nil {
		t.Fatal(err)
	}
	root, _ := f.manifest().CID()
	want := []Event{{Kind: EventPiece, Task: f.id, Held: 1}, {Kind: EventPiece, Task: f.id, Held: 2},
		{Kind: EventComplete, Task: f.id, Root: root}, {Kind: EventRemoved, Task: f.id}}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != len(want) {
		t.Fatalf("events %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].Kind != want[i].Kind || got[i].Task != want[i].Task || got[i].Held != want[i].Held || !got[i].Root.Equals(want[i].Root) {
			t.Fatalf("event %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}
