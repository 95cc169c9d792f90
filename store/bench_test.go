package store

import (
	"bytes"
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
		b.Run(name, func(b *testing.B) {
			const pieceSize = 4 << 20
			const pieces = 32
			s := openStore(b, b.TempDir(), WithSync(sync))
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
		})
	}
}
