package daemon

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/crypto"
	"github.com/dfp2p/dfp2p/tracker"
)

// call sends method path with body (JSON or nothing) and token to d's API and
// returns the status and the body.
func call(t *testing.T, d *Daemon, method, path, body, token string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+d.APIAddr()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decoding %q: %v", b, err)
	}
	return v
}

// verifyEvents splits an NDJSON verify answer into task results and the
// summary (which must be the last line).
func verifyEvents(t *testing.T, b []byte) ([]VerifyTask, VerifySummary) {
	t.Helper()
	var tasks []VerifyTask
	var sum *VerifySummary
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if sum != nil {
			t.Fatalf("line after the summary: %s", sc.Text())
		}
		ev := decode[VerifyEvent](t, sc.Bytes())
		switch {
		case ev.Error != "":
			t.Fatalf("verify error: %s", ev.Error)
		case ev.Task != nil:
			tasks = append(tasks, *ev.Task)
		case ev.Summary != nil:
			sum = ev.Summary
		}
	}
	if sum == nil {
		t.Fatalf("no summary in %q", b)
	}
	return tasks, *sum
}

func TestCacheAPIPinAndGC(t *testing.T) {
	data := testData(3<<20 + 5)
	origin := testOrigin(t, data)
	d := startDaemon(t, Config{TaskTTL: time.Millisecond, GCInterval: -1})
	a, b := origin.URL+"/f", origin.URL+"/f?x=1"
	readAll(t, d, a)
	readAll(t, d, b)
	ida, _ := content.TaskIDFor(a, "", "", content.DefaultQueryFilter)
	idb, _ := content.TaskIDFor(b, "", "", content.DefaultQueryFilter)

	// Lookup by URL derives the ID as a fetch does (signature parameters
	// are ignored) and shows size and access time.
	st, body := call(t, d, "GET", "/api/v1/tasks?url="+url.QueryEscape(a+"?X-Amz-Signature=zz"), "", "")
	got := decode[[]TaskStatus](t, body)
	if st != 200 || len(got) != 1 || got[0].ID != ida || got[0].Bytes != int64(len(data)) || got[0].LastAccess.IsZero() || !got[0].Complete {
		t.Fatalf("lookup: %d %s", st, body)
	}
	if st, body := call(t, d, "GET", "/api/v1/tasks?url="+url.QueryEscape(origin.URL+"/other"), "", ""); st != 200 || string(bytes.TrimSpace(body)) != "[]" {
		t.Fatalf("lookup of an uncached URL: %d %s", st, body)
	}
	if st, _ := call(t, d, "GET", "/api/v1/tasks?url=ftp://x/y", "", ""); st != 400 {
		t.Fatalf("lookup of a bad URL: %d", st)
	}

	if st, body := call(t, d, "PUT", "/api/v1/tasks/"+string(ida)+"/pin", "", ""); st != 200 || !decode[TaskStatus](t, body).Pinned {
		t.Fatalf("pin: %d %s", st, body)
	}
	if st, _ := call(t, d, "PUT", "/api/v1/tasks/"+strings.Repeat("0", 64)+"/pin", "", ""); st != 404 {
		t.Fatalf("pin of an unknown task: %d", st)
	}
	time.Sleep(20 * time.Millisecond) // past the 1 ms TTL

	st, body = call(t, d, "POST", "/api/v1/gc", `{"dry_run":true}`, "")
	dry := decode[GCResult](t, body)
	if st != 200 || !dry.DryRun || len(dry.Removed) != 1 || dry.Removed[0].ID != idb || dry.Removed[0].Reason != "ttl" ||
		dry.FreedBytes != int64(len(data)) || dry.Removed[0].URL != origin.URL+"/f?<redacted>" {
		t.Fatalf("dry run: %d %s", st, body)
	}
	if tasks, _ := d.Store().Tasks(); len(tasks) != 2 {
		t.Fatalf("dry run removed tasks: %d left", len(tasks))
	}
	st, body = call(t, d, "POST", "/api/v1/gc", `{}`, "")
	res := decode[GCResult](t, body)
	if st != 200 || res.DryRun || len(res.Removed) != 1 || res.Removed[0].ID != idb || res.FreedBytes != int64(len(data)) {
		t.Fatalf("gc: %d %s", st, body)
	}
	if tasks, _ := d.Store().Tasks(); len(tasks) != 1 || tasks[0].ID != ida {
		t.Fatalf("after gc: %+v", tasks)
	}
	// Unpinned, the other one goes too.
	if st, body := call(t, d, "DELETE", "/api/v1/tasks/"+string(ida)+"/pin", "", ""); st != 200 || decode[TaskStatus](t, body).Pinned {
		t.Fatalf("unpin: %d %s", st, body)
	}
	if st, body := call(t, d, "POST", "/api/v1/gc", "", ""); st != 200 || len(decode[GCResult](t, body).Removed) != 1 {
		t.Fatalf("gc after unpin: %d %s", st, body)
	}
	if st, _ := call(t, d, "POST", "/api/v1/gc", `{"dry_run":"yes"}`, ""); st != 400 {
		t.Fatalf("bad gc body: %d", st)
	}
}

