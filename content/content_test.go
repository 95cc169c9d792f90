package content

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
)

func TestPieceSizeRule(t *testing.T) {
	for _, c := range []struct{ length, want int64 }{
		{-1, MaxPieceSize},
		{0, MinPieceSize},
		{1, MinPieceSize},
		{512 << 20, MinPieceSize},
		{512<<20 + 1, 4 << 20},
		{1 << 30, 4 << 20},
		{4 << 30, 16 << 20},
		{1 << 40, MaxPieceSize},
	} {
		if got := PieceSize(c.length); got != c.want {
			t.Errorf("PieceSize(%d) = %d, want %d", c.length, got, c.want)
		}
	}
}

func TestPieceRange(t *testing.T) {
	length, ps := int64(10<<20+5), int64(4<<20)
	if n := NumPieces(length, ps); n != 3 {
		t.Fatalf("NumPieces = %d", n)
	}
	off, n := PieceRange(length, ps, 2)
	if off != 8<<20 || n != 2<<20+5 {
		t.Fatalf("last piece = %d+%d", off, n)
	}
	// A hostile length near the int64 maximum must not overflow.
	if n := NumPieces(math.MaxInt64, MinValidPieceSize); n <= MaxPieces {
		t.Fatalf("NumPieces(MaxInt64) = %d, want a count above MaxPieces", n)
	}
	if NumPieces(0, ps) != 0 {
		t.Fatal("empty file has pieces")
	}
}

func TestNormalizeURL(t *testing.T) {
	a, err := NormalizeURL("HTTP://Example.COM:80/a/./b/../c?b=2&a=1&X-Amz-Signature=s&x-amz-date=d#frag", DefaultQueryFilter)
	if err != nil {
		t.Fatal(err)
	}
	if a != "http://example.com/a/c?a=1&b=2" {
		t.Fatalf("got %q", a)
	}
	id1, _ := TaskIDFor("https://h/f?X-Goog-Signature=1", "", "", DefaultQueryFilter)
	id2, _ := TaskIDFor("https://h/f?X-Goog-Signature=2", "", "", DefaultQueryFilter)
	id3, _ := TaskIDFor("https://h/f", "other-tag", "", DefaultQueryFilter)
	if id1 != id2 || id1 == id3 || !id1.Valid() {
		t.Fatalf("ids %s %s %s", id1, id2, id3)
	}
	d := "sha256:" + strings.Repeat("AB", 32)
	id4, err := TaskIDFor("https://anything/", "", d, nil)
	if err != nil || string(id4) != strings.Repeat("ab", 32) {
		t.Fatalf("digest id %s %v", id4, err)
	}
	for _, bad := range []string{"ftp://h/f", "h/f", "http:///f", "http://user:pw@h/f", "::"} {
		if _, err := TaskIDFor(bad, "", "", nil); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, bad := range []string{"sha256:zz", "md5:" + strings.Repeat("a", 64), "sha256:" + strings.Repeat("a", 63)} {
		if _, err := ParseDigest(bad); err == nil {
			t.Errorf("digest %q accepted", bad)
		}
	}
	if r := RedactURL("https://u:p@h/f?sig=secret#x"); strings.Contains(r, "secret") || strings.Contains(r, "p@") {
		t.Errorf("RedactURL leaks: %s", r)
	}
}

func testManifest() *Manifest {
	data := bytes.Repeat([]byte{7}, 2<<20+10)
	m := &Manifest{Version: ManifestVersion, TaskID: TaskID(strings.Repeat("c", 64)), Length: int64(len(data)), PieceSize: MinPieceSize}
	for i := 0; i < NumPieces(m.Length, m.PieceSize); i++ {
		off, n := PieceRange(m.Length, m.PieceSize, i)
		m.Pieces = append(m.Pieces, PieceCID(data[off:off+n]))
	}
	m.SHA256 = strings.Repeat("d", 64)
	return m
}

func TestManifestRoundTrip(t *testing.T) {
	m := testManifest()
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	root, _ := m.CID()
	m2, err := DecodeManifestWithRoot(b, root)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := m2.Encode()
	if !bytes.Equal(b, b2) {
		t.Fatal("encoding is not canonical")
	}
	tampered := bytes.Replace(b, []byte(`"length":`), []byte(`"length":1`), 1)
	if _, err := DecodeManifestWithRoot(tampered, root); err == nil {
		t.Fatal("tampered manifest accepted")
	}
}

func TestManifestValidate(t *testing.T) {
	bad := []func(*Manifest){
		func(m *Manifest) { m.Version = 2 },
		func(m *Manifest) { m.TaskID = "x" },
		func(m *Manifest) { m.Length = -1 },
		func(m *Manifest) { m.PieceSize = 3 << 20 },
		func(m *Manifest) { m.PieceSize = 128 << 20 },
		func(m *Manifest) { m.Pieces = m.Pieces[:1] },
		func(m *Manifest) { m.Pieces[0] = cid.Undef },
		func(m *Manifest) { m.SHA256 = "XYZ" },
	}
	for i, f := range bad {
		m := testManifest()
		f(m)
		if err := m.Validate(); err == nil {
			t.Errorf("case %d accepted", i)
		}
	}
	for _, junk := range []string{"", "{}", `{"v":1,"extra":1}`, `{"v":1} trailing`, "[1,2]"} {
		if _, err := DecodeManifest([]byte(junk)); err == nil {
			t.Errorf("%q decoded", junk)
		}
	}
}

// FuzzDecodeManifest: no input may crash the decoder, and whatever it
// accepts must re-encode to a manifest that validates.
func FuzzDecodeManifest(f *testing.F) {
	b, _ := testManifest().Encode()
	f.Add(b)
	f.Add([]byte(`{"v":1}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := DecodeManifest(in)
		if err != nil {
			return
		}
		if _, err := m.Encode(); err != nil {
			t.Fatalf("accepted manifest does not re-encode: %v", err)
		}
	})
}

func FuzzTaskIDFor(f *testing.F) {
	f.Add("https://example.com/a?b=1", "t", "")
	f.Add("http://[::1]:80/x", "", "sha256:"+strings.Repeat("0", 64))
	f.Fuzz(func(t *testing.T, u, tag, digest string) {
		id, err := TaskIDFor(u, tag, digest, DefaultQueryFilter)
		if err == nil && !id.Valid() {
			t.Fatalf("invalid id %q for %q", id, u)
		}
	})
}
