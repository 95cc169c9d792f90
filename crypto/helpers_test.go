package crypto

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	lpcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dfp2p/dfp2p/content"
)

// t0 is the fixed "now" of the tests.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newCA(t testing.TB) *CA {
	t.Helper()
	ca, err := NewCA()
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func newKey(t testing.TB) (lpcrypto.PrivKey, peer.ID) {
	t.Helper()
	sk, _, err := lpcrypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	return sk, id
}

func newPeer(t testing.TB) peer.ID {
	_, id := newKey(t)
	return id
}

func issue(t testing.TB, ca *CA, p peer.ID, role Role) *Certificate {
	t.Helper()
	c, err := ca.Issue(p, role, time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func encode(t testing.TB, v interface{ Encode() ([]byte, error) }) []byte {
	t.Helper()
	b, err := v.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testManifest returns a valid encoded content.Manifest of two pieces.
func testManifest(t testing.TB) []byte {
	t.Helper()
	data := bytes.Repeat([]byte{7}, int(content.MinPieceSize)+10)
	m := &content.Manifest{
		Version:   content.ManifestVersion,
		TaskID:    content.TaskID(strings.Repeat("c", 64)),
		Length:    int64(len(data)),
		PieceSize: content.MinPieceSize,
		SHA256:    strings.Repeat("d", 64),
	}
	for i := range content.NumPieces(m.Length, m.PieceSize) {
		off, n := content.PieceRange(m.Length, m.PieceSize, i)
		m.Pieces = append(m.Pieces, content.PieceCID(data[off:off+n]))
	}
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wantErr fails unless err wraps kind.
func wantErr(t testing.TB, err, kind error) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", kind)
	}
	if !errors.Is(err, kind) {
		t.Fatalf("error %q does not wrap %q", err, kind)
	}
	if !strings.HasPrefix(err.Error(), "crypto: ") {
		t.Errorf("error %q lacks the package prefix", err)
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x01
	return c
}

type peerID = peer.ID

func signWith(ca *CA, msg []byte) []byte { return ed25519.Sign(ca.priv, msg) }
