package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/e2e/cluster"
	"github.com/dfp2p/dfp2p/internal/fsutil"
)

// pageState is what the dashboard shows, read from its DOM.
type pageState struct {
	Text   string   `json:"text"`   // the page's visible text
	Peers  []string `json:"peers"`  // full peer IDs of the peer table's rows
	Edges  []string `json:"edges"`  // swarm-graph edges, "from>to"
	Status string   `json:"status"` // the status badge's class
	// Partial: some peer row shows a download under way (held < pieces).
	Partial bool `json:"partial"`
}

const readPage = `(() => ({
  text: document.body.innerText,
  peers: [...document.querySelectorAll("#peers tr[data-peer]")].map((r) => r.dataset.peer),
  edges: [...document.querySelectorAll("#graph [data-edge]")].map((e) => e.dataset.edge),
  status: document.getElementById("status").className,
  partial: [...document.querySelectorAll("#peers tr[data-peer]")].some((r) => {
    const m = r.cells[3].innerText.match(/(\d+)\/(\d+)/);
    return m !== null && m[1] !== m[2];
  }),
}))()`

// The tracker's dashboard, in a real headless Chromium, shows a download
// through four daemons while it runs: the task, every daemon among its
// peers, and swarm-graph edges; with no console errors or failed requests.
// It saves a full-page screenshot (DFP2P_E2E_ARTIFACTS, default
// e2e/artifacts; DFP2P_UPDATE_SCREENSHOT=1 also writes docs/dashboard.png).
func TestDashboard(t *testing.T) {
	start := time.Now()
	e := newEnv(t)
	const size = 64 << 20
	f := e.file("dashboard.bin", size)
	// 64 KiB writes 50 ms apart on each of the seed's 4 ranges: about 13 s
	// of download to watch.
	e.origin.SetDelay(50 * time.Millisecond)
	tr := e.tracker()
	var ds []*cluster.Proc
	for i, zone := range []string{"eu-west-1a", "eu-west-1a", "eu-west-1b", "eu-west-1b"} {
		d, err := e.c.StartDaemon([]*cluster.Proc{tr}, "--region", "eu-west", "--zone", zone)
		if err != nil {
			t.Fatalf("daemon %d: %v", i, err)
		}
		ds = append(ds, d)
	}
	url := e.origin.FileURL(f.Name)
	task, _ := content.TaskIDFor(url, "", "", content.DefaultQueryFilter)

	b, err := cluster.StartBrowser(filepath.Join(e.dir, "chromium"))
	if err != nil {
		t.Fatal(err)
	}
	// Registered after newEnv's cleanup, so it runs first: the browser
	// goes before the cluster.
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := b.Run(30*time.Second, chromedp.Navigate(tr.URL()+"/")); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	gets := make(chan []cluster.GetResult, 1)
	wait := e.startGets(ctx, url, "out", ds)
	go func() { gets <- wait() }()
	var results []cluster.GetResult
	defer func() {
		if results == nil {
			cancel()
			<-gets
		}
	}()

	var want []string
	for _, d := range ds {
		want = append(want, peerID(t, d))
	}
	// Wait until the page shows the task, all four daemons, an edge, and a
	// download under way.
	var st pageState
	shown := func() bool {
		if !strings.Contains(st.Text, string(task)) || len(st.Edges) == 0 || st.Status != "status ok" || !st.Partial {
			return false
		}
		for _, id := range want {
			if !contains(st.Peers, id) || !strings.Contains(st.Text, id[len(id)-8:]) {
				return false
			}
		}
		return true
	}
	peerEdge := func() bool {
		for _, e := range st.Edges {
			if from, _, _ := strings.Cut(e, ">"); contains(want, from) {
				return true
			}
		}
		return false
	}
	// progress is the least any daemon holds of the task, per the tracker.
	progress := func() float64 {
		var d struct {
			Pieces   int `json:"pieces"`
			PeerList []struct {
				Peer string
				Held int
			} `json:"peer_list"`
		}
		getJSON(t, tr.URL()+"/api/v1/tasks/"+string(task), &d)
		least := 1.0
		for _, p := range d.PeerList {
			if contains(want, p.Peer) && d.Pieces > 0 {
				least = min(least, float64(p.Held)/float64(d.Pieces))
			}
		}
		return least
	}
	deadline := time.Now().Add(40 * time.Second)
	var seenAt time.Time
	for {
		if err := b.Run(5*time.Second, chromedp.Evaluate(readPage, &st)); err != nil {
			t.Fatal(err)
		}
		if seenAt.IsZero() && shown() {
			seenAt = time.Now()
			t.Logf("dashboard shows the task, 4 peers and %d edges after %s", len(st.Edges), time.Since(start).Round(time.Millisecond))
		}
		// For a fuller picture (a minute of throughput is too long to
		// wait), go on until peers serve each other and every daemon
		// holds a third, if that comes within 8 s.
		if !seenAt.IsZero() && ((peerEdge() && progress() >= 0.33) || time.Since(seenAt) > 8*time.Second) {
			break
		}
		select {
		case results = <-gets:
			if !seenAt.IsZero() {
				break
			}
			t.Fatalf("the downloads finished before the dashboard showed them (page: task %v, peers %d, edges %d); slow the origin",
				strings.Contains(st.Text, string(task)), len(st.Peers), len(st.Edges))
		default:
		}
		if results != nil {
			break // seen while running; the screenshot shows the end
		}
		if time.Now().After(deadline) {
			t.Fatalf("dashboard never showed the download: status %q, peers %v, edges %v, want peers %v; text:\n%s", st.Status, st.Peers, st.Edges, want, st.Text)
		}
		time.Sleep(250 * time.Millisecond)
	}
	var png []byte
	if err := b.Run(20*time.Second, chromedp.FullScreenshot(&png, 100)); err != nil {
		t.Fatal(err)
	}
	select {
	case results = <-gets:
	default:
	}
	t.Logf("screenshot taken %s after start, %d peer→peer edges, %d edges", time.Since(start).Round(time.Millisecond), countPeerEdges(st.Edges, want), len(st.Edges))
	if results != nil {
		t.Log("note: the downloads had ended when the screenshot was taken (a slow machine); it shows the end")
	}
	saveScreenshot(t, png)
	if p := b.Problems(); len(p) > 0 {
		t.Fatalf("the page had problems:\n%s", strings.Join(p, "\n"))
	}

	if results == nil {
		results = <-gets
	}
	for i, r := range results {
		if r.ExitCode != 0 {
			t.Fatalf("get on %s: exit %d: %s", ds[i].Name, r.ExitCode, r.Stderr)
		}
		if got := sha256File(t, e.outPath(fmt.Sprintf("out%d", i))); got != f.SHA256 {
			t.Fatalf("output %d: sha256 %s, want %s", i, got, f.SHA256)
		}
	}
	// After the downloads the overview adds up what the graph showed.
	var o struct {
		OriginBytes    int64   `json:"origin_bytes"`
		DeliveredBytes int64   `json:"delivered_bytes"`
		PeerBytes      int64   `json:"peer_bytes"`
		OffloadRatio   float64 `json:"offload_ratio"`
	}
	getJSON(t, tr.URL()+"/api/v1/overview", &o)
	t.Logf("overview: origin %d, delivered %d (peer to peer %d), offload %.2fx", o.OriginBytes, o.DeliveredBytes, o.PeerBytes, o.OffloadRatio)
	if o.DeliveredBytes < 3*size || o.PeerBytes == 0 {
		t.Errorf("overview counted %d bytes delivered (%d peer to peer) for 4 x %d", o.DeliveredBytes, o.PeerBytes, size)
	}
	if p := b.Problems(); len(p) > 0 {
		t.Fatalf("the page had problems:\n%s", strings.Join(p, "\n"))
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func countPeerEdges(edges, peers []string) int {
	n := 0
	for _, e := range edges {
		if from, _, _ := strings.Cut(e, ">"); contains(peers, from) {
			n++
		}
	}
	return n
}

// peerID is the peer ID in a process's first multiaddr.
func peerID(t *testing.T, p *cluster.Proc) string {
	t.Helper()
	for _, a := range p.Addrs {
		if i := strings.LastIndex(a, "/p2p/"); i >= 0 {
			return a[i+len("/p2p/"):]
		}
	}
	t.Fatalf("%s: no /p2p/ in %v", p.Name, p.Addrs)
	return ""
}

// saveScreenshot writes the dashboard's screenshot to the artifacts dir,
// and to docs/dashboard.png when DFP2P_UPDATE_SCREENSHOT=1.
func saveScreenshot(t *testing.T, png []byte) {
	t.Helper()
	dir := os.Getenv("DFP2P_E2E_ARTIFACTS")
	if dir == "" {
		dir = "artifacts"
	}
	paths := []string{filepath.Join(dir, "dashboard.png")}
	if os.Getenv("DFP2P_UPDATE_SCREENSHOT") == "1" {
		paths = append(paths, filepath.Join("..", "docs", "dashboard.png"))
	}
	for _, p := range paths {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := fsutil.WriteFileAtomic(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		abs, _ := filepath.Abs(p)
		t.Logf("screenshot: %s (%d bytes)", abs, len(png))
	}
}

// hostAddr is a non-loopback IPv4 address of this host: a tracker API bound
// there sees the browser as a remote client.
func hostAddr(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	t.Fatal("this host has no non-loopback IPv4 address to serve the API on")
	return ""
}

// From anywhere but loopback the dashboard's data needs a token: the page
// says so, takes a read-scoped token in its token field, keeps it in
// sessionStorage only, and goes live with it.
func TestDashboardToken(t *testing.T) {
	e := newEnv(t)
	tr, err := e.c.StartTracker("--api", hostAddr(t)+":0")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "cluster", "api-token", "--ca", filepath.Join(tr.DataDir, "cluster-ca.key"), "--scope", "read", "--ttl", "10m").Output()
	if err != nil {
		t.Fatalf("minting a read token: %v", err)
	}
	tok := strings.TrimSpace(string(out))

	b, err := cluster.StartBrowser(filepath.Join(e.dir, "chromium"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := b.Run(30*time.Second, chromedp.Navigate(tr.URL()+"/")); err != nil {
		t.Fatal(err)
	}
	var st pageState
	waitPage := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; {
			if err := b.Run(5*time.Second, chromedp.Evaluate(readPage, &st)); err != nil {
				t.Fatal(err)
			}
			if ok() {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("page never showed %s: status %q; text:\n%s", what, st.Status, st.Text)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitPage("that it needs a token", func() bool {
		return st.Status == "status err" && strings.Contains(st.Text, "needs a token")
	})
	// The page loaded (it is public); only its API calls were refused.
	for _, p := range b.Problems() {
		if !strings.Contains(p, "401") {
			t.Fatalf("problem other than the expected 401s: %s", p)
		}
	}
	if err := b.Run(10*time.Second,
		chromedp.SendKeys("#token", tok, chromedp.ByID),
		chromedp.Click(`#token-form button[type="submit"]`, chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	trID := peerID(t, tr)
	waitPage("live data with the token", func() bool {
		return st.Status == "status ok" && strings.Contains(st.Text, trID[len(trID)-8:]) && strings.Contains(st.Text, "no tasks yet")
	})
	before := len(b.Problems())
	var stored struct {
		Session string `json:"session"`
		Local   int    `json:"local"`
		Field   string `json:"field"`
	}
	if err := b.Run(5*time.Second, chromedp.Evaluate(`({session: sessionStorage.getItem("dfp2p.api-token"), local: localStorage.length, field: document.getElementById("token").value})`, &stored)); err != nil {
		t.Fatal(err)
	}
	if stored.Session != tok || stored.Local != 0 || stored.Field != "" {
		t.Fatalf("token kept as session %v, localStorage entries %d, left in the field %v", stored.Session == tok, stored.Local, stored.Field != "")
	}
	// A few more polls with the token: no new errors.
	time.Sleep(3500 * time.Millisecond)
	if p := b.Problems(); len(p) > before {
		t.Fatalf("problems after the token was set:\n%s", strings.Join(p[before:], "\n"))
	}
}
