package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// instResult mirrors the plan's result.json.
type instResult struct {
	System    string  `json:"system"`
	Role      string  `json:"role"`
	DoneS     float64 `json:"done_s"`
	Completed bool    `json:"completed"`
	Verified  bool    `json:"verified"`
	Bytes     int64   `json:"bytes"`
	Origin    int64   `json:"origin_bytes"`
	SeedB     int64   `json:"seed_bytes"`
	PeerB     int64   `json:"peer_bytes"`
	FileBytes int64   `json:"file_bytes"`
	Restarts  int     `json:"restarts"`
	Error     string  `json:"error"`
	Region    string  `json:"region"`
	LinkRx    int64   `json:"link_rx_bytes"`
	Extra     string  `json:"extra"`
	Samples   []struct {
		T                  float64
		Origin, Seed, Peer int64
	} `json:"samples"`
}

// systemSummary is one row of summary.json.
type systemSummary struct {
	Name         string   `json:"name"`
	Case         string   `json:"case"`
	Peers        int      `json:"peers"`
	FileBytes    int64    `json:"file_bytes"`
	BandwidthMb  float64  `json:"bandwidth_mbit"`
	LatencyMs    int      `json:"latency_ms"`
	LowerBoundS  float64  `json:"lower_bound_s"`
	LastPeerS    *float64 `json:"last_peer_s"` // null: not every leecher finished before the timeout
	P50S         *float64 `json:"p50_s"`       // null: fewer than half finished
	OriginBytes  int64    `json:"origin_bytes"`
	SeedBytes    int64    `json:"seed_bytes"` // received by leechers from the seed
	PeerBytes    int64    `json:"peer_bytes"` // received by leechers from other leechers
	Completed    int      `json:"completed"`
	Verified     int      `json:"verified"`
	AllVerified  bool     `json:"all_verified"`
	TimeoutS     int      `json:"timeout_s"`
	LastVsBound  *float64 `json:"last_peer_over_lower_bound,omitempty"`
	OriginVsFile float64  `json:"origin_over_file"`
	// Bytes each leecher had received when it finished or timed out
	// (measured, never projected): min, mean, max over leechers, in MiB.
	RecvMiBMin  float64  `json:"received_mib_min"`
	RecvMiBMean float64  `json:"received_mib_mean"`
	RecvMiBMax  float64  `json:"received_mib_max"`
	Errors      []string `json:"errors,omitempty"`
	Notes       []string `json:"notes,omitempty"` // seeds' remarks (failover: which tracker was closed when)
	// cross-region: per region
	Regions []regionSummary `json:"regions,omitempty"`
}

// regionSummary is one region of a cross-region run.
type regionSummary struct {
	Region      string   `json:"region"`
	Leechers    int      `json:"leechers"`
	Completed   int      `json:"completed"`
	LastPeerS   *float64 `json:"last_peer_s"`
	OriginBytes int64    `json:"origin_bytes"` // served by the origin (only the origin region's seed has it)
	SeedBytes   int64    `json:"seed_bytes"`   // received by the region's leechers from its seed
	PeerBytes   int64    `json:"peer_bytes"`   // received by the region's leechers from peers
	// SeedLinkRx is what the region's seed instance received on its link:
	// the copy from other regions (or nothing but control traffic in the
	// origin region, whose origin is local) plus DHT/tracker traffic.
	SeedLinkRx int64 `json:"seed_link_rx_bytes"`
	// LeechersLinkRx: all the region's leechers received on their links.
	LeechersLinkRx int64 `json:"leechers_link_rx_bytes"`
}

func readResults(dir string) []instResult {
	var rs []instResult
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "result.json"))
		if err != nil {
			continue
		}
		var r instResult
		if json.Unmarshal(b, &r) == nil {
			rs = append(rs, r)
		}
	}
	return rs
}

