package content

import (
	"crypto/sha256"
	"fmt"
	"hash"
	"math/bits"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// Piece-size bounds. See docs/PIECES.md for the measurements behind them.
const (
	MinPieceSize int64 = 2 << 20  // 2 MiB
	MaxPieceSize int64 = 16 << 20 // 16 MiB
	// A manifest may carry any power-of-two piece size in
	// [MinValidPieceSize, MaxValidPieceSize], so the rule can change without
	// breaking manifests peers already hold.
	MinValidPieceSize int64 = 256 << 10
	MaxValidPieceSize int64 = 64 << 20
	// TargetPieces is how many pieces a large file is cut into before the
	// piece size stops growing: enough to spread a file over many peers at
	// once, few enough that per-piece overhead stays small.
	TargetPieces = 256
	// MaxPieces bounds a manifest (a 16 TiB file at 16 MiB pieces).
	MaxPieces = 1 << 20
)

// PieceSize is the rule for cutting a file of the given length: the smallest
// power of two that keeps the file within TargetPieces pieces, clamped to
// [MinPieceSize, MaxPieceSize]. A length below 0 (unknown) gets the maximum.
func PieceSize(length int64) int64 {
	if length < 0 {
		return MaxPieceSize
	}
	want := (length + TargetPieces - 1) / TargetPieces
	if want <= MinPieceSize {
		return MinPieceSize
	}
	ps := int64(1) << (64 - bits.LeadingZeros64(uint64(want-1)))
	if ps > MaxPieceSize {
		return MaxPieceSize
	}
	return ps
}

// NumPieces is how many pieces a file of length bytes has with pieceSize.
// An empty file has zero pieces.
func NumPieces(length, pieceSize int64) int {
	if length <= 0 || pieceSize <= 0 {
		return 0
	}
	// Not (length+pieceSize-1)/pieceSize: that overflows for a length near
	// the int64 maximum (a hostile tracker answer) and goes negative.
	n := length / pieceSize
	if length%pieceSize != 0 {
		n++
	}
	return int(n)
}

// PieceRange is the byte offset and length of piece i.
func PieceRange(length, pieceSize int64, i int) (off, n int64) {
	off = int64(i) * pieceSize
	n = pieceSize
	if off+n > length {
		n = length - off
	}
	return off, n
}

// NewHasher returns the hash used for pieces and whole files (sha2-256).
func NewHasher() hash.Hash { return sha256.New() }

// CIDFromSHA256 wraps a sha2-256 digest as a CIDv1 with the raw codec.
func CIDFromSHA256(sum []byte) (cid.Cid, error) {
	if len(sum) != sha256.Size {
		return cid.Undef, fmt.Errorf("sha256 digest has %d bytes", len(sum))
	}
	m, err := mh.Encode(sum, mh.SHA2_256)
	if err != nil {
		return cid.Undef, err
	}
	return cid.NewCidV1(cid.Raw, m), nil
}

// PieceCID is the CID of a block of bytes held in memory. Prefer hashing while
// streaming with NewHasher and CIDFromSHA256 for large data.
func PieceCID(b []byte) cid.Cid {
	sum := sha256.Sum256(b)
	c, _ := CIDFromSHA256(sum[:])
	return c
}

// SHA256Of returns the sha2-256 digest inside a piece CID, checking that the
// CID is of the form dfp2p uses (v1, raw, sha2-256).
func SHA256Of(c cid.Cid) ([]byte, error) {
	if !c.Defined() {
		return nil, fmt.Errorf("undefined CID")
	}
	if c.Version() != 1 || c.Type() != cid.Raw {
		return nil, fmt.Errorf("CID %s is not CIDv1 raw", c)
	}
	d, err := mh.Decode(c.Hash())
	if err != nil {
		return nil, err
	}
	if d.Code != mh.SHA2_256 || len(d.Digest) != sha256.Size {
		return nil, fmt.Errorf("CID %s is not sha2-256", c)
	}
	return d.Digest, nil
}
