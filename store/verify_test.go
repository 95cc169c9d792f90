package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"
)

// A corrupted and a missing piece file are found by VerifyContext, in plain
// and at-rest-encrypted stores alike: both are dropped, the task becomes
// incomplete on disk too, and fetching the pieces again completes it.
func TestVerifyContextDropsBadPieces(t *testing.T) {
	modes := []struct {
		name string
		opts []Option
	}{{"plain", nil}}
	for _, c := range Ciphers {
		modes = append(modes, struct {
			name string
			opts []Option
		}{c, []Option{encOpt(c)}})
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, m.opts...)
			if err != nil {
				t.Fatal(err)
			}
			f := newFile("verify-ctx", 5*ps+17)
			g := newFile("verify-other", 2*ps)
			writeAll(t, s, f)
			writeAll(t, s, g)
			for _, x := range []*file{f, g} {
				if err := s.Complete(x.id, x.manifest()); err != nil {
					t.Fatal(err)
				}
			}
			// Rot in piece 2 (same size, so Open does not notice), piece 4 gone.
			p2 := piecePathOf(dir, f, 2)
			if m.opts == nil {
				write(t, p2, randBytes(99, ps))
			} else {
				flip(t, p2, headerSize+1000)
			}
			if err := os.Remove(piecePathOf(dir, f, 4)); err != nil {
				t.Fatal(err)
			}

			rep, err := s.VerifyContext(context.Background(), f.id, 3)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Checked != 6 || fmt.Sprint(rep.Bad) != "[2 4]" || rep.Dropped != 2 {
				t.Fatalf("report %+v, want 6 checked, [2 4] bad and dropped", rep)
			}
			if tk, _ := s.Task(f.id); tk.Complete || tk.Held != 4 || tk.Bytes != 3*ps+17 {
				t.Fatalf("task after verify: %+v", tk)
			}
			if _, err := os.Stat(p2); !errors.Is(err, os.ErrNotExist) {
				t.Fatal("corrupt piece file still on disk")
			}
			if s.Usage() != 3*ps+17+2*ps {
				t.Fatalf("usage %d", s.Usage())
			}
			// The other task is untouched; a clean task reports nothing.
			if rep, err := s.VerifyContext(context.Background(), g.id, 2); err != nil || rep.Checked != 2 || len(rep.Bad) != 0 {
				t.Fatalf("clean task: %+v, %v", rep, err)
			}
			// The incomplete state was written: it survives a restart.
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openStore(t, dir, m.opts...)
			if tk, _ := s.Task(f.id); tk.Complete || tk.Held != 4 {
				t.Fatalf("task after reopen: %+v", tk)
			}
			if tk, _ := s.Task(g.id); !tk.Complete {
				t.Fatalf("other task after reopen: %+v", tk)
			}
			// Fetching the dropped pieces again makes it whole.
			writePiece(t, s, f, 2)
			writePiece(t, s, f, 4)
			if err := s.Complete(f.id, f.manifest()); err != nil {
				t.Fatal(err)
			}
			r, err := s.NewReader(f.id, 0)
			if err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, r); string(got) != string(f.data) {
				t.Fatal("bytes differ after repair")
			}
			if rep, err := s.VerifyContext(context.Background(), f.id, 1); err != nil || rep.Checked != 6 || len(rep.Bad) != 0 {
				t.Fatalf("verify after repair: %+v, %v", rep, err)
			}
		})
	}
}

func TestVerifyContextCancelledAndUnknown(t *testing.T) {
	s := openStore(t, t.TempDir())
	f := newFile("verify-cancel", 4*ps)
	writeAll(t, s, f)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep, err := s.VerifyContext(ctx, f.id, 2)
	if !errors.Is(err, context.Canceled) || len(rep.Bad) != 0 {
		t.Fatalf("cancelled verify: %+v, %v", rep, err)
	}
	if _, err := s.VerifyContext(context.Background(), tid("nope"), 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown task: %v", err)
	}
	// The task is released afterwards: it can be deleted.
	if err := s.DeleteTask(f.id); err != nil {
		t.Fatal(err)
	}
}

// A pin survives a restart and keeps GC (TTL and dry run alike) away; the
// report says how many bytes each removal frees.
func TestGCPinPersistsAndReportsBytes(t *testing.T) {
	clk := newClock()
	s, dir, fs := gcStore(t, clk, []int64{2 * ps, ps + 5}, WithTTL(time.Minute), WithWatermarks(1, 1))
	a, b := fs[0], fs[1]
	if err := s.SetPinned(a.id, true); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, WithClock(clk.Now), WithTTL(time.Minute), WithWatermarks(1, 1))
	clk.Advance(time.Hour)
	dry, err := s.GC(true)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(dry.Removed) != fmt.Sprint(ids(b)) || dry.Bytes[b.id] != ps+5 || dry.FreedBytes != ps+5 {
		t.Fatalf("dry run %+v", dry)
	}
	if tk, err := s.Task(b.id); err != nil || tk.Held != 2 {
		t.Fatalf("dry run removed something: %+v %v", tk, err)
	}
	rep, err := s.GC(false)
	if err != nil || fmt.Sprint(rep.Removed) != fmt.Sprint(ids(b)) || rep.Bytes[b.id] != ps+5 {
		t.Fatalf("GC %+v, %v", rep, err)
	}
	if tk, err := s.Task(a.id); err != nil || !tk.Pinned || tk.Held != 2 {
		t.Fatalf("pinned task: %+v %v", tk, err)
	}
	// Unpinned, it goes at the next run.
	if err := s.SetPinned(a.id, false); err != nil {
		t.Fatal(err)
	}
	if rep, _ := s.GC(false); fmt.Sprint(rep.Removed) != fmt.Sprint(ids(a)) {
		t.Fatalf("GC after unpin %+v", rep)
	}
}
