package setup

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestDockerMergeKeepsEverythingAndUndoes(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "daemon.json")
	orig := `{"log-driver": "journald", "registry-mirrors": ["https://mirror.gcr.io"],
  "features": {"buildkit": true}, "max-concurrent-downloads": 10}`
	write(t, p, orig)
	opts := DockerOptions{DaemonJSON: p}

	rep, err := Docker(opts)
	if err != nil {
		t.Fatal(err)
	}
	if c := rep.Changes[0]; c.Action != Updated || c.Backup != p+BackupSuffix {
		t.Fatalf("change = %+v", c)
	}
	if read(t, p+BackupSuffix) != orig {
		t.Error("backup differs from the original")
	}
	got := read(t, p)
	var m map[string]any
	if err := json.Unmarshal([]byte(got), &m); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(toStrings(m["registry-mirrors"]), []string{"http://127.0.0.1:65001", "https://mirror.gcr.io"}) {
		t.Errorf("mirrors = %v", m["registry-mirrors"])
	}
	if m["log-driver"] != "journald" || m["max-concurrent-downloads"] != 10.0 || m["features"].(map[string]any)["buildkit"] != true {
		t.Errorf("lost keys: %s", got)
	}
	if strings.Index(got, "log-driver") > strings.Index(got, "features") {
		t.Errorf("key order changed:\n%s", got)
	}
	if len(rep.Snippets) != 1 || !strings.Contains(rep.Snippets[0].Content, "HTTPS_PROXY=http://127.0.0.1:65001") ||
		!strings.Contains(strings.Join(rep.Notes, " "), "Docker Hub") {
		t.Errorf("report = %+v", rep)
	}

	// Twice changes nothing, also with the URL spelled differently.
	rep, err = Docker(DockerOptions{DaemonJSON: p, Proxy: "127.0.0.1:65001"})
	if err != nil || rep.Changes[0].Action != Unchanged || read(t, p) != got {
		t.Fatalf("second run: %+v %v", rep, err)
	}

	// Undo puts the original back byte for byte.
	rep, err = Docker(DockerOptions{DaemonJSON: p, Undo: true})
	if err != nil || rep.Changes[0].Action != Restored {
		t.Fatalf("undo: %+v %v", rep, err)
	}
	if read(t, p) != orig {
		t.Errorf("undo: %q", read(t, p))
	}
	if _, err := os.Stat(p + BackupSuffix); !os.IsNotExist(err) {
		t.Error("backup left behind")
	}

	// Changed by someone else since: undo takes out only the mirror and keeps the backup.
	if _, err := Docker(opts); err != nil {
		t.Fatal(err)
	}
	var fields []jsonField
	if fields, err = parseJSONObject([]byte(read(t, p))); err != nil {
		t.Fatal(err)
	}
	write(t, p, string(marshalJSONObject(setField(fields, "debug", []byte("true")))))
	rep, err = Docker(DockerOptions{DaemonJSON: p, Undo: true})
	if err != nil || rep.Changes[0].Action != Updated {
		t.Fatalf("undo after edit: %+v %v", rep, err)
	}
	m = nil
	_ = json.Unmarshal([]byte(read(t, p)), &m)
	if m["debug"] != true || !slices.Equal(toStrings(m["registry-mirrors"]), []string{"https://mirror.gcr.io"}) {
		t.Errorf("after undo: %v", m)
	}
	if read(t, p+BackupSuffix) != orig {
		t.Error("backup lost")
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func TestDockerNewFileAndDropin(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "docker", "daemon.json")
	dropDir := filepath.Join(dir, "docker.service.d")
	opts := DockerOptions{DaemonJSON: p, SystemdDropin: dropDir, Proxy: "http://127.0.0.1:7000"}
	rep, err := Docker(opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(rep.Changes); !slices.Equal(got, []Action{Created, Created}) {
		t.Fatalf("actions = %v", got)
	}
	if got := read(t, p); got != "{\n  \"registry-mirrors\": [\n    \"http://127.0.0.1:7000\"\n  ]\n}\n" {
		t.Errorf("daemon.json = %q", got)
	}
	drop := read(t, filepath.Join(dropDir, DockerDropinName))
	for _, want := range []string{ManagedHeader, "[Service]", `Environment="HTTP_PROXY=http://127.0.0.1:7000"`, `Environment="HTTPS_PROXY=http://127.0.0.1:7000"`, "NO_PROXY="} {
		if !strings.Contains(drop, want) {
			t.Errorf("drop-in lacks %q:\n%s", want, drop)
		}
	}
	if !strings.Contains(rep.Restart, "daemon-reload") || len(rep.Snippets) != 0 {
		t.Errorf("report = %+v", rep)
	}
	rep, err = Docker(opts)
	if err != nil || !slices.Equal(actions(rep.Changes), []Action{Unchanged, Unchanged}) {
		t.Fatalf("second run: %v %v", actions(rep.Changes), err)
	}
	rep, err = Docker(DockerOptions{DaemonJSON: p, SystemdDropin: dropDir, Proxy: "http://127.0.0.1:7000", Undo: true})
	if err != nil || !slices.Equal(actions(rep.Changes), []Action{Removed, Removed}) {
		t.Fatalf("undo: %v %v", actions(rep.Changes), err)
	}
	for _, f := range []string{p, filepath.Join(dropDir, DockerDropinName)} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s still there", f)
		}
	}
}

func TestDockerBadInput(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "daemon.json")
	for _, body := range []string{`{"a": `, `[1, 2]`, `{"registry-mirrors": "https://x"}`, `{} {}`} {
		write(t, p, body)
		_, err := Docker(DockerOptions{DaemonJSON: p})
		if err == nil || isOptionError(err) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: err = %v", body, err)
		}
		if read(t, p) != body {
			t.Errorf("%s: file changed", body)
		}
	}
	write(t, p, `{"proxies": {"http-proxy": "http://corp:3128"}}`)
	rep, err := Docker(DockerOptions{DaemonJSON: p, Strict: true})
	var pe *PreflightError
	if !errors.As(err, &pe) || len(rep.Problems) != 1 || rep.Problems[0].Check != "proxies-override" {
		t.Errorf("proxies: %v %+v", err, rep)
	}
	if _, err := Docker(DockerOptions{DaemonJSON: p, Proxy: "ftp://x"}); !isOptionError(err) {
		t.Errorf("bad proxy: %v", err)
	}
}