func report(sc scenario, runDir string) (string, error) {
	var sums []systemSummary
	all := map[string][]instResult{}
	file := int64(sc.FileMiB) << 20
	for _, sys := range sc.Systems {
		rs := readResults(filepath.Join(runDir, sys))
		all[sys] = rs
		s := systemSummary{Name: sys, Case: sc.Case, Peers: sc.Leechers, FileBytes: file, BandwidthMb: sc.BwMbit, LatencyMs: sc.LatencyMs,
			LowerBoundS: float64(file*8) / (sc.BwMbit * 1e6), TimeoutS: sc.TimeoutS}
		var done []float64
		leechers := 0
		regs := map[string]*regionSummary{}
		for _, r := range rs {
			if r.Region == "" || sc.Case != "cross-region" {
				continue
			}
			g := regs[r.Region]
			if g == nil {
				g = &regionSummary{Region: r.Region}
				regs[r.Region] = g
			}
			if r.Role == "seed" {
				g.OriginBytes += r.Origin
				g.SeedLinkRx += r.LinkRx
				continue
			}
			g.Leechers++
			g.SeedBytes += r.SeedB
			g.PeerBytes += r.PeerB
			g.LeechersLinkRx += r.LinkRx
			if r.Completed {
				g.Completed++
				if g.LastPeerS == nil || r.DoneS > *g.LastPeerS {
					v := r.DoneS
					g.LastPeerS = &v
				}
			}
		}
		for _, g := range regs {
			if g.Completed < g.Leechers {
				g.LastPeerS = nil
			}
			s.Regions = append(s.Regions, *g)
		}
		sort.Slice(s.Regions, func(i, j int) bool { return s.Regions[i].Region < s.Regions[j].Region })
		for _, r := range rs {
			if r.Error != "" {
				s.Errors = append(s.Errors, r.Role+": "+r.Error)
			}
			if r.Extra != "" {
				s.Notes = append(s.Notes, r.Role+" "+r.Region+": "+r.Extra)
			}
			if r.Role == "seed" {
				s.OriginBytes += r.Origin
				continue
			}
			leechers++
			s.OriginBytes += 0 // leechers' origin reads are counted by the origin server itself
			s.SeedBytes += r.SeedB
			s.PeerBytes += r.PeerB
			got := max(r.Bytes, r.Origin+r.SeedB+r.PeerB)
			mib := float64(got) / (1 << 20)
			if leechers == 1 || mib < s.RecvMiBMin {
				s.RecvMiBMin = mib
			}
			s.RecvMiBMax = max(s.RecvMiBMax, mib)
			s.RecvMiBMean += mib
			if r.Completed {
				s.Completed++
				done = append(done, r.DoneS)
			}
			if r.Verified {
				s.Verified++
			}
		}
		if leechers > 0 {
			s.RecvMiBMean /= float64(leechers)
		}
		sort.Float64s(done)
		s.AllVerified = leechers == sc.Leechers && s.Verified == sc.Leechers
		if len(done) == sc.Leechers && len(done) > 0 {
			v := done[len(done)-1]
			s.LastPeerS = &v
			r := v / s.LowerBoundS
			s.LastVsBound = &r
		}
		if len(done)*2 >= sc.Leechers && len(done) > 0 {
			v := done[(sc.Leechers-1)/2]
			s.P50S = &v
		}
		s.OriginVsFile = float64(s.OriginBytes) / float64(file)
		sums = append(sums, s)
	}
	b, _ := json.MarshalIndent(map[string]any{"scenario": sc, "systems": sums}, "", "  ")
	if err := os.WriteFile(filepath.Join(runDir, "summary.json"), b, 0o644); err != nil {
		return "", err
	}
	f, err := os.Create(filepath.Join(runDir, "summary.csv"))
	if err != nil {
		return "", err
	}
	w := csv.NewWriter(f)
	w.Write([]string{"name", "case", "peers", "file_bytes", "lower_bound_s", "last_peer_s", "p50_s", "origin_bytes", "completed", "all_verified", "received_mib_min", "received_mib_mean", "received_mib_max"})
	opt := func(p *float64) string {
		if p == nil {
			return ""
		}
		return strconv.FormatFloat(*p, 'f', 2, 64)
	}
	for _, s := range sums {
		w.Write([]string{s.Name, s.Case, strconv.Itoa(s.Peers), strconv.FormatInt(s.FileBytes, 10), strconv.FormatFloat(s.LowerBoundS, 'f', 2, 64),
			opt(s.LastPeerS), opt(s.P50S), strconv.FormatInt(s.OriginBytes, 10), strconv.Itoa(s.Completed), strconv.FormatBool(s.AllVerified),
			strconv.FormatFloat(s.RecvMiBMin, 'f', 1, 64), strconv.FormatFloat(s.RecvMiBMean, 'f', 1, 64), strconv.FormatFloat(s.RecvMiBMax, 'f', 1, 64)})
	}
	w.Flush()
	f.Close()
	if err := plots(sc, runDir, all); err != nil {
		fmt.Fprintln(os.Stderr, "sim: plots:", err)
	}
	var sb strings.Builder
	for _, s := range sums {
		fmt.Fprintf(&sb, "%-11s peers=%d lower_bound=%.1fs last_peer=%s p50=%s origin=%.2fx completed=%d/%d all_verified=%v received_mib(min/mean/max)=%.1f/%.1f/%.1f\n",
			s.Name, s.Peers, s.LowerBoundS, opt(s.LastPeerS), opt(s.P50S), s.OriginVsFile, s.Completed, s.Peers, s.AllVerified, s.RecvMiBMin, s.RecvMiBMean, s.RecvMiBMax)
		for _, g := range s.Regions {
			f := float64(s.FileBytes)
			fmt.Fprintf(&sb, "  region %-4s leechers=%d completed=%d last_peer=%s origin=%.2fx seed_link_rx=%.2fx leechers: from seed %.2fx, from peers %.2fx\n",
				g.Region, g.Leechers, g.Completed, opt(g.LastPeerS), float64(g.OriginBytes)/f, float64(g.SeedLinkRx)/f, float64(g.SeedBytes)/f, float64(g.PeerBytes)/f)
		}
		for _, n := range s.Notes {
			fmt.Fprintf(&sb, "  note: %s\n", n)
		}
		seen := map[string]int{}
		var order []string
		for _, e := range s.Errors {
			if seen[e] == 0 {
				order = append(order, e)
			}
			seen[e]++
		}
		for _, e := range order {
			fmt.Fprintf(&sb, "  error (%d×): %s\n", seen[e], e)
		}
	}
	return sb.String(), nil
}

