package preheat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/crypto"
	"github.com/dfp2p/dfp2p/internal/httpapi"
	"github.com/dfp2p/dfp2p/oci"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeBackend records what the manager asks and answers from tables.
type fakeBackend struct {
	mu        sync.Mutex
	seeded    []Target
	seedErr   map[content.TaskID]error
	seedGate  chan struct{} // when set, Seed waits for it
	inSeed    int
	maxInSeed int
	cands     []Candidate
	asked     map[string][]PeerItem
	peerCalls map[string]int
	peerDone  map[string]int // calls after which a peer reports complete
	peerErr   map[string]error
}

func newFake() *fakeBackend {
	return &fakeBackend{seedErr: map[content.TaskID]error{}, asked: map[string][]PeerItem{},
		peerCalls: map[string]int{}, peerDone: map[string]int{}, peerErr: map[string]error{}}
}

func (f *fakeBackend) Seed(ctx context.Context, t Target) error {
	f.mu.Lock()
	f.seeded = append(f.seeded, t)
	f.inSeed++
	f.maxInSeed = max(f.maxInSeed, f.inSeed)
	gate := f.seedGate
	err := f.seedErr[t.Task]
	f.mu.Unlock()
	defer func() { f.mu.Lock(); f.inSeed--; f.mu.Unlock() }()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}

func (f *fakeBackend) SeedProgress(content.TaskID) (int64, int64) { return 50, 100 }

func (f *fakeBackend) Candidates() []Candidate {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Candidate(nil), f.cands...)
}

func (f *fakeBackend) AskPeer(_ context.Context, peer string, req PeerRequest) (*PeerResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.peerCalls[peer]++
	f.asked[peer] = req.Items
	if err := f.peerErr[peer]; err != nil {
		return nil, err
	}
	resp := &PeerResponse{}
	for _, it := range req.Items {
		id, _ := content.TaskIDFor(it.URL, it.Tag, it.Digest, nil)
		resp.Tasks = append(resp.Tasks, PeerTask{Task: id, Complete: f.peerCalls[peer] >= f.peerDone[peer]})
	}
	return resp, nil
}

type fakeResolver struct {
	img *oci.Image
	err error
}

func (r fakeResolver) Resolve(_ context.Context, ref oci.Ref, p oci.Platform) (*oci.Image, error) {
	if r.err != nil {
		return nil, r.err
	}
	img := *r.img
	img.Ref, img.Platform = ref, p
	return &img, nil
}

func digest(s string) string {
	id, _ := content.TaskIDFor("http://x/"+s, "", "", nil)
	return "sha256:" + string(id)
}

func testImage() *oci.Image {
	img := &oci.Image{ManifestDigest: digest("manifest"), Header: http.Header{"Authorization": {"Bearer t"}},
		Config: oci.Blob{Digest: digest("config"), Size: 10, URL: "http://reg/v2/a/blobs/" + digest("config")}}
	for i := range 3 {
		d := digest(fmt.Sprint("layer", i))
		img.Layers = append(img.Layers, oci.Blob{Digest: d, Size: 100, URL: "http://reg/v2/a/blobs/" + d})
	}
	img.Layers = append(img.Layers, img.Layers[0]) // a repeated layer is one item
	return img
}

