package tracker

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/crypto"
	"github.com/dfp2p/dfp2p/crypto/member"
	"github.com/dfp2p/dfp2p/exchange"
	"github.com/dfp2p/dfp2p/internal/wire"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// countingOrigin serves data at /f and counts requests.
func countingOrigin(t *testing.T, data []byte) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		http.ServeContent(w, r, "f", time.Unix(0, 0), bytes.NewReader(data))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// A host with a valid identity but no membership certificate is refused by
// the tracker, cannot make it read the origin, and gets no piece bytes from
// the seed.
func TestOutsiderRefused(t *testing.T) {
	tr, _, _ := newTestTracker(t)
	data := bytes.Repeat([]byte("x"), 3<<20)
	origin, hits := countingOrigin(t, data)
	url := origin.URL + "/f"

	// A member makes the seed hold the file.
	_, mc := newPeer(t, tr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := mc.Call(ctx, &Request{Type: TypeRegister, URL: url}); err != nil {
		t.Fatal(err)
	}
	id, _ := content.TaskIDFor(url, "", "", content.DefaultQueryFilter)
	var cid0 string
	for cid0 == "" {
		s, err := mc.Call(ctx, &Request{Type: TypeSchedule, Task: id, Max: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range s.Assignments {
			cid0 = a.CID
		}
		time.Sleep(20 * time.Millisecond)
	}
	before := hits.Load()

	h, c := newOutsider(t, tr)
	octx, ocancel := context.WithTimeout(ctx, 15*time.Second)
	defer ocancel()
	other := origin.URL + "/other"
	if _, err := c.Call(octx, &Request{Type: TypeRegister, URL: other}); err == nil {
		t.Fatal("an outsider registered a task")
	}
	if _, err := c.Call(octx, &Request{Type: TypeSchedule, Task: id, Max: 8}); err == nil {
		t.Fatal("an outsider got a schedule")
	}
	if got := hits.Load(); got != before {
		t.Fatalf("an outsider made the seed read the origin (%d requests)", got-before)
	}
	// The seed's exchange refuses it too: 0 piece bytes.
	c0, err := cid.Decode(cid0)
	if err != nil {
		t.Fatal(err)
	}
	var got int64
	res := exchange.NewClient(h).Fetch(octx, tr.Host().ID(), []exchange.PieceRef{{Task: id, Index: 0, CID: c0}},
		func(exchange.PieceRef, io.Reader) error { return errors.New("an outsider received a piece") })
	for _, r := range res {
		got += r.Bytes
		if r.Err == nil {
			t.Fatal("an outsider fetched a piece")
		}
	}
	if got != 0 {
		t.Fatalf("an outsider received %d piece bytes", got)
	}
	if tr.members.Refused() == 0 {
		t.Fatal("no refusal counted")
	}
}

// A certificate that expired and one from another CA are refused; a member
// that is revoked is refused within seconds of `cluster revoke`.
func TestExpiredForeignRevoked(t *testing.T) {
	tr, origin, _ := newTestTracker(t)
	ca, err := crypto.LoadCA(filepath.Join(tr.cfg.DataDir, "cluster-ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := crypto.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := origin.URL + "/f"

	for name, issue := range map[string]func(p peer.ID) (*crypto.Certificate, error){
		"expired": func(p peer.ID) (*crypto.Certificate, error) {
			return ca.Issue(p, crypto.RolePeer, 24*time.Hour, time.Now().Add(-48*time.Hour))
		},
		"other CA": func(p peer.ID) (*crypto.Certificate, error) {
			return foreign.Issue(p, crypto.RolePeer, time.Hour, time.Now())
		},
	} {
		h, c := newOutsider(t, tr)
		cert, err := issue(h.ID())
		if err != nil {
			t.Fatal(err)
		}
		b, _ := cert.Encode()
		// Present it the way a member does, right after connecting.
		s, err := h.NewStream(ctx, tr.Host().ID(), member.ProtocolID)
		if err != nil {
			t.Fatal(err)
		}
		if err := wire.WriteMsg(s, map[string][]byte{"cert": b}); err != nil {
			t.Fatal(err)
		}
		_, _ = wire.ReadFrame(bufio.NewReader(s), 4096)
		s.Close()
		if _, err := c.Call(ctx, &Request{Type: TypeRegister, URL: url}); err == nil {
			t.Fatalf("%s certificate: the tracker served the peer", name)
		}
	}

	// A member is served, revoked, then refused.
	_, mc := newPeer(t, tr)
	if _, err := mc.Call(ctx, &Request{Type: TypeRegister, URL: url}); err != nil {
		t.Fatalf("member before revocation: %v", err)
	}
	if _, err := Revoke(tr.cfg.DataDir, ca, mc.h.ID()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if rl := tr.members.Revocations(); rl != nil && rl.Has(mc.h.ID()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the tracker did not load the revocation list within 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := mc.Call(ctx, &Request{Type: TypeRegister, URL: url}); err == nil {
		t.Fatal("a revoked member is still served")
	}
}

// The manifest a closed cluster's tracker sends is signed; the signature
// verifies against the CA, and any change to the manifest is refused.
func TestSignedManifest(t *testing.T) {
	tr, origin, _ := newTestTracker(t)
	_, c := newPeer(t, tr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	url := origin.URL + "/f"
	reg, err := c.Call(ctx, &Request{Type: TypeRegister, URL: url})
	if err != nil {
		t.Fatal(err)
	}
	var resp *Response
	for resp == nil || len(resp.Manifest) == 0 {
		if resp, err = c.Call(ctx, &Request{Type: TypeManifest, Task: reg.Task}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	tok, _ := crypto.ParseJoinToken(tr.JoinToken())
	sm, err := crypto.DecodeSignedManifest(resp.Signed)
	if err != nil {
		t.Fatal(err)
	}
	m, err := sm.Verify(tok.CA, time.Now())
	if err != nil || !bytes.Equal(sm.Manifest, resp.Manifest) || m.TaskID != reg.Task {
		t.Fatalf("signed manifest: %v", err)
	}
	sm.Manifest = bytes.Replace(sm.Manifest, []byte(`"length":`), []byte(`"length":1`), 1)
	if _, err := sm.Verify(tok.CA, time.Now()); err == nil {
		t.Fatal("a tampered manifest verified")
	}
}

// API tokens: reads from loopback need none; admin actions need a token
// with the admin scope (401 without or with a bad one, 403 with too narrow
// a scope).
func TestAPITokens(t *testing.T) {
	tr, _, _ := newTestTracker(t)
	ca, err := crypto.LoadCA(filepath.Join(tr.cfg.DataDir, "cluster-ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	foreign, _ := crypto.NewCA()
	mint := func(ca *crypto.CA, s ...crypto.Scope) string {
		tok, err := ca.IssueToken(s, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	api := "http://" + tr.APIAddr()
	_, outsider := newOutsider(t, tr)
	body := `{"peer":"` + outsider.h.ID().String() + `"}`
	for _, tc := range []struct {
		method, path, token, body string
		want                      int
	}{
		{"GET", "/api/v1/tasks", "", "", 200},
		{"GET", "/metrics", "", "", 200},
		{"GET", "/debug/pprof/", "", "", 401},
		{"POST", "/api/v1/cluster/revoke", "", body, 401},
		{"POST", "/api/v1/cluster/revoke", "garbage", body, 401},
		{"POST", "/api/v1/cluster/revoke", mint(foreign, crypto.ScopeAdmin), body, 401},
		{"POST", "/api/v1/cluster/revoke", mint(ca, crypto.ScopeRead), body, 403},
		{"POST", "/api/v1/cluster/revoke", mint(ca, crypto.ScopePreheat), body, 403},
		{"GET", "/debug/pprof/", mint(ca, crypto.ScopeRead), "", 403},
		{"GET", "/debug/pprof/", mint(ca, crypto.ScopeAdmin), "", 200},
		{"POST", "/api/v1/cluster/revoke", mint(ca, crypto.ScopeAdmin), body, 200},
	} {
		req, _ := http.NewRequest(tc.method, api+tc.path, strings.NewReader(tc.body))
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s (token %.20q): %d, want %d", tc.method, tc.path, tc.token, resp.StatusCode, tc.want)
		}
	}
	if rl := tr.members.Revocations(); rl == nil || !rl.Has(outsider.h.ID()) {
		t.Fatal("the admin's revocation did not apply")
	}
}
