package tracker

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/internal/httpapi"
)

func TestEdgeBookCap(t *testing.T) {
	var b edgeBook
	if got := b.list(); len(got) != 0 {
		t.Fatalf("empty book lists %v", got)
	}
	for i := 0; i < maxEdgesPerTask+5; i++ {
		b.add("p", fmt.Sprintf("c%05d", i), 10)
	}
	if len(b.bytes) != maxEdgesPerTask || b.dropped != 50 {
		t.Fatalf("%d edges, %d dropped; want %d, 50", len(b.bytes), b.dropped, maxEdgesPerTask)
	}
	// Known edges keep counting past the cap; new ones do not get in.
	b.add("p", "c00003", 100)
	b.add("x", "y", 7)
	if b.bytes[edgeKey{"p", "c00003"}] != 110 || b.dropped != 57 {
		t.Fatalf("after the cap: edge %d, dropped %d", b.bytes[edgeKey{"p", "c00003"}], b.dropped)
	}
	l := b.list()
	if len(l) != maxEdgesPerTask || l[0] != (Edge{From: "p", To: "c00003", Bytes: 110}) || l[1].To != "c00000" || l[2].To != "c00001" {
		t.Fatalf("list not most bytes first, then by IDs: %v", l[:3])
	}
}

func TestTrafficRates(t *testing.T) {
	var tr traffic
	t0 := time.Unix(1000, 0)
	for i := 0; i < trafficSamples+10; i++ {
		// origin grows 100 B/s, seed 10 B/s, peers 1000 B/s; one duplicate
		// instant is skipped.
		at := t0.Add(time.Duration(i) * time.Second)
		tr.sample(trafficSample{at: at, origin: int64(100 * i), seed: int64(10 * i), peer: int64(1000 * i)})
	}
	ss := tr.samples()
	if len(ss) != trafficSamples || ss[0].at != t0.Add(10*time.Second) || ss[len(ss)-1].at != t0.Add(time.Duration(trafficSamples+9)*time.Second) {
		t.Fatalf("ring holds %d samples from %v to %v", len(ss), ss[0].at, ss[len(ss)-1].at)
	}
	rs := rates(append(ss, ss[len(ss)-1]))
	if len(rs) != trafficSamples-1 {
		t.Fatalf("%d rates, want %d", len(rs), trafficSamples-1)
	}
	for _, r := range rs {
		if r.Origin != 100 || r.Seed != 10 || r.Peer != 1000 {
			t.Fatalf("rate %+v", r)
		}
	}
	if rs[len(rs)-1].At != ss[len(ss)-1].at.UnixMilli() {
		t.Fatal("rate not stamped with the end of its interval")
	}
}

// fetchAll drives one peer through a whole task on the tracker protocol,
// reporting every assigned piece done (no bytes move: the tracker counts
// what peers report), and returns the parents it was sent to.
func fetchAll(t *testing.T, c *Client, id content.TaskID, n int) map[string]int {
	t.Helper()
	ctx := context.Background()
	parents := map[string]int{}
	got := 0
	deadline := time.Now().Add(20 * time.Second)
	for got < n && time.Now().Before(deadline) {
		s, err := c.Call(ctx, &Request{Type: TypeSchedule, Task: id, Max: 8})
		if err != nil {
			t.Fatal(err)
		}
		var done []int
		for _, a := range s.Assignments {
			parents[a.Parent]++
			done = append(done, a.Piece)
		}
		got += len(done)
		if _, err := c.Call(ctx, &Request{Type: TypeReport, Task: id, Done: done}); err != nil {
			t.Fatal(err)
		}
		if len(s.Assignments) == 0 {
			time.Sleep(time.Duration(s.RetryAfterMs) * time.Millisecond)
		}
	}
	if got != n {
		t.Fatalf("scheduled %d of %d pieces", got, n)
	}
	return parents
}

