package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/daemon"
	"github.com/dfp2p/dfp2p/e2e/cluster"
	"github.com/dfp2p/dfp2p/tracker"
)

// Two trackers share tasks by rendezvous hashing. Killing the one that owns a
// task mid-download leaves every download completing correctly through the
// other.
func TestTrackerFailover(t *testing.T) {
	e := newEnv(t)
	const size = 64 << 20
	f := e.file("failover.bin", size)
	e.origin.SetDelay(20 * time.Millisecond)
	trs := []*cluster.Proc{e.tracker(), e.tracker()}
	ds := e.daemons(3, trs...)
	url := e.origin.FileURL(f.Name)
	task, _ := content.TaskIDFor(url, "", "", content.DefaultQueryFilter)

	var ids []peer.ID
	byID := map[peer.ID]*cluster.Proc{}
	for _, tr := range trs {
		ais, err := tracker.ParseAddrs(tr.Addrs[:1])
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ais[0].ID)
		byID[ais[0].ID] = tr
	}
	owner := byID[tracker.Rank(task, ids)[0]]

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	wait := e.startGets(ctx, url, "fo", ds)
	deadline := time.Now().Add(time.Minute)
	for {
		var st daemon.TaskStatus
		if getJSON(t, ds[0].URL()+"/api/v1/tasks/"+string(task), &st) == 200 && st.Pieces > 0 && st.Held >= st.Pieces/4 {
			t.Logf("killing the owning tracker %s with %d/%d pieces on %s", owner.Name, st.Held, st.Pieces, ds[0].Name)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("download never got going")
		}
		time.Sleep(20 * time.Millisecond)
	}
	owner.Kill()
	results := wait()
	for i, r := range results {
		t.Logf("%s: exit %d after %s", ds[i].Name, r.ExitCode, r.Elapsed)
		if r.ExitCode != 0 {
			t.Fatalf("get on %s failed after the tracker died: %s", ds[i].Name, strings.TrimSpace(r.Stderr))
		}
		if got := sha256File(t, e.outPath(fmt.Sprintf("fo%d", i))); got != f.SHA256 {
			t.Fatalf("output %d corrupt", i)
		}
	}
	// No daemon fell back to the origin: the swarm carried on under the
	// surviving tracker.
	for _, d := range ds {
		var st daemon.TaskStatus
		getJSON(t, d.URL()+"/api/v1/tasks/"+string(task), &st)
		if st.Stats == nil || st.Stats.OriginBytes != 0 {
			t.Fatalf("%s read the origin itself (%+v)", d.Name, st.Stats)
		}
	}
	// Both seeds read the origin: the dead one up to the whole file plus the
	// ranges it had in flight (4 pieces), the new one the whole file again.
	sent := e.origin.BytesSent()
	t.Logf("origin sent %.2fx the file", float64(sent)/size)
	if limit := 2*size + 4*content.PieceSize(size) + size/50; sent > limit {
		t.Fatalf("origin sent %d bytes (%.2fx the file), limit %d", sent, float64(sent)/size, limit)
	}
}
