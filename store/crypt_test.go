package store

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/dfp2p/dfp2p/content"
	"github.com/ipfs/go-cid"
)

func newTextLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

func testKey(seed uint64) []byte { return randBytes(1000+seed, KeySize) }

func encOpt(cipher string) Option { return WithEncryption(testKey(1), cipher) }

// piecePathOf is the path of piece i of f in the store at dir.
func piecePathOf(dir string, f *file, i int) string {
	return filepath.Join(taskDirOf(dir, f.id), pieceName(i, f.pieces[i]))
}

// readPiece reads piece i through OpenPiece; it fails the test if the bytes
// read are not a prefix of the piece (wrong bytes must never come out).
func readPiece(t *testing.T, s *Store, f *file, i int) error {
	t.Helper()
	r, n, c, err := s.OpenPiece(f.id, i)
	if err != nil {
		return err
	}
	defer r.Close()
	if n != int64(len(f.piece(i))) || !c.Equals(f.pieces[i]) {
		t.Fatalf("OpenPiece %d: n=%d c=%s", i, n, c)
	}
	b, err := io.ReadAll(r)
	if !bytes.HasPrefix(f.piece(i), b) {
		t.Fatalf("OpenPiece %d returned %d wrong bytes", i, len(b))
	}
	if err == nil && len(b) != len(f.piece(i)) {
		t.Fatalf("OpenPiece %d: %d bytes without error", i, len(b))
	}
	return err
}

