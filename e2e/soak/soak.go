// Package soak records and judges the resource samples of a soak run: one
// row per process per sample (RSS, goroutines, open file descriptors), a
// CSV writer, a growth test per process lifetime and PNG plots. It is test
// infrastructure for e2e/soak_test.go and must not be imported by product
// code; it starts no processes (e2e/cluster does).
package soak

import (
	"encoding/csv"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Row is one sample of one process.
type Row struct {
	At         time.Duration // since the run started
	Proc       string        // process name (daemon2, tracker1, ...)
	PID        int           // a new PID is a new lifetime (restart)
	RSS        int64         // bytes
	FDs        int
	Goroutines int
}

// Metric names the sampled quantities.
type Metric string

// Metrics.
const (
	RSS        Metric = "rss_mib"
	Goroutines Metric = "goroutines"
	FDs        Metric = "fds"
)

// Metrics lists every metric in a fixed order.
var Metrics = []Metric{RSS, Goroutines, FDs}

func (r Row) value(m Metric) float64 {
	switch m {
	case RSS:
		return float64(r.RSS) / (1 << 20)
	case Goroutines:
		return float64(r.Goroutines)
	default:
		return float64(r.FDs)
	}
}

// WriteCSV writes rows with a header line.
func WriteCSV(w io.Writer, rows []Row) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"seconds", "proc", "pid", "rss_bytes", "goroutines", "fds"})
	for _, r := range rows {
		_ = cw.Write([]string{strconv.FormatFloat(r.At.Seconds(), 'f', 1, 64), r.Proc, strconv.Itoa(r.PID),
			strconv.FormatInt(r.RSS, 10), strconv.Itoa(r.Goroutines), strconv.Itoa(r.FDs)})
	}
	cw.Flush()
	return cw.Error()
}

// Limits say how much a metric may grow over one process lifetime: the
// median of the last third of the samples after warm-up may exceed the
// median of the first third by at most Ratio times it plus Abs.
type Limits struct {
	Ratio float64
	Abs   float64
}

// DefaultLimits are the thresholds of the growth test (see
// docs/operations.md, "Soak test"). The load is stationary (random gets
// over a rotating set of files, with garbage collection keeping the stores
// bounded), so a healthy process levels off after its warm-up; medians of
// thirds ignore the spikes of a burst of concurrent gets. The absolute
// slack covers the Go heap's sawtooth (RSS is returned to the OS lazily),
// the goroutines and descriptors of a few connections that come and go as
// peers restart, and a few pieces in flight.
var DefaultLimits = map[Metric]Limits{
	RSS:        {Ratio: 0.5, Abs: 48},
	Goroutines: {Ratio: 0.5, Abs: 60},
	FDs:        {Ratio: 0.5, Abs: 40},
}

// Growth is the verdict for one metric over one process lifetime.
type Growth struct {
	Proc        string
	PID         int
	Metric      Metric
	Samples     int // after warm-up
	First, Last float64
	Limit       float64
	Span        time.Duration // of the samples judged
	Judged      bool          // enough samples to judge
	Unbounded   bool          // Last > Limit
}

func (g Growth) String() string {
	if !g.Judged {
		return fmt.Sprintf("%s pid %d %s: %d samples over %s, too few to judge", g.Proc, g.PID, g.Metric, g.Samples, g.Span.Round(time.Second))
	}
	verdict := "ok"
	if g.Unbounded {
		verdict = "GROWS"
	}
	return fmt.Sprintf("%s pid %d %s: median %.1f -> %.1f (limit %.1f) over %s, %d samples: %s",
		g.Proc, g.PID, g.Metric, g.First, g.Last, g.Limit, g.Span.Round(time.Second), g.Samples, verdict)
}

