package limit

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const MiB = 1 << 20

// zeros is an endless reader that counts the largest read it was asked for.
type zeros struct{ maxRead int }

func (z *zeros) Read(p []byte) (int, error) {
	z.maxRead = max(z.maxRead, len(p))
	clear(p)
	return len(p), nil
}

// sink discards writes; unlike io.Discard it has no ReadFrom, so io.Copy
// uses the caller's buffer.
type sink struct{}

func (sink) Write(p []byte) (int, error) { return len(p), nil }

// within fails t unless got is within frac of want.
func within(t *testing.T, what string, got, want, frac float64) {
	t.Helper()
	t.Logf("%s: %.2f MiB/s (limit %.2f MiB/s, %+.1f%%)", what, got/MiB, want/MiB, 100*(got-want)/want)
	if got < want*(1-frac) || got > want*(1+frac) {
		t.Errorf("%s: %.2f MiB/s, want %.2f MiB/s ±%.0f%%", what, got/MiB, want/MiB, 100*frac)
	}
}

func TestBurst(t *testing.T) {
	for _, c := range []struct {
		bps  int64
		want int
	}{{1, MinBurst}, {1 * MiB, MinBurst}, {10 * MiB, 512 << 10}, {80 * MiB, MaxBurst}, {10 << 30, MaxBurst}} {
		if got := Burst(c.bps); got != c.want {
			t.Errorf("Burst(%d) = %d, want %d", c.bps, got, c.want)
		}
	}
}

// 24 MiB through a reader limited to 8 MiB/s take 3 s, within 10%.
func TestReaderRate(t *testing.T) {
	const limit, total = 8 * MiB, 24 * MiB
	l := New(limit)
	z := &zeros{}
	start := time.Now()
	n, err := io.CopyBuffer(sink{}, io.LimitReader(l.Reader(context.Background(), z), total), make([]byte, 1*MiB))
	el := time.Since(start)
	if err != nil || n != total {
		t.Fatalf("copied %d, %v", n, err)
	}
	within(t, "reader", float64(n)/el.Seconds(), limit, 0.10)
	if z.maxRead > Burst(limit) {
		t.Errorf("reads of up to %d bytes, more than the burst %d", z.maxRead, Burst(limit))
	}
}

func TestWriterRate(t *testing.T) {
	const limit, total = 16 * MiB, 32 * MiB
	l := New(limit)
	w := l.Writer(context.Background(), io.Discard)
	buf := make([]byte, 3*MiB) // larger than the burst: split into chunks
	start := time.Now()
	var n int
	for n < total {
		k, err := w.Write(buf)
		if err != nil || k != len(buf) {
			t.Fatalf("write: %d, %v", k, err)
		}
		n += k
	}
	within(t, "writer", float64(n)/time.Since(start).Seconds(), limit, 0.10)
}

// A rate change takes effect during a transfer, also for a reader waiting
// at the old rate.
func TestSetRateMidTransfer(t *testing.T) {
	l := New(2 * MiB)
	r := l.Reader(context.Background(), &zeros{})
	var mu sync.Mutex
	var n int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1*MiB)
		for ctx.Err() == nil {
			k, _ := r.Read(buf)
			mu.Lock()
			n += int64(k)
			mu.Unlock()
		}
	}()
	count := func() int64 { mu.Lock(); defer mu.Unlock(); return n }
	measure := func(d time.Duration) float64 {
		a, t0 := count(), time.Now()
		time.Sleep(d)
		return float64(count()-a) / time.Since(t0).Seconds()
	}
	time.Sleep(300 * time.Millisecond)
	within(t, "at 2 MiB/s", measure(1500*time.Millisecond), 2*MiB, 0.10)
	l.SetRate(12 * MiB)
	time.Sleep(100 * time.Millisecond)
	within(t, "raised to 12 MiB/s", measure(1500*time.Millisecond), 12*MiB, 0.10)
	l.SetRate(4 * MiB)
	time.Sleep(100 * time.Millisecond)
	within(t, "lowered to 4 MiB/s", measure(1500*time.Millisecond), 4*MiB, 0.10)
	cancel()
	<-done
}

