package limit

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// MaxRate bounds a rate: 1 PiB/s, far above any link, and small enough that
// the arithmetic on it never overflows.
const MaxRate = 1 << 50

// prefixes are the SI (1000) and IEC (1024) multipliers a unit may start
// with. "K" is accepted for "k".
var prefixes = map[string]float64{
	"":  1,
	"k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
	"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,
}

// ParseRate parses a rate in bytes per second: a non-negative decimal
// number and an optional unit, with no space: a prefix (k, K, M, G, T, Ki,
// Mi, Gi, Ti) followed by "B" or nothing for bytes, or by "bit" for bits,
// optionally followed by "/s". "0" is unlimited. Examples: 1048576,
// 100MiB, 1.5GB, 800Mbit, 10MiB/s, 500k. Fractions of a byte round to the
// nearest byte; a non-zero rate below 1 B/s is an error.
func ParseRate(s string) (int64, error) {
	in := s
	s = strings.TrimSuffix(s, "/s")
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	num, unit := s[:i], s[i:]
	if num == "" || strings.Count(num, ".") > 1 || num[0] == '.' || num[len(num)-1] == '.' {
		return 0, fmt.Errorf("invalid rate %q: want a number and a unit, e.g. 100MiB, 1.5GB or 800Mbit", in)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid rate %q: %v", in, errors.Unwrap(err))
	}
	bits := false
	switch {
	case strings.HasSuffix(unit, "bit"):
		bits, unit = true, strings.TrimSuffix(unit, "bit")
	case strings.HasSuffix(unit, "B"):
		unit = strings.TrimSuffix(unit, "B")
	}
	mult, ok := prefixes[unit]
	if !ok {
		return 0, fmt.Errorf("invalid rate %q: unknown unit %q (want B, kB, KiB, MB, MiB, GB, GiB, ... or kbit, Mbit, Gbit, ...)", in, s[i:])
	}
	v *= mult
	if bits {
		v /= 8
	}
	if v > MaxRate || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("invalid rate %q: larger than 1PiB/s", in)
	}
	r := int64(math.Round(v))
	if r == 0 && v != 0 {
		return 0, fmt.Errorf("invalid rate %q: below 1 byte per second (use 0 for unlimited)", in)
	}
	return r, nil
}

// FormatRate prints a rate for people: "unlimited" for 0, else the largest
// IEC unit with at most two decimals and "/s", e.g. "10MiB/s", "1.4GiB/s".
func FormatRate(bps int64) string {
	if bps <= 0 {
		return "unlimited"
	}
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	v, u := float64(bps), 0
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64) + units[u] + "/s"
}
