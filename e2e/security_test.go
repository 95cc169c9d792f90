package e2e

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/daemon"
	"github.com/dfp2p/dfp2p/e2e/cluster"
)

// A closed cluster with real processes: a daemon that never joined (valid
// identity, no certificate) gets no piece bytes and cannot make the tracker
// read the origin; a member works until `dfp2p cluster revoke`, after which
// the tracker serves it no more.
func TestClosedCluster(t *testing.T) {
	e := newEnv(t)
	const size = 8 << 20
	f := e.file("closed.bin", size)
	url := e.origin.FileURL(f.Name)
	task, _ := content.TaskIDFor(url, "", "", content.DefaultQueryFilter)
	tr := e.tracker()
	if tr.JoinToken() == "" {
		t.Fatal("the tracker wrote no join token: clusters must be closed by default")
	}
	member := e.daemons(1, tr)[0]
	outsider, err := e.c.StartDaemon(nil, "--tracker", tr.Addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	get := func(d *cluster.Proc, out string) daemon.Stats {
		t.Helper()
		if r := e.c.Get(ctx, url, e.outPath(out), "--daemon", d.URL()); r.ExitCode != 0 {
			t.Fatalf("get on %s: exit %d: %s", d.Name, r.ExitCode, strings.TrimSpace(r.Stderr))
		}
		if sha256File(t, e.outPath(out)) != f.SHA256 {
			t.Fatalf("%s: output corrupt", d.Name)
		}
		var st daemon.TaskStatus
		getJSON(t, d.URL()+"/api/v1/tasks/"+string(task), &st)
		if st.Stats == nil {
			t.Fatalf("%s: no statistics", d.Name)
		}
		return *st.Stats
	}

	// The outsider goes first: the tracker must not fetch for it.
	st := get(outsider, "outsider")
	t.Logf("outsider: %+v", st)
	if st.SeedBytes != 0 || st.PeerBytes != 0 {
		t.Fatalf("an outsider received piece bytes from the cluster: %+v", st)
	}
	if n := metric(t, tr, "dfp2p_download_bytes_total{source=\"origin\"}"); n != 0 {
		t.Fatalf("an outsider made the tracker read %v bytes from the origin", n)
	}
	if n := metric(t, tr, "dfp2p_member_refused_streams_total"); n == 0 {
		t.Fatal("the tracker counted no refused streams")
	}

	// The member is served by the seed.
	if st := get(member, "member"); st.SeedBytes != size || st.OriginBytes != 0 {
		t.Fatalf("member: %+v, want every byte from the seed", st)
	}

	// Revoke it with the CLI; the tracker refuses it within seconds, so its
	// next download of a new file cannot use the seed.
	peerID := strings.TrimPrefix(member.Addrs[0][strings.LastIndex(member.Addrs[0], "/p2p/"):], "/p2p/")
	out, err := exec.CommandContext(ctx, bin, "cluster", "revoke", peerID, "--data-dir", tr.DataDir).CombinedOutput()
	if err != nil {
		t.Fatalf("cluster revoke: %v: %s", err, out)
	}
	t.Logf("%s", strings.TrimSpace(string(out)))
	f2 := e.file("after-revoke.bin", size/2)
	url2 := e.origin.FileURL(f2.Name)
	before := metric(t, tr, "dfp2p_download_bytes_total{source=\"origin\"}")
	time.Sleep(2 * time.Second) // the tracker reloads the list every second
	if r := e.c.Get(ctx, url2, e.outPath("revoked"), "--daemon", member.URL()); r.ExitCode != 0 {
		t.Fatalf("get after revocation: exit %d: %s", r.ExitCode, strings.TrimSpace(r.Stderr))
	}
	if got := metric(t, tr, "dfp2p_download_bytes_total{source=\"origin\"}"); got != before {
		t.Fatalf("the tracker fetched for a revoked member (%v -> %v origin bytes)", before, got)
	}
}
