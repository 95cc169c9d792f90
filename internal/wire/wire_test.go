package wire

import (
	"bufio"
	"bytes"
	"errors"
	"testing"
)

type msg struct {
	A string `json:"a"`
	B []int  `json:"b"`
}

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	in := msg{A: "x", B: []int{1, 2}}
	if err := WriteMsg(&buf, in); err != nil {
		t.Fatal(err)
	}
	var out msg
	if err := ReadMsg(bufio.NewReader(&buf), 1024, &out); err != nil {
		t.Fatal(err)
	}
	if out.A != in.A || len(out.B) != 2 {
		t.Fatalf("got %+v", out)
	}
}

func TestLimits(t *testing.T) {
	var buf bytes.Buffer
	WriteMsg(&buf, msg{A: string(make([]byte, 100))})
	var out msg
	if err := ReadMsg(bufio.NewReader(&buf), 10, &out); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	// A huge declared length must not allocate: it is refused first.
	huge := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}
	if _, err := ReadFrame(bufio.NewReader(bytes.NewReader(huge)), 1<<20); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v", err)
	}
	if _, err := ReadFrame(bufio.NewReader(bytes.NewReader([]byte{5, 'a'})), 10); err == nil {
		t.Fatal("short frame accepted")
	}
}

func FuzzReadMsg(f *testing.F) {
	var buf bytes.Buffer
	WriteMsg(&buf, msg{A: "seed", B: []int{3}})
	f.Add(buf.Bytes())
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, in []byte) {
		var m msg
		_ = ReadMsg(bufio.NewReader(bytes.NewReader(in)), 4096, &m)
	})
}