func getJSONBody(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// Two peers fetch a task, the second partly from the first: the edges and
// the overview count what they reported, per parent→child edge.
func TestDashboardEdgesAndOverview(t *testing.T) {
	tr, origin, data := newTestTracker(t)
	api := "http://" + tr.APIAddr()
	seed := tr.Host().ID().String()
	// Let the tick loop take a sample first, so the reports below fall
	// between two samples and show as throughput.
	var o Overview
	for deadline := time.Now().Add(10 * time.Second); len(o.Throughput) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("no throughput samples after 10 s")
		}
		time.Sleep(200 * time.Millisecond)
		getJSONBody(t, api+"/api/v1/overview", &o)
	}

	ha, ca := newPeer(t, tr)
	hb, cb := newPeer(t, tr)
	a, b := ha.ID().String(), hb.ID().String()
	ctx := context.Background()
	url := origin.URL + "/f"
	ra, err := ca.Call(ctx, &Request{Type: TypeRegister, URL: url, Region: "eu", Zone: "eu-1"})
	if err != nil {
		t.Fatal(err)
	}
	id := ra.Task
	n := content.NumPieces(ra.Length, ra.PieceSize)
	if pa := fetchAll(t, ca, id, n); pa[seed] != n {
		t.Fatalf("first peer's parents %v, want the seed for all %d pieces", pa, n)
	}
	if _, err := cb.Call(ctx, &Request{Type: TypeRegister, URL: url, Region: "eu", Zone: "eu-2"}); err != nil {
		t.Fatal(err)
	}
	pb := fetchAll(t, cb, id, n)
	if pb[a] == 0 {
		t.Fatalf("second peer's parents %v: never the first peer", pb)
	}

	// Bytes per edge: whole pieces, the last one short.
	want := map[edgeKey]int64{}
	credit := func(parent, child string, pieces int) {
		for i := 0; i < pieces; i++ {
			_, l := content.PieceRange(ra.Length, ra.PieceSize, i)
			want[edgeKey{parent, child}] += l
		}
	}
	credit(seed, a, n)
	var e TaskEdges
	getJSONBody(t, api+"/api/v1/tasks/"+string(id)+"/edges", &e)
	if e.Task != id || e.Seed != seed || e.DroppedBytes != 0 {
		t.Fatalf("edges header %+v", e)
	}
	got := map[edgeKey]int64{}
	for _, x := range e.Edges {
		got[edgeKey{x.From, x.To}] = x.Bytes
	}
	if got[edgeKey{seed, a}] != want[edgeKey{seed, a}] || got[edgeKey{seed, b}]+got[edgeKey{a, b}] != ra.Length ||
		got[edgeKey{a, b}] == 0 || len(got) > 3 {
		t.Fatalf("edges %v; want seed→a %d, seed→b + a→b %d", got, want[edgeKey{seed, a}], ra.Length)
	}

	// The overview adds them up, with the seed's origin reads and regions.
	deadline := time.Now().Add(20 * time.Second)
	for {
		getJSONBody(t, api+"/api/v1/overview", &o)
		var moved float64
		for _, r := range o.Throughput {
			moved += r.Seed + r.Peer
		}
		if o.OriginBytes >= int64(len(data)) && moved > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("overview never showed the origin read and the transfers: %+v", o)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if o.Tracker != seed || o.Tasks != 1 || o.Peers != 2 {
		t.Fatalf("overview %+v", o)
	}
	if o.SeedBytes != got[edgeKey{seed, a}]+got[edgeKey{seed, b}] || o.PeerBytes != got[edgeKey{a, b}] ||
		o.DeliveredBytes != 2*ra.Length {
		t.Fatalf("overview bytes seed %d peer %d delivered %d; edges %v", o.SeedBytes, o.PeerBytes, o.DeliveredBytes, got)
	}
	if r := float64(o.DeliveredBytes) / float64(o.OriginBytes); o.OffloadRatio != r || r < 1.5 {
		t.Fatalf("offload ratio %v (origin %d)", o.OffloadRatio, o.OriginBytes)
	}
	if s := float64(o.PeerBytes) / float64(o.DeliveredBytes); o.PeerShare != s {
		t.Fatalf("peer share %v, want %v", o.PeerShare, s)
	}
	wantRegions := []RegionCount{{"eu", "eu-1", 1}, {"eu", "eu-2", 1}}
	if fmt.Sprint(o.Regions) != fmt.Sprint(wantRegions) {
		t.Fatalf("regions %v, want %v", o.Regions, wantRegions)
	}

	// Unknown task: 404. Dropped with the task.
	resp, err := http.Get(api + "/api/v1/tasks/" + strings.Repeat("0", 64) + "/edges")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("edges of an unknown task: %s", resp.Status)
	}
	tr.mu.Lock()
	delete(tr.tasks, id)
	tr.sched.RemoveTask(string(id))
	tr.mu.Unlock()
	if resp, _ := http.Get(api + "/api/v1/tasks/" + string(id) + "/edges"); resp == nil || resp.StatusCode != 404 {
		t.Fatal("edges outlived their task")
	} else {
		resp.Body.Close()
	}
}

// The page is public (it holds no data); its JSON needs the read scope from
// anywhere but loopback, like the rest of the API.
func TestDashboardAuth(t *testing.T) {
	tr, _, _ := newTestTracker(t)
	h := tr.apiHandler()
	tok, err := os.ReadFile(filepath.Join(tr.cfg.DataDir, httpapi.LocalTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		path, remote, token string
		want                int
	}{
		{"/", "10.1.2.3:5555", "", 200},
		{"/ui/app.js", "10.1.2.3:5555", "", 200},
		{"/api/v1/overview", "10.1.2.3:5555", "", 401},
		{"/api/v1/overview", "10.1.2.3:5555", "dfp2p-api-v1.bogus.sig", 401},
		{"/api/v1/overview", "10.1.2.3:5555", strings.TrimSpace(string(tok)), 200},
		{"/api/v1/overview", "127.0.0.1:5555", "", 200},
		{"/api/v1/tasks/x/edges", "10.1.2.3:5555", "", 401},
		{"/api/v1/tasks/x/edges", "[::1]:5555", "", 404},
	} {
		req := httptest.NewRequest(http.MethodGet, tt.path, nil)
		req.RemoteAddr = tt.remote
		if tt.token != "" {
			req.Header.Set("Authorization", "Bearer "+tt.token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != tt.want {
			t.Errorf("GET %s from %s (token %v): %d, want %d", tt.path, tt.remote, tt.token != "", w.Code, tt.want)
		}
	}
}
