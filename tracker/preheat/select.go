package preheat

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dfp2p/dfp2p/internal/rendezvous"
)

// Candidate is a live peer that could be warmed.
type Candidate struct {
	ID           string `json:"id"`
	Region, Zone string
}

// Count is how many peers to warm: N of them, or Percent of the live ones.
// The zero Count warms none (only the seed).
type Count struct {
	N       int
	Percent float64
}

// ParseCount parses "N" or "P%" (0 < P <= 100); "" and "0" are none.
func ParseCount(s string) (Count, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Count{}, nil
	}
	if p, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || math.IsNaN(f) || f <= 0 || f > 100 {
			return Count{}, fmt.Errorf("peers %q: want a count (3) or a percentage of live peers (30%%), above 0 and at most 100%%", s)
		}
		return Count{Percent: f}, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 100000 {
		return Count{}, fmt.Errorf("peers %q: want a count (3) or a percentage of live peers (30%%)", s)
	}
	return Count{N: n}, nil
}

// Zero reports whether no peer is wanted.
func (c Count) Zero() bool { return c.N == 0 && c.Percent == 0 }

// Of is the number of peers to warm out of live ones: a percentage rounds
// up (30% of 5 is 2), a count is capped at live.
func (c Count) Of(live int) int {
	if c.Percent > 0 {
		return min(live, int(math.Ceil(c.Percent*float64(live)/100-1e-9)))
	}
	return min(live, c.N)
}

func (c Count) String() string {
	if c.Percent > 0 {
		return strconv.FormatFloat(c.Percent, 'f', -1, 64) + "%"
	}
	return strconv.Itoa(c.N)
}

// Select picks n of cands spread over regions, then zones: it takes one
// peer from each region in turn (inside a region, one from each zone in
// turn), so that n smaller than the number of regions covers n regions and
// a larger n spreads evenly. Inside a zone, peers are ordered by rendezvous
// hashing of key (the job ID): another job picks other peers, the same job
// the same ones. Candidates with unknown locality form their own region.
func Select(cands []Candidate, n int, key string) []Candidate {
	if n <= 0 || len(cands) == 0 {
		return nil
	}
	byID := map[string]Candidate{}
	for _, c := range cands {
		byID[c.ID] = c
	}
	ids := make([]peer.ID, 0, len(byID))
	for id := range byID {
		ids = append(ids, peer.ID(id))
	}
	// regions -> zones -> peers in rendezvous order
	type zone struct {
		name  string
		peers []Candidate
	}
	type region struct {
		name  string
		zones []*zone
		next  int
	}
	regions := map[string]*region{}
	zones := map[[2]string]*zone{}
	for _, id := range rendezvous.Rank(key, ids) {
		c := byID[string(id)]
		r := regions[c.Region]
		if r == nil {
			r = &region{name: c.Region}
			regions[c.Region] = r
		}
		z := zones[[2]string{c.Region, c.Zone}]
		if z == nil {
			z = &zone{name: c.Zone}
			zones[[2]string{c.Region, c.Zone}] = z
			r.zones = append(r.zones, z)
		}
		z.peers = append(z.peers, c)
	}
	// Regions take turns in a key-dependent order, so that a small n does
	// not always favour the same region; zones by name inside a region.
	names := make([]peer.ID, 0, len(regions))
	for name, r := range regions {
		slices.SortFunc(r.zones, func(a, b *zone) int { return cmp.Compare(a.name, b.name) })
		names = append(names, peer.ID(name))
	}
	order := make([]*region, 0, len(regions))
	for _, name := range rendezvous.Rank(key, names) {
		order = append(order, regions[string(name)])
	}
	n = min(n, len(byID))
	out := make([]Candidate, 0, n)
	for len(out) < n {
		progressed := false
		for _, r := range order {
			if len(out) == n {
				break
			}
			// next zone of r that still has peers
			for k := 0; k < len(r.zones); k++ {
				z := r.zones[(r.next+k)%len(r.zones)]
				if len(z.peers) > 0 {
					out = append(out, z.peers[0])
					z.peers = z.peers[1:]
					r.next = (r.next + k + 1) % len(r.zones)
					progressed = true
					break
				}
			}
		}
		if !progressed {
			break
		}
	}
	return out
}