// Judge runs the growth test on every process lifetime (process name and
// PID). Samples within warmup of a lifetime's first sample are skipped;
// lifetimes with fewer than minSamples left are reported but not judged.
func Judge(rows []Row, warmup time.Duration, minSamples int, limits map[Metric]Limits) []Growth {
	type life struct {
		proc string
		pid  int
	}
	byLife := map[life][]Row{}
	var order []life
	for _, r := range rows {
		k := life{r.Proc, r.PID}
		if _, ok := byLife[k]; !ok {
			order = append(order, k)
		}
		byLife[k] = append(byLife[k], r)
	}
	var out []Growth
	for _, k := range order {
		rs := byLife[k]
		start := rs[0].At
		var kept []Row
		for _, r := range rs {
			if r.At-start >= warmup {
				kept = append(kept, r)
			}
		}
		for _, m := range Metrics {
			g := Growth{Proc: k.proc, PID: k.pid, Metric: m, Samples: len(kept)}
			if len(kept) > 0 {
				g.Span = kept[len(kept)-1].At - kept[0].At
			}
			if len(kept) >= minSamples && len(kept) >= 3 {
				third := len(kept) / 3
				vals := func(rs []Row) []float64 {
					v := make([]float64, len(rs))
					for i, r := range rs {
						v[i] = r.value(m)
					}
					return v
				}
				g.First = median(vals(kept[:third]))
				g.Last = median(vals(kept[len(kept)-third:]))
				l := limits[m]
				g.Limit = g.First*(1+l.Ratio) + l.Abs
				g.Judged = true
				g.Unbounded = g.Last > g.Limit
			}
			out = append(out, g)
		}
	}
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// Event marks a moment on the plots (a kill).
type Event struct {
	At   time.Duration
	What string
}

// Plot writes one PNG per metric into dir (soak-rss_mib.png, ...): one line
// per process lifetime, one colour per process, and a dashed vertical line
// per event.
func Plot(dir string, rows []Row, events []Event) ([]string, error) {
	procs := map[string]int{}
	var names []string
	for _, r := range rows {
		if _, ok := procs[r.Proc]; !ok {
			procs[r.Proc] = len(names)
			names = append(names, r.Proc)
		}
	}
	var files []string
	for _, m := range Metrics {
		p := plot.New()
		p.Title.Text = "soak: " + string(m)
		p.X.Label.Text = "minutes"
		p.Y.Label.Text = string(m)
		type life struct {
			proc string
			pid  int
		}
		lines := map[life]plotter.XYs{}
		var order []life
		maxY := 0.0
		for _, r := range rows {
			k := life{r.Proc, r.PID}
			if _, ok := lines[k]; !ok {
				order = append(order, k)
			}
			v := r.value(m)
			maxY = math.Max(maxY, v)
			lines[k] = append(lines[k], plotter.XY{X: r.At.Minutes(), Y: v})
		}
		legend := map[string]bool{}
		for _, k := range order {
			l, err := plotter.NewLine(lines[k])
			if err != nil {
				return nil, err
			}
			l.Color = palette(procs[k.proc])
			l.Width = vg.Points(1.2)
			p.Add(l)
			if !legend[k.proc] {
				legend[k.proc] = true
				p.Legend.Add(k.proc, l)
			}
		}
		for _, e := range events {
			l, err := plotter.NewLine(plotter.XYs{{X: e.At.Minutes(), Y: 0}, {X: e.At.Minutes(), Y: maxY}})
			if err != nil {
				return nil, err
			}
			l.Color = color.Gray{Y: 170}
			l.Dashes = []vg.Length{vg.Points(2), vg.Points(3)}
			p.Add(l)
		}
		p.Legend.Top = true
		f := filepath.Join(dir, "soak-"+string(m)+".png")
		if err := p.Save(8*vg.Inch, 4*vg.Inch, f); err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

func palette(i int) color.Color {
	cs := []color.RGBA{{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255}, {214, 39, 40, 255},
		{148, 103, 189, 255}, {140, 86, 75, 255}, {227, 119, 194, 255}, {127, 127, 127, 255}}
	return cs[i%len(cs)]
}

// WriteFile writes rows as CSV to path.
func WriteFile(path string, rows []Row) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := WriteCSV(f, rows); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
