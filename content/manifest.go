package content

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
)

// ManifestVersion is the manifest format version this code writes.
const ManifestVersion = 1

// MaxManifestSize bounds an encoded manifest read from the network or disk.
const MaxManifestSize = 96 << 20

// Manifest lists a task's pieces. Encoded, it is a block whose CID (CIDv1, raw,
// sha2-256) is the task root.
type Manifest struct {
	Version   int       `json:"v"`
	TaskID    TaskID    `json:"task"`
	Length    int64     `json:"length"`
	PieceSize int64     `json:"piece_size"`
	Pieces    []cid.Cid `json:"pieces"`
	// SHA256 is the hex sha256 of the whole file.
	SHA256 string `json:"sha256"`
}

// Validate checks the manifest's internal consistency.
func (m *Manifest) Validate() error {
	if m.Version != ManifestVersion {
		return fmt.Errorf("manifest: unsupported version %d", m.Version)
	}
	if !m.TaskID.Valid() {
		return fmt.Errorf("manifest: invalid task id %q", m.TaskID)
	}
	if m.Length < 0 {
		return fmt.Errorf("manifest: negative length")
	}
	if m.PieceSize < MinValidPieceSize || m.PieceSize > MaxValidPieceSize || m.PieceSize&(m.PieceSize-1) != 0 {
		return fmt.Errorf("manifest: invalid piece size %d", m.PieceSize)
	}
	n := NumPieces(m.Length, m.PieceSize)
	if n > MaxPieces {
		return fmt.Errorf("manifest: %d pieces exceeds limit %d", n, MaxPieces)
	}
	if len(m.Pieces) != n {
		return fmt.Errorf("manifest: %d piece CIDs for %d pieces", len(m.Pieces), n)
	}
	for i, c := range m.Pieces {
		if _, err := SHA256Of(c); err != nil {
			return fmt.Errorf("manifest: piece %d: %w", i, err)
		}
	}
	if !TaskID(m.SHA256).Valid() { // same shape: 64 lower-case hex characters
		return fmt.Errorf("manifest: invalid sha256 %q", m.SHA256)
	}
	return nil
}

// Encode returns the manifest's canonical bytes (compact JSON, fields in a
// fixed order). The same manifest always encodes to the same bytes.
func (m *Manifest) Encode() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(m)
}

// CID returns the manifest's root CID.
func (m *Manifest) CID() (cid.Cid, error) {
	b, err := m.Encode()
	if err != nil {
		return cid.Undef, err
	}
	return PieceCID(b), nil
}

// DecodeManifest parses and validates an encoded manifest.
func DecodeManifest(b []byte) (*Manifest, error) {
	if len(b) > MaxManifestSize {
		return nil, errors.New("manifest: too large")
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if dec.More() {
		return nil, errors.New("manifest: trailing data")
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// DecodeManifestWithRoot parses b and checks that it hashes to root.
func DecodeManifestWithRoot(b []byte, root cid.Cid) (*Manifest, error) {
	if !PieceCID(b).Equals(root) {
		return nil, fmt.Errorf("manifest: bytes do not match root %s", root)
	}
	return DecodeManifest(b)
}