func TestEncryptedRoundTrip(t *testing.T) {
	for _, cph := range Ciphers {
		t.Run(cph, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, encOpt(cph))
			if err != nil {
				t.Fatal(err)
			}
			f := newFile("enc-"+cph, 3*ps-segSize-12345) // last piece ends mid-segment
			writeAll(t, s, f)
			// Rewriting a held piece is still accepted (and keeps one file).
			writePiece(t, s, f, 1)
			for i := range f.pieces {
				if err := readPiece(t, s, f, i); err != nil {
					t.Fatalf("piece %d: %v", i, err)
				}
				info, err := os.Stat(piecePathOf(dir, f, i))
				if err != nil {
					t.Fatal(err)
				}
				if want := encodedSize(int64(len(f.piece(i)))); info.Size() != want {
					t.Fatalf("piece %d file is %d bytes, want %d", i, info.Size(), want)
				}
			}
			want := []string{pieceName(0, f.pieces[0]), pieceName(1, f.pieces[1]), pieceName(2, f.pieces[2])}
			if got := listDir(t, taskDirOf(dir, f.id)); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("task dir = %v, want %v", got, want)
			}
			if s.Usage() != int64(len(f.data)) {
				t.Fatalf("Usage = %d (plaintext bytes expected)", s.Usage())
			}
			checkReaderOffsets(t, s, f)
			if err := s.Complete(f.id, f.manifest()); err != nil {
				t.Fatal(err)
			}
			if bad, err := s.Verify(f.id); err != nil || len(bad) != 0 {
				t.Fatalf("Verify = %v, %v", bad, err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			s2 := openStore(t, dir, encOpt(cph))
			if tk, err := s2.Task(f.id); err != nil || !tk.Complete || tk.Held != 3 {
				t.Fatalf("after reopen: %+v, %v", tk, err)
			}
			checkReaderOffsets(t, s2, f)
			if err := readPiece(t, s2, f, 2); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// checkReaderOffsets reads f back through NewReader from offsets around
// segment and piece boundaries, in odd-sized reads.
func checkReaderOffsets(t *testing.T, s *Store, f *file) {
	t.Helper()
	L := int64(len(f.data))
	readFrom(t, s, f, 0, 1, segSize-1, segSize, segSize+1, ps-1, ps, ps+3*segSize+7, L-1, L)
}

func TestEncryptedNoPlaintextOnDisk(t *testing.T) {
	for _, cph := range Ciphers {
		t.Run(cph, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir, encOpt(cph))
			f := newFile("secret-"+cph, ps+segSize/2)
			writeAll(t, s, f)
			for i := range f.pieces {
				disk, err := os.ReadFile(piecePathOf(dir, f, i))
				if err != nil {
					t.Fatal(err)
				}
				p := f.piece(i)
				for _, off := range []int{0, 1000, segSize - 32, segSize, len(p) / 2, len(p) - 64} {
					if off+64 > len(p) {
						continue
					}
					if bytes.Contains(disk, p[off:off+64]) {
						t.Fatalf("piece %d: plaintext at offset %d found on disk", i, off)
					}
				}
				if !bytes.HasPrefix(disk, []byte(encMagic)) {
					t.Fatalf("piece %d: no header", i)
				}
			}
			// Writing the same piece again uses another salt.
			a, _ := os.ReadFile(piecePathOf(dir, f, 0))
			if err := s.DeleteTask(f.id); err != nil {
				t.Fatal(err)
			}
			writeAll(t, s, f)
			b, _ := os.ReadFile(piecePathOf(dir, f, 0))
			if bytes.Equal(a[8:fixedSize], b[8:fixedSize]) || bytes.Equal(a[headerSize:headerSize+64], b[headerSize:headerSize+64]) {
				t.Fatal("rewriting a piece reused the salt")
			}
		})
	}
}

// A file that is not exactly what was written is never served: reads fail
// with ErrBadPiece (and drop the piece), Verify reports it and Open drops it.
func TestEncryptedTamper(t *testing.T) {
	seg := int64(segSize + tagSize)
	type env struct {
		dir  string
		f, g *file // g: another task of the same geometry
	}
	cases := []struct {
		name   string
		target int // the piece of f that is damaged
		// atLoad: Open finds it (header or size); else the first read does
		atLoad bool
		damage func(t *testing.T, e env)
	}{
		{"flip segment byte", 0, false, func(t *testing.T, e env) {
			flip(t, piecePathOf(e.dir, e.f, 0), headerSize+5*seg+100)
		}},
		{"flip tag byte", 0, false, func(t *testing.T, e env) {
			flip(t, piecePathOf(e.dir, e.f, 0), headerSize+seg-1)
		}},
		{"flip last byte", 0, false, func(t *testing.T, e env) {
			p := piecePathOf(e.dir, e.f, 0)
			flip(t, p, size(t, p)-1)
		}},
		{"flip salt", 0, true, func(t *testing.T, e env) {
			flip(t, piecePathOf(e.dir, e.f, 0), 9)
		}},
		{"flip cipher id", 0, true, func(t *testing.T, e env) {
			flip(t, piecePathOf(e.dir, e.f, 0), 5)
		}},
		{"truncate one byte", 0, true, func(t *testing.T, e env) {
			p := piecePathOf(e.dir, e.f, 0)
			truncateFile(t, p, size(t, p)-1)
		}},
		{"truncate last segment", 0, true, func(t *testing.T, e env) {
			p := piecePathOf(e.dir, e.f, 0)
			truncateFile(t, p, size(t, p)-seg)
		}},
		{"append segment", 0, true, func(t *testing.T, e env) {
			p := piecePathOf(e.dir, e.f, 0)
			b, _ := os.ReadFile(p)
			write(t, p, append(b, b[headerSize:headerSize+seg]...))
		}},
		{"swap segments", 0, false, func(t *testing.T, e env) {
			p := piecePathOf(e.dir, e.f, 0)
			b, _ := os.ReadFile(p)
			s1, s2 := b[headerSize+2*seg:headerSize+3*seg], b[headerSize+7*seg:headerSize+8*seg]
			tmp := bytes.Clone(s1)
			copy(s1, s2)
			copy(s2, tmp)
			write(t, p, b)
		}},
		{"swap final segment", 0, false, func(t *testing.T, e env) {
			p := piecePathOf(e.dir, e.f, 0) // full piece: the last segment is full-size too
			b, _ := os.ReadFile(p)
			last := int64(len(b)) - seg
			s1, s2 := b[headerSize:headerSize+seg], b[last:]
			tmp := bytes.Clone(s1)
			copy(s1, s2)
			copy(s2, tmp)
			write(t, p, b)
		}},
		{"copy other piece", 1, true, func(t *testing.T, e env) {
			b, _ := os.ReadFile(piecePathOf(e.dir, e.f, 0))
			write(t, piecePathOf(e.dir, e.f, 1), b)
		}},
		{"copy other task", 0, true, func(t *testing.T, e env) {
			b, _ := os.ReadFile(piecePathOf(e.dir, e.g, 0))
			write(t, piecePathOf(e.dir, e.f, 0), b)
		}},
		{"splice segment from other piece", 1, false, func(t *testing.T, e env) {
			a, _ := os.ReadFile(piecePathOf(e.dir, e.f, 0))
			p := piecePathOf(e.dir, e.f, 1)
			b, _ := os.ReadFile(p)
			copy(b[headerSize+3*seg:headerSize+4*seg], a[headerSize+3*seg:])
			write(t, p, b)
		}},
		{"plaintext file", 0, true, func(t *testing.T, e env) {
			write(t, piecePathOf(e.dir, e.f, 0), e.f.piece(0))
		}},
	}
	modes := []string{"OpenPiece", "NewReader", "Verify", "reopen"}
	f, g := newFile("tamper", 2*ps), newFile("tamper-other", 2*ps)
	for _, tc := range cases {
		for _, mode := range modes {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				dir := t.TempDir()
				s, err := Open(dir, encOpt(CipherXChaCha20Poly1305), WithSync(false))
				if err != nil {
					t.Fatal(err)
				}
				e := env{dir: dir, f: f, g: g}
				writeAll(t, s, e.f)
				if strings.Contains(tc.name, "other task") {
					writeAll(t, s, e.g)
				}
				if err := s.Complete(e.f.id, e.f.manifest()); err != nil {
					t.Fatal(err)
				}
				tc.damage(t, e)
				switch mode {
				case "OpenPiece":
					defer s.Close()
					err := readPiece(t, s, e.f, tc.target)
					if !errors.Is(err, ErrBadPiece) {
						t.Fatalf("read of damaged piece: %v", err)
					}
				case "NewReader":
					defer s.Close()
					r, err := s.NewReader(e.f.id, int64(tc.target)*ps)
					if err != nil {
						t.Fatal(err)
					}
					b, err := io.ReadAll(r)
					r.Close()
					if !errors.Is(err, ErrBadPiece) || !bytes.HasPrefix(e.f.data[int64(tc.target)*ps:], b) {
						t.Fatalf("NewReader: %d bytes, %v", len(b), err)
					}
				case "Verify":
					defer s.Close()
					bad, err := s.Verify(e.f.id)
					if err != nil || fmt.Sprint(bad) != fmt.Sprint([]int{tc.target}) {
						t.Fatalf("Verify = %v, %v", bad, err)
					}
				case "reopen":
					s.Close()
					s = openStore(t, dir, encOpt(CipherXChaCha20Poly1305))
					if !tc.atLoad {
						// Open authenticates headers only; the segments
						// are checked as they are read.
						if !s.Have(e.f.id)[tc.target] {
							t.Fatal("dropped at Open")
						}
						if err := readPiece(t, s, e.f, tc.target); !errors.Is(err, ErrBadPiece) {
							t.Fatalf("read of damaged piece: %v", err)
						}
					}
				}
				// However it was found, the piece is no longer held, the
				// others still are, and the task is no longer complete.
				have := s.Have(e.f.id)
				for i := range have {
					if have[i] == (i == tc.target) {
						t.Fatalf("Have = %v after damaging piece %d", have, tc.target)
					}
				}
				if _, err := os.Stat(piecePathOf(dir, e.f, tc.target)); !os.IsNotExist(err) {
					t.Fatalf("damaged file still on disk: %v", err)
				}
				if tk, _ := s.Task(e.f.id); tk.Complete {
					t.Fatal("task still complete")
				}
				if err := readPiece(t, s, e.f, 1-tc.target); err != nil {
					t.Fatalf("undamaged piece: %v", err)
				}
				if _, _, _, err := s.OpenPiece(e.f.id, tc.target); !errors.Is(err, ErrNotFound) {
					t.Fatalf("OpenPiece of the dropped piece: %v", err)
				}
				// It can be fetched again.
				writePiece(t, s, e.f, tc.target)
				if err := readPiece(t, s, e.f, tc.target); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

func flip(t *testing.T, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0x20
	write(t, path, b)
}

func size(t *testing.T, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}

func truncateFile(t *testing.T, path string, n int64) {
	t.Helper()
	if err := os.Truncate(path, n); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Reopening with other settings drops the pieces instead of serving them.
func TestEncryptionMismatchAtReopen(t *testing.T) {
	other := WithEncryption(testKey(2), CipherAES256GCM)
	cases := []struct {
		name        string
		write, open []Option
	}{
		{"wrong key", []Option{encOpt(CipherAES256GCM)}, []Option{other}},
		{"wrong cipher", []Option{encOpt(CipherAES256GCM)}, []Option{encOpt(CipherXChaCha20Poly1305)}},
		{"encrypted into plain", []Option{encOpt(CipherXChaCha20Poly1305)}, nil},
		{"plain into encrypted", nil, []Option{encOpt(CipherXChaCha20Poly1305)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, tc.write...)
			if err != nil {
				t.Fatal(err)
			}
			f := newFile("mismatch", 2*ps+1)
			writeAll(t, s, f)
			if err := s.Complete(f.id, f.manifest()); err != nil {
				t.Fatal(err)
			}
			s.Close()

			var logs strings.Builder
			s2 := openStore(t, dir, append(tc.open, WithLogger(newTextLogger(&logs)))...)
			tk, err := s2.Task(f.id)
			if err != nil || tk.Held != 0 || tk.Complete || s2.Usage() != 0 {
				t.Fatalf("task = %+v, %v", tk, err)
			}
			if got := listDir(t, taskDirOf(dir, f.id)); len(got) != 0 {
				t.Fatalf("left on disk: %v", got)
			}
			if !strings.Contains(logs.String(), "removing file") {
				t.Fatalf("no warning logged:\n%s", logs.String())
			}
			// Filled again, it serves.
			writeAll(t, s2, f)
			checkReaderOffsets(t, s2, f)
		})
	}
}

func TestEncryptionOptions(t *testing.T) {
	for _, n := range []int{0, 1, 16, 31, 33, 64} {
		if _, err := Open(t.TempDir(), WithEncryption(make([]byte, n), CipherAES256GCM)); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "32") {
			t.Fatalf("key of %d bytes: %v", n, err)
		}
	}
	for _, c := range []string{"aes-128-gcm", "chacha20-poly1305", "none"} {
		_, err := Open(t.TempDir(), WithEncryption(testKey(1), c))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "cipher") {
			t.Fatalf("cipher %q: %v", c, err)
		}
	}
	// A key without a cipher: AES-256-GCM.
	if _, err := Open(t.TempDir(), WithEncryption(testKey(1), "")); err != nil {
		t.Fatalf("key without a cipher: %v", err)
	}
	// Both empty: encryption off.
	dir := t.TempDir()
	s := openStore(t, dir, WithEncryption(nil, ""))
	f := newFile("plain", ps)
	writeAll(t, s, f)
	if b, _ := os.ReadFile(piecePathOf(dir, f, 0)); !bytes.Equal(b, f.piece(0)) {
		t.Fatal("piece not stored plain")
	}
	// Upper case names are accepted; the key is copied.
	key := testKey(3)
	s2 := openStore(t, t.TempDir(), WithEncryption(key, strings.ToUpper(CipherAES256GCM)))
	clear(key)
	writeAll(t, s2, f)
	if err := readPiece(t, s2, f, 0); err != nil {
		t.Fatal(err)
	}
}

// An encrypted store rejects bad pieces just like a plain one.
func TestEncryptedBadPieceLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, encOpt(CipherAES256GCM))
	f := newFile("enc-bad", ps)
	ensure(t, s, f)
	for _, r := range []struct {
		want cid.Cid
		r    io.Reader
	}{
		{content.PieceCID([]byte("x")), bytes.NewReader(f.piece(0))},
		{f.pieces[0], bytes.NewReader(f.piece(0)[:ps-1])},
		{cid.Undef, io.MultiReader(bytes.NewReader(f.piece(0)), strings.NewReader("x"))},
	} {
		if _, err := s.WritePiece(f.id, 0, r.want, r.r); !errors.Is(err, ErrBadPiece) {
			t.Fatalf("WritePiece: %v", err)
		}
		if got := listDir(t, taskDirOf(dir, f.id)); len(got) != 0 || s.Have(f.id)[0] {
			t.Fatalf("left on disk: %v", got)
		}
	}
}

