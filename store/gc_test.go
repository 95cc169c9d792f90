package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/dfp2p/dfp2p/content"
)

// gcStore writes files a, b, c, ... of the given sizes, one clock minute apart
// (a is the least recently used).
func gcStore(t *testing.T, clk *fakeClock, sizes []int64, opts ...Option) (*Store, string, []*file) {
	t.Helper()
	dir := t.TempDir()
	s := openStore(t, dir, append([]Option{WithClock(clk.Now), WithSync(false)}, opts...)...)
	var fs []*file
	for i, n := range sizes {
		f := newFile(fmt.Sprintf("gc-%c", 'a'+i), n)
		writeAll(t, s, f)
		fs = append(fs, f)
		clk.Advance(time.Minute)
	}
	return s, dir, fs
}

func ids(fs ...*file) []content.TaskID {
	var out []content.TaskID
	for _, f := range fs {
		out = append(out, f.id)
	}
	return out
}

func checkReport(t *testing.T, rep GCReport, want []content.TaskID, reason string, freed int64) {
	t.Helper()
	if fmt.Sprint(rep.Removed) != fmt.Sprint(want) {
		t.Fatalf("Removed = %v, want %v", rep.Removed, want)
	}
	if len(rep.Reason) != len(want) {
		t.Fatalf("Reason = %v", rep.Reason)
	}
	for _, id := range want {
		if rep.Reason[id] != reason {
			t.Fatalf("Reason[%s] = %q, want %q", id.Short(), rep.Reason[id], reason)
		}
	}
	if rep.FreedBytes != freed {
		t.Fatalf("FreedBytes = %d, want %d", rep.FreedBytes, freed)
	}
}

func TestGCTTL(t *testing.T) {
	clk := newClock()
	s, dir, fs := gcStore(t, clk, []int64{ps, 2 * ps, ps + 1}, WithTTL(time.Hour), WithWatermarks(1, 1))
	a, b, c := fs[0], fs[1], fs[2]

	// Nothing is old enough yet.
	rep, err := s.GC(false)
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, rep, nil, "", 0)

	// Written at +0m, +1m, +2m; now +3m. At +61m a passes the TTL, b was
	// touched at +60m and c was last used at +2m (59m ago).
	clk.Advance(57 * time.Minute)
	if err := s.Touch(b.id); err != nil { // b was just used
		t.Fatal(err)
	}
	clk.Advance(1 * time.Minute)
	rep, err = s.GC(false)
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, rep, ids(a), ReasonTTL, ps)
	if _, err := s.Task(a.id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a still there: %v", err)
	}
	if _, err := os.Stat(taskDirOf(dir, a.id)); !os.IsNotExist(err) {
		t.Fatalf("a's dir: %v", err)
	}
	if s.Usage() != 3*ps+1 {
		t.Fatalf("Usage = %d", s.Usage())
	}

	clk.Advance(time.Hour)
	rep, err = s.GC(false)
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, rep, ids(c, b), ReasonTTL, 3*ps+1) // c (older access) first
	if ts, _ := s.Tasks(); len(ts) != 0 || s.Usage() != 0 {
		t.Fatalf("left: %v, usage %d", ts, s.Usage())
	}
}

