package store

import (
	"bytes"
	"io"
	"testing"

	"github.com/dfp2p/dfp2p/content"
)

// BenchmarkWritePiece measures verified writes of 4 MiB pieces (hash, temp
// file, optional fsync, rename) into one task.
func BenchmarkWritePiece(b *testing.B) {
	for _, sync := range []bool{false, true} {
		name := "nosync"
		if sync {
			name = "sync"
		}
		b.Run(name, func(b *testing.B) { benchWrite(b, WithSync(sync)) })
	}
}

// BenchmarkWritePieceEncrypted compares verified writes of 4 MiB pieces
// without encryption and with each cipher (no fsync, so the cipher cost
// shows).
func BenchmarkWritePieceEncrypted(b *testing.B) {
	for _, name := range append([]string{"plain"}, Ciphers...) {
		b.Run(name, func(b *testing.B) {
			opts := []Option{WithSync(false)}
			if name != "plain" {
				opts = append(opts, WithEncryption(randBytes(7, KeySize), name))
			}
			benchWrite(b, opts...)
		})
	}
}

func benchWrite(b *testing.B, opts ...Option) {
	const pieceSize = 4 << 20
	const pieces = 32
	s := openStore(b, b.TempDir(), opts...)
	data := randBytes(42, pieceSize)
	want := content.PieceCID(data)
	id := tid("bench")
	ensure := func() {
		if _, err := s.EnsureTask(id, "https://example.com/bench", pieces*pieceSize, pieceSize); err != nil {
			b.Fatal(err)
		}
	}
	ensure()
	b.SetBytes(pieceSize)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		idx := i % pieces
		if idx == 0 && i > 0 {
			b.StopTimer()
			if err := s.DeleteTask(id); err != nil {
				b.Fatal(err)
			}
			ensure()
			b.StartTimer()
		}
		if _, err := s.WritePiece(id, idx, want, bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadPieceEncrypted reads a 4 MiB piece through OpenPiece (from
// the page cache) without encryption and with each cipher.
func BenchmarkReadPieceEncrypted(b *testing.B) {
	for _, name := range append([]string{"plain"}, Ciphers...) {
		b.Run(name, func(b *testing.B) {
			const pieceSize = 4 << 20
			opts := []Option{WithSync(false)}
			if name != "plain" {
				opts = append(opts, WithEncryption(randBytes(7, KeySize), name))
			}
			s := openStore(b, b.TempDir(), opts...)
			data := randBytes(42, pieceSize)
			id := tid("bench-read")
			if _, err := s.EnsureTask(id, "https://example.com/bench", pieceSize, pieceSize); err != nil {
				b.Fatal(err)
			}
			if _, err := s.WritePiece(id, 0, content.PieceCID(data), bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 256<<10)
			b.SetBytes(pieceSize)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r, _, _, err := s.OpenPiece(id, 0)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf); err != nil {
					b.Fatal(err)
				}
				r.Close()
			}
		})
	}
}
