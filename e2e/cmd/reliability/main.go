// Command reliability turns the result lines of the fault-injection suite
// (e2e TestFaults with DFP2P_RELIABILITY_OUT set: one JSON object per
// scenario and run) into the Markdown table of docs/RELIABILITY.md, replacing
// what is between the table markers. scripts/reliability.sh (`make
// reliability`) runs the suite and then this.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
)

const (
	begin = "<!-- reliability-table:begin -->"
	end   = "<!-- reliability-table:end -->"
)

type result struct {
	Scenario      string  `json:"scenario"`
	Seed          uint64  `json:"seed"`
	Outcome       string  `json:"outcome"`
	BytesVerified int64   `json:"bytes_verified"`
	DataLost      int     `json:"data_lost"`
	Seconds       float64 `json:"seconds"`
}

type row struct {
	runs, failures, lost int
	bytes                int64
	seconds              []float64
	seeds, failedSeeds   []uint64
}

func main() {
	in := flag.String("results", "", "results file (JSON lines)")
	doc := flag.String("doc", "docs/RELIABILITY.md", "Markdown file whose table to replace")
	flag.Parse()
	if err := run(*in, *doc); err != nil {
		fmt.Fprintln(os.Stderr, "reliability:", err)
		os.Exit(1)
	}
}

func run(in, doc string) error {
	if in == "" {
		return errors.New("--results is required")
	}
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	rows := map[string]*row{}
	var order []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var r result
		if err := json.Unmarshal([]byte(line), &r); err != nil || r.Scenario == "" {
			return fmt.Errorf("%s:%d: not a result line: %q", in, n, line)
		}
		w := rows[r.Scenario]
		if w == nil {
			w = &row{}
			rows[r.Scenario] = w
			order = append(order, r.Scenario)
		}
		w.runs++
		w.bytes += r.BytesVerified
		w.lost += r.DataLost
		w.seconds = append(w.seconds, r.Seconds)
		if !slices.Contains(w.seeds, r.Seed) {
			w.seeds = append(w.seeds, r.Seed)
		}
		if r.Outcome != "pass" {
			w.failures++
			w.failedSeeds = append(w.failedSeeds, r.Seed)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	var t strings.Builder
	t.WriteString("| scenario | runs | seeds | failures | data lost | bytes verified | median s | failing seeds |\n")
	t.WriteString("|---|---:|---:|---:|---:|---:|---:|---|\n")
	for _, name := range order {
		w := rows[name]
		slices.Sort(w.seconds)
		failing := "—"
		if len(w.failedSeeds) > 0 {
			failing = strings.Trim(fmt.Sprint(w.failedSeeds), "[]")
		}
		fmt.Fprintf(&t, "| %s | %d | %d | %d | %d | %.1f GiB | %.0f | %s |\n", name, w.runs, len(w.seeds), w.failures, w.lost,
			float64(w.bytes)/(1<<30), w.seconds[len(w.seconds)/2], failing)
	}
	b, err := os.ReadFile(doc)
	if err != nil {
		return err
	}
	i, j := bytes.Index(b, []byte(begin)), bytes.Index(b, []byte(end))
	if i < 0 || j < i {
		return fmt.Errorf("%s has no %s ... %s markers", doc, begin, end)
	}
	out := append(append(append([]byte{}, b[:i+len(begin)]...), "\n"+t.String()...), b[j:]...)
	tmp := doc + ".tmp"
	if err := os.WriteFile(tmp, out, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, doc); err != nil {
		return err
	}
	fmt.Print(t.String())
	return nil
}
