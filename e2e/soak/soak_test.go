package soak

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func rows(proc string, pid int, n int, f func(i int) int) []Row {
	var out []Row
	for i := range n {
		v := f(i)
		out = append(out, Row{At: time.Duration(i) * 5 * time.Second, Proc: proc, PID: pid, RSS: int64(v) << 20, FDs: v, Goroutines: v})
	}
	return out
}

func TestJudge(t *testing.T) {
	lim := map[Metric]Limits{RSS: {0.5, 10}, Goroutines: {0.5, 10}, FDs: {0.5, 10}}
	// A plateau with noise and spikes: bounded.
	flat := rows("d1", 1, 60, func(i int) int {
		v := 100 + i%7
		if i%13 == 0 {
			v += 400 // a burst
		}
		return v
	})
	// Warm-up growth, then flat: bounded once the warm-up is skipped.
	warm := rows("d2", 2, 60, func(i int) int { return min(40+10*i, 200) })
	// A leak: +5 per sample.
	leak := rows("d3", 3, 60, func(i int) int { return 100 + 5*i })
	// Too short to judge.
	short := rows("d4", 4, 4, func(i int) int { return 1000 * i })
	all := append(append(append(flat, warm...), leak...), short...)
	got := map[string]Growth{}
	for _, g := range Judge(all, 90*time.Second, 9, lim) {
		if g.Metric == Goroutines {
			got[g.Proc] = g
		}
	}
	if g := got["d1"]; !g.Judged || g.Unbounded {
		t.Errorf("plateau: %v", g)
	}
	if g := got["d2"]; !g.Judged || g.Unbounded {
		t.Errorf("warm-up: %v", g)
	}
	if g := got["d3"]; !g.Judged || !g.Unbounded {
		t.Errorf("leak: %v", g)
	}
	if g := got["d4"]; g.Judged {
		t.Errorf("short lifetime judged: %v", g)
	}
	var b bytes.Buffer
	if err := WriteCSV(&b, short); err != nil || strings.Count(b.String(), "\n") != 5 {
		t.Errorf("csv: %v %q", err, b.String())
	}
	if _, err := Plot(t.TempDir(), all, []Event{{At: time.Minute, What: "kill d1"}}); err != nil {
		t.Fatal(err)
	}
}
