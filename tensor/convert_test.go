package tensor

import (
	"math"
	"testing"
)

// TestWidenNarrowRoundTrip: every non-NaN 16-bit value widens exactly and
// narrows back to itself; NaNs stay NaNs.
func TestWidenNarrowRoundTrip(t *testing.T) {
	all := make([]uint16, 1<<16)
	for i := range all {
		all[i] = uint16(i)
	}
	for _, d := range []DType{BF16, F16} {
		f := make([]float32, len(all))
		Widen(d, f, all)
		back := make([]uint16, len(all))
		Narrow(d, back, f)
		for i, h := range all {
			if math.IsNaN(float64(f[i])) {
				w := make([]float32, 1)
				Widen(d, w, back[i:i+1])
				if !math.IsNaN(float64(w[0])) {
					t.Fatalf("%s %#04x: NaN narrowed to %#04x", d, h, back[i])
				}
				continue
			}
			if back[i] != h {
				t.Fatalf("%s %#04x widened to %v narrowed to %#04x", d, h, f[i], back[i])
			}
		}
	}
	if !BF16.Is16() || !F16.Is16() || F32.Is16() || I16.Is16() {
		t.Fatal("Is16")
	}
}

func TestNarrowRoundsToNearestEven(t *testing.T) {
	// 1 + 2⁻⁸ is halfway between two bfloat16s: ties go to even (1).
	cases := []struct {
		d    DType
		v    float32
		want uint16
	}{
		{BF16, 1 + 1.0/256, 0x3f80},
		{BF16, 1 + 3.0/256, 0x3f82},
		{BF16, 1 + 1.0/256 + 1.0/65536, 0x3f81},
		{F16, 1 + 1.0/2048, 0x3c00},
		{F16, 1 + 3.0/2048, 0x3c02},
		{F16, 65520, 0x7c00}, // rounds up to Inf
	}
	for _, c := range cases {
		h := make([]uint16, 1)
		Narrow(c.d, h, []float32{c.v})
		if h[0] != c.want {
			t.Errorf("%s(%v) = %#04x, want %#04x", c.d, c.v, h[0], c.want)
		}
	}
}

func TestUint16Bytes(t *testing.T) {
	v := []uint16{0, 1, 0x3f80, 0xffff, 0x1234}
	b := Uint16Bytes(v)
	if len(b) != 10 || b[4] != 0x80 || b[5] != 0x3f {
		t.Fatalf("bytes %x", b)
	}
	back := Uint16s(b)
	for i := range v {
		if back[i] != v[i] {
			t.Fatalf("%v round-tripped to %v", v, back)
		}
	}
}

func TestNarrowPanicsOnOtherTypes(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	Narrow(F32, make([]uint16, 1), make([]float32, 1))
}