var palette = []color.RGBA{{0x1f, 0x77, 0xb4, 255}, {0xd6, 0x27, 0x28, 255}, {0x2c, 0xa0, 0x2c, 255}, {0xff, 0x7f, 0x0e, 255}, {0x94, 0x67, 0xbd, 255}}

func plots(sc scenario, runDir string, all map[string][]instResult) error {
	// CDF of completion times per system.
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: completion CDF (%d peers, %d MiB, %g Mbit/s, %d ms)", sc.Case, sc.Leechers, sc.FileMiB, sc.BwMbit, sc.LatencyMs)
	p.X.Label.Text = "seconds since start"
	p.Y.Label.Text = "fraction of leechers done"
	p.Y.Min, p.Y.Max = 0, 1
	for k, sys := range sc.Systems {
		var done []float64
		for _, r := range all[sys] {
			if r.Role == "leecher" && r.Completed {
				done = append(done, r.DoneS)
			}
		}
		sort.Float64s(done)
		pts := plotter.XYs{{X: 0, Y: 0}}
		for i, d := range done {
			pts = append(pts, plotter.XY{X: d, Y: float64(i) / float64(sc.Leechers)}, plotter.XY{X: d, Y: float64(i+1) / float64(sc.Leechers)})
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		l.Color = palette[k%len(palette)]
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(sys, l)
	}
	lb := float64(int64(sc.FileMiB)<<20*8) / (sc.BwMbit * 1e6)
	if l, err := plotter.NewLine(plotter.XYs{{X: lb, Y: 0}, {X: lb, Y: 1}}); err == nil {
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(4)}
		p.Add(l)
		p.Legend.Add("lower bound", l)
	}
	p.Legend.Top, p.Legend.Left = false, false
	p.Legend.YOffs = vg.Points(40)
	if err := p.Save(7*vg.Inch, 4*vg.Inch, filepath.Join(runDir, "cdf.png")); err != nil {
		return err
	}
	// Bytes received by source over time, one panel per system.
	for _, sys := range sc.Systems {
		rs := all[sys]
		var tmax float64
		for _, r := range rs {
			for _, s := range r.Samples {
				if s.T > tmax {
					tmax = s.T
				}
			}
		}
		if tmax == 0 {
			continue
		}
		var o, sd, pe plotter.XYs
		for t := 0.0; t <= tmax+0.5; t += 0.5 {
			var so, ss, sp int64
			for _, r := range rs {
				var last struct {
					T                  float64
					Origin, Seed, Peer int64
				}
				for _, s := range r.Samples {
					if s.T > t {
						break
					}
					last = s
				}
				so, ss, sp = so+last.Origin, ss+last.Seed, sp+last.Peer
			}
			const mib = 1 << 20
			o = append(o, plotter.XY{X: t, Y: float64(so) / mib})
			sd = append(sd, plotter.XY{X: t, Y: float64(ss) / mib})
			pe = append(pe, plotter.XY{X: t, Y: float64(sp) / mib})
		}
		p := plot.New()
		p.Title.Text = fmt.Sprintf("%s / %s: bytes received by leechers, by source", sc.Case, sys)
		p.X.Label.Text = "seconds since start"
		p.Y.Label.Text = "MiB (cumulative, all leechers)"
		for k, s := range []struct {
			name string
			xy   plotter.XYs
		}{{"origin", o}, {"seed", sd}, {"peers", pe}} {
			l, err := plotter.NewLine(s.xy)
			if err != nil {
				return err
			}
			l.Color = palette[k]
			l.Width = vg.Points(1.5)
			p.Add(l)
			p.Legend.Add(s.name, l)
		}
		p.Legend.Top, p.Legend.Left = true, true
		if err := p.Save(7*vg.Inch, 4*vg.Inch, filepath.Join(runDir, "bytes-"+sys+".png")); err != nil {
			return err
		}
	}
	return nil
}
