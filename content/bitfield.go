package content

import (
	"encoding/base64"
	"fmt"
)

// Bitfield is a compact set of piece indexes (bit i%8 of byte i/8), base64
// in JSON. The tracker and the exchange's status query carry holdings as one.
type Bitfield []byte

// NewBitfield encodes have as a bitfield.
func NewBitfield(have []bool) Bitfield {
	if len(have) == 0 {
		return nil
	}
	b := make(Bitfield, (len(have)+7)/8)
	for i, h := range have {
		if h {
			b[i/8] |= 1 << (i % 8)
		}
	}
	return b
}

// Bools decodes the first n bits. Bits beyond n must be zero.
func (b Bitfield) Bools(n int) ([]bool, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if len(b) != (n+7)/8 {
		return nil, fmt.Errorf("bitfield has %d bytes for %d pieces", len(b), n)
	}
	out := make([]bool, n)
	for i := range out {
		out[i] = b[i/8]&(1<<(i%8)) != 0
	}
	for i := n; i < len(b)*8; i++ {
		if b[i/8]&(1<<(i%8)) != 0 {
			return nil, fmt.Errorf("bitfield has bits beyond piece %d", n)
		}
	}
	return out, nil
}

// MarshalJSON encodes the bitfield as base64.
func (b Bitfield) MarshalJSON() ([]byte, error) {
	return []byte(`"` + base64.StdEncoding.EncodeToString(b) + `"`), nil
}

// UnmarshalJSON decodes a base64 bitfield.
func (b *Bitfield) UnmarshalJSON(data []byte) error {
	if len(data) < 2 || data[0] != '"' || data[len(data)-1] != '"' {
		return fmt.Errorf("bitfield: want a base64 string")
	}
	dec, err := base64.StdEncoding.DecodeString(string(data[1 : len(data)-1]))
	if err != nil {
		return fmt.Errorf("bitfield: %w", err)
	}
	*b = dec
	return nil
}