func TestEncryptedConcurrentWriteAndServe(t *testing.T) {
	s := openStore(t, t.TempDir(), encOpt(CipherAES256GCM), WithSync(false))
	f := newFile("enc-serve", 4*ps-5)
	ensure(t, s, f)
	r, err := s.NewReaderContext(context.Background(), f.id, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(r)
		r.Close()
		got <- b
	}()
	done := make(chan struct{})
	for i := range f.pieces {
		go func() {
			defer func() { done <- struct{}{} }()
			if _, err := s.WritePiece(f.id, i, f.pieces[i], bytes.NewReader(f.piece(i))); err != nil {
				t.Error(err)
			}
		}()
	}
	for range f.pieces {
		<-done
	}
	if b := <-got; !bytes.Equal(b, f.data) {
		t.Fatalf("streamed %d bytes, mismatch", len(b))
	}
}

func TestLoadKeyFile(t *testing.T) {
	key := testKey(7)
	dir := t.TempDir()
	good := map[string][]byte{
		"raw":            key,
		"raw-newline":    append(bytes.Clone(key), '\n'),
		"hex":            []byte(hex.EncodeToString(key)),
		"hex-newline":    []byte(hex.EncodeToString(key) + "\n"),
		"hex-crlf":       []byte(strings.ToUpper(hex.EncodeToString(key)) + "\r\n"),
		"base64":         []byte(base64.StdEncoding.EncodeToString(key)),
		"base64-newline": []byte(base64.StdEncoding.EncodeToString(key) + "\n"),
		"base64-raw-url": []byte(base64.RawURLEncoding.EncodeToString(key) + "\n"),
	}
	for name, b := range good {
		p := filepath.Join(dir, name)
		write(t, p, b)
		got, err := LoadKeyFile(p)
		if err != nil || !bytes.Equal(got, key) {
			t.Fatalf("%s: %x, %v", name, got, err)
		}
	}
	bad := map[string][]byte{
		"empty":        nil,
		"short":        key[:31],
		"long":         append(bytes.Clone(key), 0, 0),
		"not-hex":      []byte(strings.Repeat("zz", KeySize)),
		"hex-short":    []byte(hex.EncodeToString(key[:16]) + "\n"),
		"hex-short-nl": []byte(hex.EncodeToString(key[:16])),
		"passphrase":   []byte("correct horse battery staple!!!!"),
		"base64-short": []byte(base64.StdEncoding.EncodeToString(key[:16])),
		"two-newlines": []byte(hex.EncodeToString(key) + "\n\n"),
		"huge":         make([]byte, 1<<20),
	}
	for name, b := range bad {
		p := filepath.Join(dir, name)
		write(t, p, b)
		if _, err := LoadKeyFile(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, err := LoadKeyFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
	if runtime.GOOS == "windows" {
		return
	}
	p := filepath.Join(dir, "hex")
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadKeyFile(p)
		if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("mode %o: %v", mode, err)
		}
	}
	os.Chmod(p, 0o400)
	if got, err := LoadKeyFile(p); err != nil || !bytes.Equal(got, key) {
		t.Fatalf("mode 0400: %v", err)
	}
	if _, err := LoadKeyFile(dir); err == nil {
		t.Fatal("a directory as key file")
	}
}
