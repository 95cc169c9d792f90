package e2e

import (
	"context"
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dfp2p/dfp2p/daemon"
	"github.com/dfp2p/dfp2p/e2e/cluster"
	"github.com/dfp2p/dfp2p/tracker"
	"github.com/dfp2p/dfp2p/tracker/preheat"
)

// completeTasks is the set of task IDs a daemon holds complete.
func completeTasks(t *testing.T, d *cluster.Proc) map[string]bool {
	t.Helper()
	var ts []daemon.TaskStatus
	getJSON(t, d.URL()+"/api/v1/tasks", &ts)
	out := map[string]bool{}
	for _, s := range ts {
		if s.Complete {
			out[string(s.ID)] = true
		}
	}
	return out
}

// seedComplete is the set of task IDs the tracker's seed holds complete.
func seedComplete(t *testing.T, tr *cluster.Proc) map[string]bool {
	t.Helper()
	var ts []tracker.TaskInfo
	getJSON(t, tr.URL()+"/api/v1/tasks", &ts)
	out := map[string]bool{}
	for _, s := range ts {
		if s.SeedDone {
			out[string(s.ID)] = true
		}
	}
	return out
}

func readJob(t *testing.T, tr *cluster.Proc, id string) preheat.Job {
	t.Helper()
	var j preheat.Job
	if code := getJSON(t, tr.URL()+"/api/v1/preheat/"+id, &j); code != http.StatusOK {
		t.Fatalf("GET job %s: %d", id, code)
	}
	return j
}

// chosenProcs maps a job's chosen peer IDs to the daemons.
func chosenProcs(t *testing.T, j preheat.Job, ds []*cluster.Proc) (chosen, others []*cluster.Proc) {
	t.Helper()
	pick := map[string]bool{}
	for _, id := range j.Chosen {
		pick[id] = true
	}
	for _, d := range ds {
		if pick[d.PeerID()] {
			chosen = append(chosen, d)
		} else {
			others = append(others, d)
		}
	}
	if len(chosen) != len(j.Chosen) {
		t.Fatalf("chosen peers %v are not all among the daemons", j.Chosen)
	}
	return chosen, others
}