func newManager(t *testing.T, f *fakeBackend, r Resolver, mod func(*Config)) *Manager {
	cfg := Config{Backend: f, Resolver: r, Logger: slog.New(slog.DiscardHandler), Poll: 10 * time.Millisecond, PeerWait: time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	m := New(cfg)
	t.Cleanup(m.Close)
	return m
}

func waitDone(t *testing.T, m *Manager, id string) Job {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		j, ok := m.Get(id)
		if !ok {
			t.Fatalf("job %s vanished", id)
		}
		if j.State.Done() {
			return j
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("job %s not done", id)
	return Job{}
}

// An image job: the items are the config and the distinct layers, named by
// digest, with the blob digest as the task ID (what the registry mirror
// uses); the seed fetches each with the registry token; the chosen peers
// are asked without credentials and followed until complete.
func TestImageJobSeedsAndPeers(t *testing.T) {
	f := newFake()
	f.cands = []Candidate{{ID: "p1"}, {ID: "p2"}, {ID: "p3"}, {ID: "p4"}}
	f.peerDone = map[string]int{"p1": 2, "p2": 2, "p3": 2, "p4": 2}
	m := newManager(t, f, fakeResolver{img: testImage()}, nil)
	j, err := m.Submit(Request{Image: "reg.local:5000/a:v1", Peers: "50%"})
	if err != nil {
		t.Fatal(err)
	}
	if j.State != StatePending && j.State != StateRunning {
		t.Fatalf("new job state %s", j.State)
	}
	j = waitDone(t, m, j.ID)
	if j.State != StateSucceeded || j.Error != "" {
		t.Fatalf("job %+v", j)
	}
	if j.Kind != "image" || j.Target != "reg.local:5000/a:v1" || j.Platform != "linux/amd64" || j.Manifest != digest("manifest") {
		t.Fatalf("job header %+v", j)
	}
	if len(j.Items) != 4 || len(f.seeded) != 4 {
		t.Fatalf("items %d, seeded %d", len(j.Items), len(f.seeded))
	}
	for i, it := range j.Items {
		if "sha256:"+string(it.Task) != it.Name || !it.SeedDone || it.PeersAsked != 2 || it.PeersDone != 2 || it.BytesDone != it.BytesTotal {
			t.Fatalf("item %d: %+v", i, it)
		}
	}
	for _, s := range f.seeded {
		if s.Digest == "" || s.Header.Get("Authorization") != "Bearer t" || "sha256:"+string(s.Task) != s.Digest {
			t.Fatalf("seed target %+v", s)
		}
	}
	if len(j.Chosen) != 2 {
		t.Fatalf("chosen %v", j.Chosen)
	}
	for _, p := range j.Chosen {
		if len(f.asked[p]) != 4 || f.peerCalls[p] != 2 {
			t.Fatalf("peer %s asked %v in %d calls", p, f.asked[p], f.peerCalls[p])
		}
	}
}

// A URL job uses the task ID `dfp2p get` derives (digest, tag and query
// filter included), passes the headers to the seed only.
func TestURLJobTaskIDs(t *testing.T) {
	f := newFake()
	m := newManager(t, f, nil, nil)
	u := "https://origin.example/a/../file.iso?X-Amz-Signature=abc&b=1"
	j, err := m.Submit(Request{URL: u, Tag: "t1", Header: map[string][]string{"authorization": {"Bearer x"}}})
	if err != nil {
		t.Fatal(err)
	}
	j = waitDone(t, m, j.ID)
	want, _ := content.TaskIDFor(u, "t1", "", content.DefaultQueryFilter)
	if j.State != StateSucceeded || j.Items[0].Task != want || strings.Contains(j.Target, "Signature") {
		t.Fatalf("job %+v, want task %s", j, want)
	}
	if f.seeded[0].Header.Get("Authorization") != "Bearer x" {
		t.Fatalf("seed header %v", f.seeded[0].Header)
	}
	d := digest("file")
	j, _ = m.Submit(Request{URL: u, Digest: d})
	j = waitDone(t, m, j.ID)
	if "sha256:"+string(j.Items[0].Task) != d {
		t.Fatalf("digest task %s", j.Items[0].Task)
	}
	// Image resolution unavailable without a resolver; bad requests.
	for _, bad := range []Request{{}, {URL: u, Image: "a"}, {Image: "a"}, {URL: "ftp://x/y"}, {URL: u, Peers: "150%"},
		{URL: u, Platform: "linux/amd64"}, {URL: u, Header: map[string][]string{"X": {"a\r\nb"}}}} {
		if _, err := m.Submit(bad); err == nil || !errors.As(err, new(*BadRequestError)) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}

// Failures: a seed error fails the job with the item named; a peer that
// cannot be reached is given up after PeerFailures calls; no live peers.
func TestJobFailures(t *testing.T) {
	f := newFake()
	img := testImage()
	id, _ := content.ParseDigest(img.Layers[1].Digest)
	f.seedErr[id] = errors.New("origin answered 404")
	m := newManager(t, f, fakeResolver{img: img}, nil)
	j, _ := m.Submit(Request{Image: "reg.local/a:v1"})
	j = waitDone(t, m, j.ID)
	if j.State != StateFailed || !strings.Contains(j.Error, img.Layers[1].Digest) || !strings.Contains(j.Error, "404") {
		t.Fatalf("seed failure: %+v", j)
	}

	f = newFake()
	f.cands = []Candidate{{ID: "good"}, {ID: "dead"}}
	f.peerErr["dead"] = errors.New("connection refused")
	m = newManager(t, f, fakeResolver{img: testImage()}, func(c *Config) { c.PeerFailures = 2 })
	j, _ = m.Submit(Request{Image: "reg.local/a:v1", Peers: "2"})
	j = waitDone(t, m, j.ID)
	if j.State != StateFailed || !strings.Contains(j.Error, "connection refused") || f.peerCalls["dead"] != 2 {
		t.Fatalf("dead peer: %+v (calls %d)", j, f.peerCalls["dead"])
	}
	if j.Items[0].PeersDone != 1 || j.Items[0].PeersAsked != 2 {
		t.Fatalf("item %+v", j.Items[0])
	}

	f = newFake()
	m = newManager(t, f, fakeResolver{err: &oci.StatusError{URL: "u", Code: 404}}, nil)
	j, _ = m.Submit(Request{Image: "reg.local/a:v1"})
	if j = waitDone(t, m, j.ID); j.State != StateFailed || !strings.Contains(j.Error, "404") {
		t.Fatalf("resolve failure: %+v", j)
	}
	m = newManager(t, f, nil, nil)
	j, _ = m.Submit(Request{URL: "http://o/f", Peers: "3"})
	if j = waitDone(t, m, j.ID); j.State != StateFailed || !strings.Contains(j.Error, "no live peer") {
		t.Fatalf("no peers: %+v", j)
	}
}

// Bounds: seeds at once tracker-wide, running jobs (the rest pending),
// active jobs (ErrBusy), kept jobs (oldest finished dropped).
func TestLimits(t *testing.T) {
	f := newFake()
	f.seedGate = make(chan struct{})
	img := testImage()
	m := newManager(t, f, fakeResolver{img: img}, func(c *Config) { c.MaxSeeds, c.MaxRunning, c.MaxActive, c.MaxJobs = 2, 1, 3, 4 })
	a, _ := m.Submit(Request{Image: "reg.local/a:v1"})
	b, _ := m.Submit(Request{Image: "reg.local/a:v1"})
	if _, err := m.Submit(Request{URL: "http://o/x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Submit(Request{URL: "http://o/y"}); !errors.Is(err, ErrBusy) {
		t.Fatalf("4th active job: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.mu.Lock()
		n := f.inSeed
		f.mu.Unlock()
		if n == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	running := 0
	for _, j := range m.List() {
		if j.State == StateRunning {
			running++
		} else if j.State != StatePending {
			t.Fatalf("job %s is %s while seeds are held", j.ID, j.State)
		}
	}
	if running != 1 {
		t.Fatalf("%d jobs running, limit 1", running)
	}
	close(f.seedGate)
	waitDone(t, m, a.ID)
	waitDone(t, m, b.ID)
	f.mu.Lock()
	maxIn := f.maxInSeed
	f.mu.Unlock()
	if maxIn != 2 {
		t.Fatalf("%d seeds at once, limit 2", maxIn)
	}
	for i := range 4 {
		j, err := m.Submit(Request{URL: fmt.Sprintf("http://o/%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		waitDone(t, m, j.ID)
	}
	list := m.List()
	if len(list) != 4 {
		t.Fatalf("%d jobs kept, limit 4", len(list))
	}
	if _, ok := m.Get(a.ID); ok {
		t.Fatal("oldest finished job kept")
	}
	if !strings.HasSuffix(list[0].Target, "/3") {
		t.Fatalf("list not newest first: %s", list[0].Target)
	}
}

func TestSelect(t *testing.T) {
	var cands []Candidate
	for _, r := range []string{"eu", "us", "ap"} {
		for _, z := range []string{"a", "b"} {
			for i := range 3 {
				cands = append(cands, Candidate{ID: fmt.Sprintf("%s-%s-%d", r, z, i), Region: r, Zone: z})
			}
		}
	}
	count := func(sel []Candidate, key func(Candidate) string) map[string]int {
		m := map[string]int{}
		for _, c := range sel {
			m[key(c)]++
		}
		return m
	}
	region := func(c Candidate) string { return c.Region }
	zone := func(c Candidate) string { return c.Region + "/" + c.Zone }
	// 3 peers: one per region.
	if got := count(Select(cands, 3, "job1"), region); len(got) != 3 {
		t.Fatalf("3 peers over regions: %v", got)
	}
	// 6 peers: one per zone.
	if got := count(Select(cands, 6, "job1"), zone); len(got) != 6 {
		t.Fatalf("6 peers over zones: %v", got)
	}
	// 30% of 18 = 6 (rounded up from 5.4), same spread; no duplicates.
	c, _ := ParseCount("30%")
	sel := Select(cands, c.Of(len(cands)), "job2")
	if len(sel) != 6 || len(count(sel, func(c Candidate) string { return c.ID })) != 6 {
		t.Fatalf("30%%: %v", sel)
	}
	// Stable per key, different across keys (almost surely).
	a, b := Select(cands, 4, "k"), Select(cands, 4, "k")
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatal("selection not stable for one key")
	}
	differs := false
	for i := range 20 {
		if fmt.Sprint(Select(cands, 4, fmt.Sprint("other", i))) != fmt.Sprint(a) {
			differs = true
		}
	}
	if !differs {
		t.Fatal("every key picks the same peers")
	}
	// More than there are; unknown locality; zero.
	if got := Select(cands[:2], 5, "k"); len(got) != 2 {
		t.Fatalf("capped: %v", got)
	}
	if got := Select([]Candidate{{ID: "x"}, {ID: "y", Region: "eu"}}, 2, "k"); len(got) != 2 {
		t.Fatalf("unknown locality: %v", got)
	}
	if Select(cands, 0, "k") != nil {
		t.Fatal("0 peers selected some")
	}
	for in, want := range map[string]int{"2": 2, "100%": 18, "1%": 1, "50%": 9, "0": 0, "": 0, "40": 18} {
		c, err := ParseCount(in)
		if err != nil || c.Of(18) != want {
			t.Errorf("%q of 18: %d %v, want %d", in, c.Of(18), err, want)
		}
	}
	for _, bad := range []string{"-1", "0%", "101%", "x", "NaN%"} {
		if _, err := ParseCount(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// The API: a tokenless loopback caller may list and read jobs (read) but
// not start one (401); a read token gets 403, a preheat token 202; the
// client reports the job and waits for it.
func TestAPIAuth(t *testing.T) {
	ca, err := crypto.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	auth, err := httpapi.NewAuth(ca.Public(), "")
	if err != nil {
		t.Fatal(err)
	}
	f := newFake()
	m := newManager(t, f, nil, nil)
	mux := http.NewServeMux()
	m.Register(mux, auth)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	post := func(token, body string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/preheat", strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	read, _ := ca.IssueToken([]crypto.Scope{crypto.ScopeRead}, time.Hour, time.Now())
	ph, _ := ca.IssueToken([]crypto.Scope{crypto.ScopePreheat}, time.Hour, time.Now())
	body := `{"url":"http://origin.example/f"}`
	if got := post("", body); got != http.StatusUnauthorized {
		t.Fatalf("tokenless loopback POST: %d, want 401", got)
	}
	if got := post(read, body); got != http.StatusForbidden {
		t.Fatalf("read token POST: %d, want 403", got)
	}
	if got := post(ph, `{"url":"http://origin.example/f","bogus":1}`); got != http.StatusBadRequest {
		t.Fatalf("unknown field: %d", got)
	}
	if got := post(ph, `{"url":"ftp://x"}`); got != http.StatusBadRequest {
		t.Fatalf("bad url: %d", got)
	}
	c, err := NewClient(srv.URL, ph)
	if err != nil {
		t.Fatal(err)
	}
	defer c.HTTP.CloseIdleConnections()
	j, err := c.Submit(context.Background(), Request{URL: "http://origin.example/f"})
	if err != nil {
		t.Fatal(err)
	}
	j, err = c.Wait(context.Background(), j.ID, 10*time.Millisecond, nil)
	if err != nil || j.State != StateSucceeded {
		t.Fatalf("wait: %+v %v", j, err)
	}
	anon, _ := NewClient(strings.TrimPrefix(srv.URL, "http://"), "")
	defer anon.HTTP.CloseIdleConnections()
	if _, err := anon.Get(context.Background(), j.ID); err != nil {
		t.Fatalf("tokenless loopback read: %v", err)
	}
	if _, err := anon.Get(context.Background(), "nope"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("unknown job: %v", err)
	}
	_, err = anon.Submit(context.Background(), Request{URL: "http://origin.example/f"})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 401 || !strings.Contains(err.Error(), "--token") {
		t.Fatalf("tokenless submit: %v", err)
	}
}