// corruptPiece overwrites piece idx of task id in d's store with the same
// number of other bytes and returns its path.
func corruptPiece(t *testing.T, d *Daemon, id content.TaskID, idx int) string {
	t.Helper()
	c, ok := d.Store().PieceCID(id, idx)
	if !ok {
		t.Fatalf("piece %d not held", idx)
	}
	p := filepath.Join(d.cfg.DataDir, "tasks", string(id), pieceNameOf(idx, c.String()))
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, bytes.Repeat([]byte{0xAB}, int(fi.Size())), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func pieceNameOf(idx int, c string) string { return strconv.Itoa(idx) + "-" + c }

func TestCacheAPIVerifyAndRepair(t *testing.T) {
	for _, enc := range []bool{false, true} {
		name := "plain"
		if enc {
			name = "encrypted"
		}
		t.Run(name, func(t *testing.T) {
			data := testData(7<<20 + 11)
			origin := testOrigin(t, data)
			cfg := Config{GCInterval: -1}
			if enc {
				cfg.EncryptKey = bytes.Repeat([]byte{7}, 32)
			}
			d := startDaemon(t, cfg)
			u := origin.URL + "/f"
			readAll(t, d, u)
			id, _ := content.TaskIDFor(u, "", "", content.DefaultQueryFilter)
			corruptPiece(t, d, id, 1)

			st, body := call(t, d, "POST", "/api/v1/cache/verify", `{}`, "")
			if st != 200 {
				t.Fatalf("verify: %d %s", st, body)
			}
			tasks, sum := verifyEvents(t, body)
			if len(tasks) != 1 || tasks[0].ID != id || len(tasks[0].Bad) != 1 || tasks[0].Bad[0] != 1 || tasks[0].Dropped != 1 ||
				tasks[0].Missing != 1 || tasks[0].Complete || tasks[0].Checked != 4 {
				t.Fatalf("verify tasks: %s", body)
			}
			if sum.Checked != 4 || sum.Bad != 1 || sum.Dropped != 1 || sum.Refetched != 0 || sum.Incomplete != 1 || sum.Failed != 0 {
				t.Fatalf("verify summary: %+v", sum)
			}
			// Repair: the piece dropped by the run before is fetched again.
			st, body = call(t, d, "POST", "/api/v1/cache/verify", `{"repair":true}`, "")
			tasks, sum = verifyEvents(t, body)
			if st != 200 || len(tasks) != 1 || tasks[0].Refetched != 1 || !tasks[0].Complete || sum.Refetched != 1 || sum.Incomplete != 0 || sum.Bad != 0 {
				t.Fatalf("repair: %d %s", st, body)
			}
			got, _ := readAll(t, d, u)
			if !bytes.Equal(got, data) {
				t.Fatal("bytes differ after repair")
			}
			st, body = call(t, d, "POST", "/api/v1/cache/verify", `{"task":"`+string(id)+`"}`, "")
			if _, sum := verifyEvents(t, body); st != 200 || sum.Bad != 0 || sum.Checked != 4 || sum.Incomplete != 0 {
				t.Fatalf("verify after repair: %d %s", st, body)
			}
			if st, _ := call(t, d, "POST", "/api/v1/cache/verify", `{"task":"`+strings.Repeat("1", 64)+`"}`, ""); st != 404 {
				t.Fatalf("verify of an unknown task: %d", st)
			}
			if st, _ := call(t, d, "POST", "/api/v1/cache/verify", `{"task":"nope"}`, ""); st != 400 {
				t.Fatalf("verify of a bad task id: %d", st)
			}
		})
	}
}

// In a closed cluster, loopback callers without a token may look but not
// change: pinning needs preheat, GC and verify need admin.
func TestCacheAPIScopes(t *testing.T) {
	trDir := t.TempDir()
	tr, err := tracker.New(tracker.Config{DataDir: trDir, Listen: loopback})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	d := newMember(t, tr)
	ca, err := crypto.LoadCA(filepath.Join(trDir, crypto.CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	mint := func(s crypto.Scope) string {
		tok, err := ca.IssueToken([]crypto.Scope{s}, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	local, err := os.ReadFile(filepath.Join(d.cfg.DataDir, "api-token"))
	if err != nil {
		t.Fatal(err)
	}
	id := strings.Repeat("a", 64)
	read, preheat, admin := mint(crypto.ScopeRead), mint(crypto.ScopePreheat), mint(crypto.ScopeAdmin)
	cases := []struct {
		method, path, body, token string
		want                      int
	}{
		{"GET", "/api/v1/tasks?url=http://x/y", "", "", 200},
		{"PUT", "/api/v1/tasks/" + id + "/pin", "", "", 401},
		{"PUT", "/api/v1/tasks/" + id + "/pin", "", read, 403},
		{"PUT", "/api/v1/tasks/" + id + "/pin", "", preheat, 404}, // allowed; no such task
		{"DELETE", "/api/v1/tasks/" + id + "/pin", "", preheat, 404},
		{"POST", "/api/v1/gc", `{"dry_run":true}`, "", 401},
		{"POST", "/api/v1/gc", `{"dry_run":true}`, preheat, 403},
		{"POST", "/api/v1/gc", `{"dry_run":true}`, admin, 200},
		{"POST", "/api/v1/gc", `{"dry_run":true}`, strings.TrimSpace(string(local)), 200},
		{"POST", "/api/v1/cache/verify", `{}`, "", 401},
		{"POST", "/api/v1/cache/verify", `{}`, preheat, 403},
		{"POST", "/api/v1/cache/verify", `{}`, admin, 200},
	}
	for _, c := range cases {
		if st, body := call(t, d, c.method, c.path, c.body, c.token); st != c.want {
			t.Errorf("%s %s (token %.10q): %d %s, want %d", c.method, c.path, c.token, st, body, c.want)
		}
	}
}