// A private image on a token-auth registry: `dfp2p preheat IMAGE --peers 2`
// makes the tracker resolve the manifest (bearer challenge, the account
// from --preheat-auth-file), its seed read every layer and the config once,
// and two daemons fetch them; a containerd pull through another daemon's
// mirror then reads no blob byte from the registry.
func TestPreheatImage(t *testing.T) {
	requireImageTools(t)
	e := newEnv(t)
	img := testImage(t, cluster.ImageSpec{Layers: 3, LayerSize: 8 << 20, Seed: 7})
	reg := e.registry(cluster.AuthToken, img, "e2e/preheat")
	authFile := filepath.Join(e.dir, "registry-auth.json")
	auth := base64.StdEncoding.EncodeToString([]byte(reg.Credentials()))
	if err := os.WriteFile(authFile, []byte(`{"auths":{"`+reg.FrontHost+`":{"auth":"`+auth+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tr, err := e.c.StartTracker("--preheat-registry", reg.FrontHost+"="+reg.FrontURL, "--preheat-auth-file", authFile)
	if err != nil {
		t.Fatal(err)
	}
	ds := e.mirrorDaemons(4, tr, reg)
	ref := reg.FrontHost + "/e2e/preheat:v1"

	// Tokenless, from loopback: reading jobs is allowed, starting one is not.
	resp, err := http.Post(tr.URL()+"/api/v1/preheat", "application/json", strings.NewReader(`{"image":"`+ref+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("tokenless loopback POST /api/v1/preheat: %d, want 401", resp.StatusCode)
	}
	// Usage errors exit 2 before anything is sent.
	if r := e.c.Preheat(context.Background(), tr, ref, "--peers", "150%"); r.ExitCode != 2 {
		t.Fatalf("--peers 150%%: exit %d: %s", r.ExitCode, r.Stderr)
	}

	// Daemons learn of the tracker's preheat protocol when they connect;
	// give identify a moment so all four are live candidates.
	time.Sleep(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r := e.c.Preheat(ctx, tr, ref, "--peers", "2")
	t.Logf("dfp2p preheat %s --peers 2: exit %d in %s; %s", ref, r.ExitCode, r.Elapsed.Round(time.Millisecond), strings.TrimSpace(r.Stderr))
	if r.ExitCode != 0 || r.JobID == "" {
		t.Fatalf("preheat failed: exit %d, stdout %q, stderr %s", r.ExitCode, r.JobID, r.Stderr)
	}
	j := readJob(t, tr, r.JobID)
	if j.State != preheat.StateSucceeded || j.Manifest != img.Manifest.Digest || len(j.Chosen) != 2 {
		t.Fatalf("job %+v", j)
	}
	blobs := append([]string{img.Config.Digest}, func() (out []string) {
		for _, l := range img.Layers {
			out = append(out, l.Digest)
		}
		return
	}()...)
	if len(j.Items) != len(blobs) {
		t.Fatalf("job has %d items, the image %d blobs", len(j.Items), len(blobs))
	}
	for i, it := range j.Items {
		if it.Name != blobs[i] || "sha256:"+string(it.Task) != blobs[i] || !it.SeedDone || it.PeersDone != 2 || it.BytesDone != it.BytesTotal {
			t.Fatalf("item %d: %+v (want blob %s)", i, it, blobs[i])
		}
	}
	seed := seedComplete(t, tr)
	chosen, others := chosenProcs(t, j, ds)
	for _, b := range blobs {
		task := strings.TrimPrefix(b, "sha256:")
		if !seed[task] {
			t.Errorf("the seed does not hold %s", digestPrefix(b))
		}
		for _, d := range chosen {
			if !completeTasks(t, d)[task] {
				t.Errorf("chosen %s does not hold %s", d.Name, digestPrefix(b))
			}
		}
		got := reg.Blob(b)
		t.Logf("registry front for %s: %d GETs, %d bytes", digestPrefix(b), got.Gets, got.Bytes)
	}
	for _, l := range img.Layers {
		if got := reg.Blob(l.Digest); got.Bytes < l.Size || float64(got.Bytes) > 1.05*float64(l.Size) {
			t.Errorf("layer %s (%d bytes): the registry served %d bytes in %d GETs during the preheat, want once", digestPrefix(l.Digest), l.Size, got.Bytes, got.Gets)
		}
	}
	for _, d := range others {
		if n := len(completeTasks(t, d)); n != 0 {
			t.Errorf("%s was not chosen but holds %d tasks", d.Name, n)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// A real pull through a daemon that was not chosen: every blob comes
	// from the swarm, nothing from the registry.
	reg.ResetCounts()
	c := e.containerd("containerd-preheat", others[0], reg)
	start := time.Now()
	if _, err := c.Pull(ctx, ref, reg.Credentials()); err != nil {
		t.Fatalf("pull after preheat: %v", err)
	}
	if err := c.CheckUnpacked(ctx, ref, img); err != nil {
		t.Fatal(err)
	}
	t.Logf("containerd pulled %s through %s in %s after the preheat; registry front:\n%s", ref, others[0].Name, time.Since(start).Round(time.Millisecond), reg.CountsString())
	if n := reg.BlobBytes(); n != 0 {
		t.Fatalf("the pull after the preheat read %d blob bytes from the registry, want 0", n)
	}
	// The job list shows it (tokenless read from loopback).
	var list []preheat.Job
	getJSON(t, tr.URL()+"/api/v1/preheat", &list)
	if len(list) != 1 || list[0].ID != j.ID {
		t.Fatalf("job list %+v", list)
	}
}

// A plain URL: `dfp2p preheat URL --peers 50%` warms the seed and two of
// four daemons; a later `dfp2p get` through another daemon reads nothing
// from the origin. A URL the origin does not have fails the job: exit 1,
// one line naming the origin's 404.
func TestPreheatURL(t *testing.T) {
	e := newEnv(t)
	f := e.file("preheat.bin", 24<<20)
	tr := e.tracker()
	ds := e.daemons(4, tr)
	time.Sleep(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url := e.origin.FileURL(f.Name) + "?X-Amz-Signature=abc"
	r := e.c.Preheat(ctx, tr, url, "--peers", "50%")
	t.Logf("dfp2p preheat URL --peers 50%%: exit %d in %s; %s", r.ExitCode, r.Elapsed.Round(time.Millisecond), strings.TrimSpace(r.Stderr))
	if r.ExitCode != 0 {
		t.Fatalf("preheat failed: exit %d: %s", r.ExitCode, r.Stderr)
	}
	j := readJob(t, tr, r.JobID)
	if j.State != preheat.StateSucceeded || len(j.Chosen) != 2 || len(j.Items) != 1 || j.Items[0].PeersDone != 2 {
		t.Fatalf("job %+v", j)
	}
	if strings.Contains(j.Target, "Signature") {
		t.Fatalf("job shows the query: %s", j.Target)
	}
	task := string(j.Items[0].Task)
	chosen, others := chosenProcs(t, j, ds)
	for _, d := range chosen {
		if !completeTasks(t, d)[task] {
			t.Fatalf("chosen %s does not hold the file", d.Name)
		}
	}
	sent := e.origin.BytesSent()
	if sent < f.Size || float64(sent) > 1.05*float64(f.Size) {
		t.Fatalf("the origin sent %d bytes for a %d-byte file during the preheat", sent, f.Size)
	}
	// The same URL with another signature is the same task: no origin read.
	out := e.outPath("after-preheat")
	if res := e.c.Get(ctx, e.origin.FileURL(f.Name)+"?X-Amz-Signature=other", out, "--daemon", others[0].URL()); res.ExitCode != 0 {
		t.Fatalf("get after preheat: exit %d: %s", res.ExitCode, res.Stderr)
	}
	if got := sha256File(t, out); got != f.SHA256 {
		t.Fatalf("sha256 %s, want %s", got, f.SHA256)
	}
	if d := e.origin.BytesSent() - sent; d != 0 {
		t.Fatalf("the get after the preheat read %d bytes from the origin, want 0", d)
	}

	r = e.c.Preheat(ctx, tr, e.origin.FileURL("missing.bin"))
	if r.ExitCode != 1 || !strings.Contains(r.Stderr, "404") || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 {
		t.Fatalf("missing file: exit %d, stderr %q", r.ExitCode, r.Stderr)
	}
}
