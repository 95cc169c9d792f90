package limit

import "testing"

func TestParseRate(t *testing.T) {
	good := map[string]int64{
		"0": 0, "1": 1, "1048576": 1 << 20, "100MiB": 100 << 20, "1.5GB": 1_500_000_000,
		"800Mbit": 100_000_000, "10MiB/s": 10 << 20, "500k": 500_000, "500K": 500_000, "500kB": 500_000,
		"2KiB": 2048, "1Gbit": 125_000_000, "1Gibit": 1 << 27, "8bit": 1, "0.5MiB": 512 << 10,
		"1TiB": 1 << 40, "3B": 3, "0MiB": 0, "1.25": 1,
	}
	for in, want := range good {
		got, err := ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "-1MiB", "MiB", "1.", ".5", "1..2", "1.2.3", "10 MiB", " 10MiB", "10MiB ",
		"10mib", "10MIB", "10Mb", "10Mbps", "10Xbit", "1e6", "NaN", "Inf", "10MiB/s/s", "10/s/s", "2PiB", "99999999999999999999",
		"1bit", "0.1", "10iB", "0x10"} {
		if got, err := ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q) = %d, want an error", in, got)
		}
	}
}

func TestFormatRate(t *testing.T) {
	for in, want := range map[int64]string{0: "unlimited", -1: "unlimited", 1: "1B/s", 1536: "1.5KiB/s",
		10 << 20: "10MiB/s", 1_500_000_000: "1.4GiB/s", 1 << 50: "1PiB/s"} {
		if got := FormatRate(in); got != want {
			t.Errorf("FormatRate(%d) = %q, want %q", in, got, want)
		}
	}
	// Formatted rates parse back (to within the two decimals).
	for _, r := range []int64{1, 1536, 10 << 20, 123 << 30} {
		s := FormatRate(r)
		got, err := ParseRate(s)
		if err != nil || float64(got) < 0.99*float64(r) || float64(got) > 1.01*float64(r) {
			t.Errorf("ParseRate(FormatRate(%d) = %q) = %d, %v", r, s, got, err)
		}
	}
}
