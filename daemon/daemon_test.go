package daemon

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/crypto"
	"github.com/dfp2p/dfp2p/internal/httpapi"
	"github.com/dfp2p/dfp2p/tracker"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreTopFunction("github.com/libp2p/go-libp2p/p2p/transport/quicreuse.(*reuse).gc"),
		goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"))
}

var loopback = []string{"/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0"}

func testOrigin(t *testing.T, data []byte) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/f" {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "f", time.Unix(0, 0), bytes.NewReader(data))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func testData(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/4096)
	}
	return b
}

func newDaemon(t *testing.T, trackers []string) *Daemon {
	t.Helper()
	return startDaemon(t, Config{Trackers: trackers})
}

// newTracker is a tracker on loopback with its own closed cluster, closed
// when the test ends (after the daemons started later).
func newTracker(t *testing.T) *tracker.Tracker {
	t.Helper()
	tr, err := tracker.New(tracker.Config{DataDir: t.TempDir(), Listen: loopback})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// newMember is a daemon that joins tr's closed cluster with its join token.
func newMember(t *testing.T, tr *tracker.Tracker) *Daemon {
	t.Helper()
	tok, err := crypto.ParseJoinToken(tr.JoinToken())
	if err != nil {
		t.Fatal(err)
	}
	return startDaemon(t, Config{Join: tok})
}

func startDaemon(t *testing.T, cfg Config) *Daemon {
	t.Helper()
	cfg.DataDir, cfg.Listen, cfg.API, cfg.AnnounceInterval = t.TempDir(), loopback, "127.0.0.1:0", 200*time.Millisecond
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func readAll(t *testing.T, d *Daemon, url string) ([]byte, *Stream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := d.Open(ctx, Request{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	return b, s
}

func TestDownloadThroughTracker(t *testing.T) {
	data := testData(9<<20 + 123)
	origin := testOrigin(t, data)
	tr := newTracker(t)
	a := newMember(t, tr)
	b := newMember(t, tr)
	url := origin.URL + "/f"
	sum := sha256.Sum256(data)

	got, s := readAll(t, a, url)
	if !bytes.Equal(got, data) || s.SHA256() != hex.EncodeToString(sum[:]) {
		t.Fatal("daemon a: wrong bytes or sum")
	}
	if st := s.Stats(); st.SeedBytes == 0 || st.OriginBytes != 0 {
		t.Fatalf("daemon a stats %+v: want bytes from the seed only", st)
	}
	got, s = readAll(t, b, url)
	if !bytes.Equal(got, data) {
		t.Fatal("daemon b: wrong bytes")
	}
	if st := s.Stats(); st.PeerBytes == 0 {
		t.Fatalf("daemon b stats %+v: want bytes from daemon a", st)
	}
	// A second read is served from the store.
	got, _ = readAll(t, a, url)
	if !bytes.Equal(got, data) {
		t.Fatal("re-read: wrong bytes")
	}
}

func TestOriginOnly(t *testing.T) {
	data := testData(5<<20 + 1)
	origin := testOrigin(t, data)
	d := newDaemon(t, nil)
	got, s := readAll(t, d, origin.URL+"/f")
	if !bytes.Equal(got, data) || s.Stats().OriginBytes < int64(len(data)) {
		t.Fatalf("origin-only download: %d bytes, stats %+v", len(got), s.Stats())
	}
}

func TestTrackerDownFallsBackToOrigin(t *testing.T) {
	data := testData(3 << 20)
	origin := testOrigin(t, data)
	// A tracker address nobody listens on.
	tr, err := tracker.New(tracker.Config{DataDir: t.TempDir(), Listen: loopback})
	if err != nil {
		t.Fatal(err)
	}
	addrs := tr.Addrs()
	tr.Close()
	d := newDaemon(t, addrs)
	got, s := readAll(t, d, origin.URL+"/f")
	if !bytes.Equal(got, data) || s.Stats().OriginBytes == 0 {
		t.Fatal("fallback to origin failed")
	}
}

func TestAPIErrors(t *testing.T) {
	origin := testOrigin(t, testData(1000))
	d := newDaemon(t, nil)
	api := "http://" + d.APIAddr()
	post := func(body string) (int, httpapi.ErrorBody) {
		resp, err := http.Post(api+"/api/v1/fetch", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var eb httpapi.ErrorBody
		json.NewDecoder(resp.Body).Decode(&eb)
		return resp.StatusCode, eb
	}
	for body, want := range map[string]int{
		`not json`:                                     400,
		`{"url":"ftp://x/y"}`:                          400,
		`{"url":"http://x/y","bogus":1}`:               400,
		`{"url":"http://x/y","digest":"md5:1"}`:        400,
		`{"url":"` + origin.URL + `/missing"}`:         404,
		`{"url":"` + strings.Repeat("a", 2<<20) + `"}`: 400,
	} {
		code, eb := post(body)
		if code != want || eb.Error == "" || strings.Contains(eb.Error, "\n") {
			t.Errorf("%.40s: %d %q, want %d and a one-line error", body, code, eb.Error, want)
		}
	}
	for path, want := range map[string]int{
		"/healthz":             200,
		"/api/v1/tasks":        200,
		"/api/v1/tasks/nothex": 400,
		"/api/v1/tasks/" + strings.Repeat("a", 64): 404,
		"/metrics": 200,
	} {
		resp, err := http.Get(api + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

// A daemon that encrypts its cache at rest keeps no plaintext on disk and
// still serves its pieces to other members.
func TestEncryptedCache(t *testing.T) {
	data := testData(5<<20 + 17)
	origin := testOrigin(t, data)
	tr := newTracker(t)
	tok, err := crypto.ParseJoinToken(tr.JoinToken())
	if err != nil {
		t.Fatal(err)
	}
	key := bytes.Repeat([]byte{0x5a}, 32)
	a := startDaemon(t, Config{Join: tok, EncryptKey: key, EncryptCipher: "xchacha20-poly1305"})
	b := newMember(t, tr)
	url := origin.URL + "/f"
	if got, _ := readAll(t, a, url); !bytes.Equal(got, data) {
		t.Fatal("encrypting daemon: wrong bytes")
	}
	sample := data[1<<20 : 1<<20+64]
	err = filepath.WalkDir(filepath.Join(a.cfg.DataDir, "tasks"), func(path string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err == nil && bytes.Contains(b, sample) {
			t.Errorf("plaintext found in %s", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// b gets the file from the seed and from a, whose pieces decrypt on the
	// way out.
	got, s := readAll(t, b, url)
	if !bytes.Equal(got, data) {
		t.Fatal("member b: wrong bytes")
	}
	t.Logf("member b: %+v", s.Stats())
}

// A register answer with an absurd length (a hostile or broken tracker) is
// an error for that download, not a crash.
func TestHostileGeometry(t *testing.T) {
	d := newDaemon(t, nil)
	if _, err := d.st.EnsureTask(content.TaskID(strings.Repeat("a", 64)), "http://x/", math.MaxInt64, 262144); err == nil {
		t.Fatal("absurd geometry accepted")
	}
}

// In a closed cluster the daemon accepts only a manifest whose seed
// signature verifies against the CA: an unsigned, altered or foreign-signed
// manifest is refused before any CID in it is used.
func TestManifestSignatureChecked(t *testing.T) {
	data := testData(3<<20 + 5)
	origin := testOrigin(t, data)
	tr := newTracker(t)
	d := newMember(t, tr)
	readAll(t, d, origin.URL+"/f") // a real signed manifest reaches the store
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := d.tc.Call(ctx, &tracker.Request{Type: tracker.TypeManifest, Task: mustTask(t, origin.URL+"/f")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.checkManifest(resp); err != nil {
		t.Fatalf("genuine manifest refused: %v", err)
	}
	unsigned := *resp
	unsigned.Signed = nil
	altered := *resp
	altered.Manifest = bytes.Replace(resp.Manifest, []byte(`"length":`), []byte(`"length":9`), 1)
	sm, _ := crypto.DecodeSignedManifest(resp.Signed)
	sm.Manifest = altered.Manifest
	forgedBytes, _ := sm.Encode()
	forged := *resp
	forged.Manifest, forged.Signed = altered.Manifest, forgedBytes
	for name, r := range map[string]*tracker.Response{"unsigned": &unsigned, "altered": &altered, "re-wrapped": &forged} {
		if _, err := d.checkManifest(r); err == nil {
			t.Errorf("%s manifest accepted", name)
		}
	}
}

func mustTask(t *testing.T, url string) content.TaskID {
	id, err := content.TaskIDFor(url, "", "", content.DefaultQueryFilter)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