func TestGCTTLPersistsAccessAcrossRestart(t *testing.T) {
	clk := newClock()
	dir := t.TempDir()
	s, err := Open(dir, WithClock(clk.Now), WithTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	f := newFile("ttl-restart", ps)
	writeAll(t, s, f)
	clk.Advance(50 * time.Minute)
	s.Touch(f.id)
	s.Close()
	clk.Advance(50 * time.Minute) // 100m after creation, 50m after access
	s2 := openStore(t, dir, WithClock(clk.Now), WithTTL(time.Hour), WithWatermarks(1, 1))
	if rep, err := s2.GC(false); err != nil || len(rep.Removed) != 0 {
		t.Fatalf("GC = %+v, %v", rep, err)
	}
}

func TestGCWatermarkLRU(t *testing.T) {
	clk := newClock()
	// Quota 10 MiB, 9 MiB held: above 80%, remove LRU until at or below 50%.
	s, _, fs := gcStore(t, clk, []int64{2 * ps, 3 * ps, ps, 3 * ps},
		WithQuota(10*ps), WithWatermarks(0.8, 0.5), WithTTL(0))
	a, b, c, d := fs[0], fs[1], fs[2], fs[3]
	// Touching a makes it the most recently used: the order becomes b, c, d, a.
	clk.Advance(time.Minute)
	if err := s.Touch(a.id); err != nil {
		t.Fatal(err)
	}
	rep, err := s.GC(false)
	if err != nil {
		t.Fatal(err)
	}
	// 9 -> b(3) -> 6 -> c(1) -> 5 <= 5: stop.
	checkReport(t, rep, ids(b, c), ReasonWatermark, 4*ps)
	if s.Usage() != 5*ps {
		t.Fatalf("Usage = %d", s.Usage())
	}
	for _, f := range []*file{a, d} {
		if _, err := s.Task(f.id); err != nil {
			t.Fatalf("%s removed: %v", f.id.Short(), err)
		}
	}
	// Below the high watermark now: nothing more goes.
	if rep, err := s.GC(false); err != nil || len(rep.Removed) != 0 {
		t.Fatalf("GC = %+v, %v", rep, err)
	}
}

func TestGCWatermarkAfterTTL(t *testing.T) {
	clk := newClock()
	// 9 MiB of 10; the TTL removes a (4 MiB) which already brings use to 5 MiB.
	s, _, fs := gcStore(t, clk, []int64{4 * ps, 3 * ps, 2 * ps},
		WithQuota(10*ps), WithWatermarks(0.8, 0.5), WithTTL(90*time.Second))
	rep, err := s.GC(false)
	if err != nil {
		t.Fatal(err)
	}
	// a at +0 and b at +1m are >= 90s old at +3m; c at +2m is not.
	want := GCReport{Removed: ids(fs[0], fs[1]), FreedBytes: 7 * ps}
	if fmt.Sprint(rep.Removed) != fmt.Sprint(want.Removed) || rep.FreedBytes != want.FreedBytes ||
		rep.Reason[fs[0].id] != ReasonTTL || rep.Reason[fs[1].id] != ReasonTTL {
		t.Fatalf("GC = %+v", rep)
	}
}

func TestGCSparesPinnedAndActive(t *testing.T) {
	clk := newClock()
	s, _, fs := gcStore(t, clk, []int64{3 * ps, 3 * ps, 3 * ps, ps},
		WithQuota(10*ps), WithWatermarks(0.5, 0.1), WithTTL(time.Minute))
	a, b, c, d := fs[0], fs[1], fs[2], fs[3]
	if err := s.SetPinned(a.id, true); err != nil {
		t.Fatal(err)
	}
	release := s.Acquire(b.id)
	r, err := s.NewReader(c.id, 0) // an open reader keeps c active
	if err != nil {
		t.Fatal(err)
	}
	// An acquire before the task exists protects it too.
	e := newFile("gc-e", ps)
	releaseE := s.Acquire(e.id)
	writeAll(t, s, e)
	clk.Advance(24 * time.Hour)

	rep, err := s.GC(false)
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, rep, ids(d), ReasonTTL, ps)
	for _, f := range []*file{a, b, c, e} {
		if tk, err := s.Task(f.id); err != nil || tk.Held != tk.Pieces {
			t.Fatalf("%s: %+v, %v", f.id.Short(), tk, err)
		}
	}
	release()
	r.Close()
	releaseE()
	s.SetPinned(a.id, false)
	rep, err = s.GC(false)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Removed) != 4 || rep.FreedBytes != 10*ps {
		t.Fatalf("GC after release = %+v", rep)
	}
}

func TestGCDryRun(t *testing.T) {
	clk := newClock()
	s, dir, fs := gcStore(t, clk, []int64{2 * ps, 3 * ps, 3 * ps, ps},
		WithQuota(10*ps), WithWatermarks(0.8, 0.5), WithTTL(150*time.Second))
	before, _ := s.Tasks()
	dry, err := s.GC(true)
	if err != nil {
		t.Fatal(err)
	}
	// a, b by TTL (+0, +1m vs now +4m, TTL 2.5m); then 4 MiB left = 40%: done.
	if fmt.Sprint(dry.Removed) != fmt.Sprint(ids(fs[0], fs[1])) || dry.FreedBytes != 5*ps {
		t.Fatalf("dry run = %+v", dry)
	}
	after, _ := s.Tasks()
	if fmt.Sprint(before) != fmt.Sprint(after) || s.Usage() != 9*ps {
		t.Fatal("dry run changed the store")
	}
	for _, f := range fs {
		if got := listDir(t, taskDirOf(dir, f.id)); len(got) != len(f.pieces) {
			t.Fatalf("dry run touched %s: %v", f.id.Short(), got)
		}
	}
	real, err := s.GC(false)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(real) != fmt.Sprint(dry) {
		t.Fatalf("real run %+v differs from dry run %+v", real, dry)
	}
}

func TestGCStatfs(t *testing.T) {
	// Without a quota the filesystem is measured; with high=0.999... nothing
	// real should be above it on a test machine, and TTL still works.
	clk := newClock()
	s, _, fs := gcStore(t, clk, []int64{ps}, WithWatermarks(0.9999, 0.9999), WithTTL(time.Second))
	used, capacity, err := statfs(t.TempDir())
	if err != nil {
		t.Skipf("statfs: %v", err)
	}
	if used <= 0 || capacity < used {
		t.Fatalf("statfs = %d/%d", used, capacity)
	}
	rep, err := s.GC(false)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Removed) != 1 || rep.Removed[0] != fs[0].id || rep.Reason[fs[0].id] != ReasonTTL {
		t.Fatalf("GC = %+v", rep)
	}
}

func TestRunGC(t *testing.T) {
	clk := newClock()
	s, _, fs := gcStore(t, clk, []int64{ps}, WithTTL(time.Hour), WithWatermarks(1, 1))
	clk.Advance(2 * time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	reports := make(chan GCReport, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.RunGC(ctx, 10*time.Millisecond, func(rep GCReport, err error) {
			if err == nil && len(rep.Removed) > 0 {
				select {
				case reports <- rep:
				default:
				}
			}
		})
	}()
	select {
	case rep := <-reports:
		checkReport(t, rep, ids(fs[0]), ReasonTTL, int64(len(fs[0].data)))
	case <-time.After(5 * time.Second):
		t.Fatal("RunGC never collected the expired task")
	}
	cancel()
	<-done
}