// A waiter at a slow rate is released at once when the limit is lifted.
func TestSetRateReleasesWaiter(t *testing.T) {
	l := New(64 << 10) // 64 KiB/s: 10 MiB would take 160 s
	errc := make(chan error, 1)
	go func() { errc <- l.WaitN(context.Background(), 10*MiB) }()
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	l.SetRate(0)
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("released %s after the limit was lifted", time.Since(start))
	case <-time.After(2 * time.Second):
		t.Fatal("the waiter was not released when the limit was lifted")
	}
	if l.Rate() != 0 || l.Chunk() != 0 {
		t.Errorf("rate %d chunk %d after SetRate(0)", l.Rate(), l.Chunk())
	}
}

func TestUnlimited(t *testing.T) {
	for name, l := range map[string]*Limiter{"nil": nil, "zero": New(0), "negative": New(-5), "value": {}} {
		start := time.Now()
		if err := l.WaitN(context.Background(), 1<<40); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		z := &zeros{}
		n, err := io.CopyBuffer(sink{}, io.LimitReader(l.Reader(context.Background(), z), 256*MiB), make([]byte, 4*MiB))
		if err != nil || n != 256*MiB {
			t.Fatalf("%s: %d, %v", name, n, err)
		}
		if z.maxRead != 4*MiB {
			t.Errorf("%s: unlimited reader cut reads to %d bytes", name, z.maxRead)
		}
		if el := time.Since(start); el > 2*time.Second {
			t.Errorf("%s: unlimited transfer took %s", name, el)
		}
		if l.Rate() != 0 {
			t.Errorf("%s: rate %d", name, l.Rate())
		}
	}
	// From a limit back to none and again to a limit.
	l := New(1 * MiB)
	l.SetRate(0)
	l.SetRate(3 * MiB)
	if l.Rate() != 3*MiB || l.Chunk() != Burst(3*MiB) {
		t.Errorf("rate %d chunk %d", l.Rate(), l.Chunk())
	}
}

func TestCancelStopsWait(t *testing.T) {
	l := New(64 << 10)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- l.WaitN(ctx, 10*MiB) }()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want context.Canceled", err)
		}
		t.Logf("returned %s after cancel", time.Since(start))
	case <-time.After(time.Second):
		t.Fatal("WaitN did not return after cancel")
	}
	// The reader and the writer return ctx's error too.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	_, err := io.Copy(io.Discard, l.Reader(ctx2, &zeros{}))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("reader: %v", err)
	}
	if _, err := l.Writer(ctx2, io.Discard).Write(make([]byte, 10*MiB)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("writer: %v", err)
	}
}

// Four streams through one limit share it: together they move at the
// limit, and each gets a fair part (they all finish at about the same time).
func TestConcurrentStreamsShare(t *testing.T) {
	const limit, each = 8 * MiB, 6 * MiB
	l := New(limit)
	var took [4]time.Duration
	var wg sync.WaitGroup
	start := time.Now()
	for i := range took {
		wg.Go(func() {
			n, err := io.CopyBuffer(sink{}, io.LimitReader(l.Reader(context.Background(), &zeros{}), each), make([]byte, 1*MiB))
			if err != nil || n != each {
				t.Errorf("stream %d: %d, %v", i, n, err)
			}
			took[i] = time.Since(start)
		})
	}
	wg.Wait()
	el := time.Since(start)
	within(t, "4 streams together", 4*each/el.Seconds(), limit, 0.10)
	for i, d := range took {
		if d < el*8/10 {
			t.Errorf("stream %d finished after %s of %s: the others were starved", i, d, el)
		}
	}
	t.Logf("streams finished after %v", took)
}

// Bytes through a group wait on every limit: the slowest wins.
func TestGroup(t *testing.T) {
	g := Group{New(16 * MiB), nil, New(4 * MiB)}
	if g.Chunk() != Burst(4*MiB) || !g.Limited() {
		t.Fatalf("chunk %d", g.Chunk())
	}
	start := time.Now()
	n, err := io.Copy(io.Discard, io.LimitReader(g.Reader(context.Background(), &zeros{}), 8*MiB))
	if err != nil {
		t.Fatal(err)
	}
	within(t, "group", float64(n)/time.Since(start).Seconds(), 4*MiB, 0.10)
	if (Group{nil, New(0)}).Limited() {
		t.Error("a group of unlimited limits is limited")
	}
}
