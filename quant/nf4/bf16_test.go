package nf4

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/lorakit/lorakit/tensor"
)

// TestBF16Bits: bf16Bits against the rounding rule written out case by case,
// and against tensor.F32ToBF16 (torch's rounding) wherever the instruction's
// denormal flush does not apply.
func TestBF16Bits(t *testing.T) {
	for _, c := range []struct {
		in   uint32
		want uint16
	}{
		{0x3f800000, 0x3f80}, // 1
		{0x3f808000, 0x3f80}, // tie, even below: stays
		{0x3f818000, 0x3f82}, // tie, odd below: rounds up
		{0x3f808001, 0x3f81}, // above the tie
		{0xbf807fff, 0xbf80}, // below the tie, negative
		{0x7f7fffff, 0x7f80}, // largest float32 rounds to +Inf
		{0x7f800000, 0x7f80}, // +Inf
		{0xff800000, 0xff80}, // -Inf
		{0x7f800001, 0x7fc0}, // signalling NaN becomes quiet
		{0xffc00000, 0xffc0}, // quiet NaN keeps its sign
		{0x00000001, 0x0000}, // denormal flushed
		{0x807fffff, 0x8000}, // negative denormal flushed to -0
		{0x00800000, 0x0080}, // smallest normal kept
	} {
		if got := bf16Bits(math.Float32frombits(c.in)); got != c.want {
			t.Errorf("bf16Bits(%#08x) = %#04x, want %#04x", c.in, got, c.want)
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 100000; i++ {
		f := math.Float32frombits(rng.Uint32())
		b := math.Float32bits(f)
		if b&0x7f800000 == 0 || f != f {
			continue
		}
		if got, want := bf16Bits(f), tensor.F32ToBF16(f); got != want {
			t.Fatalf("bf16Bits(%#08x) = %#04x, tensor.F32ToBF16 %#04x", b, got, want)
		}
	}
}

// specialFloats mixes ordinary values with ties, NaN, ±Inf, denormals and
// values that round up to Inf.
func specialFloats(rng *rand.Rand, n int) []float32 {
	v := randNormal(rng, n, 3)
	specials := []uint32{0x3f808000, 0x3f818000, 0x7f7fffff, 0x7f800000, 0xff800000, 0x7f800001, 0xffc00000, 0x00000001, 0x807fffff, 0x80000000}
	for i := range v {
		if rng.IntN(4) == 0 {
			v[i] = math.Float32frombits(specials[rng.IntN(len(specials))])
		}
	}
	return v
}

// TestBF16ConversionKernels: toBF16 and pairs of every variant that has
// them against bf16Bits, bit for bit, over lengths with tails, writing
// nothing past their output.
func TestBF16ConversionKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, ks := range kernelSets() {
		if ks.toBF16 == nil {
			continue
		}
		for n := 0; n <= 130; n++ {
			src := specialFloats(rng, n+1)[1:] // unaligned
			dst := make([]uint16, n+3)
			for i := range dst {
				dst[i] = 0xdead
			}
			ks.toBF16(dst[:n], src)
			for i := 0; i < n; i++ {
				if want := bf16Bits(src[i]); dst[i] != want {
					t.Fatalf("%s toBF16 n=%d [%d]: %#04x from %#08x, want %#04x", ks.name, n, i, dst[i], math.Float32bits(src[i]), want)
				}
			}
			for i := n; i < len(dst); i++ {
				if dst[i] != 0xdead {
					t.Fatalf("%s toBF16 n=%d wrote guard slot %d", ks.name, n, i)
				}
			}
		}
		for _, kp := range []int{0, 1, 2, 7, 32} {
			src := specialFloats(rng, 2*kp*panelRows)
			dst := make([]uint32, kp*panelRows+2)
			dst[len(dst)-1], dst[len(dst)-2] = 0xdeadbeef, 0xdeadbeef
			ks.pairs(kp, src, dst)
			for p := 0; p < kp; p++ {
				for j := 0; j < panelRows; j++ {
					want := uint32(bf16Bits(src[2*p*panelRows+j])) | uint32(bf16Bits(src[(2*p+1)*panelRows+j]))<<16
					if got := dst[p*panelRows+j]; got != want {
						t.Fatalf("%s pairs kp=%d [%d,%d] = %#08x, want %#08x", ks.name, kp, p, j, got, want)
					}
				}
			}
			if dst[len(dst)-1] != 0xdeadbeef || dst[len(dst)-2] != 0xdeadbeef {
				t.Fatalf("%s pairs kp=%d wrote past its output", ks.name, kp)
			}
		}
	}
}

// TestMatMulBF16: the BF16 compute paths of every variant (hardware
// VDPBF16PS, and the emulation of the float32 kernels) against a float64
// product of the BF16-rounded operands, within float32 summation error.
// That tolerance is far below BF16's rounding error, so a path that skipped
// rounding an operand would fail. Fewer than fusedMaxM+1 rows must give
// exactly the float32 path's result.
func TestMatMulBF16(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	shapes := [][2]int{{32, 64}, {17, 128}, {100, 192}, {64, 576}, {130, 256}}
	for si, sh := range shapes {
		rows, cols := sh[0], sh[1]
		q, err := QuantizeWith(randNormal(rng, rows*cols, 0.05), rows, cols, Options{NoDoubleQuant: si%2 == 1})
		if err != nil {
			t.Fatal(err)
		}
		wd := make([]float32, rows*cols)
		q.Dequantize(wd)
		wr := make([]float32, len(wd))
		for i, v := range wd {
			wr[i] = roundBF16(v)
		}
		for _, m := range []int{3, 9, 12, 13, 25, 64} {
			x := append([]float32{0}, randNormal(rng, m*cols, 1)...)[1:]
			dy := append([]float32{0}, randNormal(rng, m*rows, 1)...)[1:]
			xr, dyr := make([]float32, len(x)), make([]float32, len(dy))
			for i := range x {
				xr[i] = roundBF16(x[i])
			}
			for i := range dy {
				dyr[i] = roundBF16(dy[i])
			}
			fwd, fmag := productRef(m, rows, cols, func(i, p int) float64 { return float64(xr[i*cols+p]) }, func(p, j int) float64 { return float64(wr[j*cols+p]) })
			bwd, bmag := productRef(m, cols, rows, func(i, p int) float64 { return float64(dyr[i*rows+p]) }, func(p, j int) float64 { return float64(wr[p*cols+j]) })
			for _, ks := range kernelSets() {
				for _, acc := range []bool{false, true} {
					for _, dir := range []struct {
						name      string
						n         int
						run, f32  func([]float32)
						want, mag []float64
					}{
						{"MatMulT", rows, func(d []float32) { matMulT(ks, d, x, q, m, acc, true) }, func(d []float32) { matMulT(ks, d, x, q, m, acc, false) }, fwd, fmag},
						{"MatMul", cols, func(d []float32) { matMul(ks, d, dy, q, m, acc, true) }, func(d []float32) { matMul(ks, d, dy, q, m, acc, false) }, bwd, bmag},
					} {
						tag := fmt.Sprintf("%s %s bf16 W[%d,%d] m=%d acc=%v", ks.name, dir.name, rows, cols, m, acc)
						n := m * dir.n
						init := randNormal(rng, n, 1)
						dst := make([]float32, n+3)
						copy(dst, init)
						dst[n], dst[n+1], dst[n+2] = 12345, 12345, 12345
						dir.run(dst[:n])
						if dst[n] != 12345 || dst[n+1] != 12345 || dst[n+2] != 12345 {
							t.Fatalf("%s: wrote past dst", tag)
						}
						if m <= fusedMaxM {
							exact := append([]float32(nil), init...)
							dir.f32(exact)
							for i := range exact {
								if math.Float32bits(exact[i]) != math.Float32bits(dst[i]) {
									t.Fatalf("%s: [%d] = %v, the float32 path gives %v", tag, i, dst[i], exact[i])
								}
							}
							continue
						}
						want, mag := dir.want, make([]float64, n)
						if acc {
							want = make([]float64, n)
							for i := range want {
								want[i] = dir.want[i] + float64(init[i])
							}
						}
						for i := range mag {
							mag[i] = dir.mag[i] + math.Abs(float64(init[i]))
						}
						closeTo(t, tag, dst[:n], want, mag)
					}
				}
			}
		}
	}
}

// TestMatMulBF16PropagatesNaN: a NaN or Inf in x reaches every output of
// its row through the BF16 kernels (rounding keeps NaN a NaN and Inf an Inf).
func TestMatMulBF16PropagatesNaN(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	rows, cols, m := 64, 128, 16
	q, err := Quantize(randNormal(rng, rows*cols, 0.05), rows, cols)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1))} {
		x := randNormal(rng, m*cols, 1)
		x[5*cols+17] = bad
		dy := randNormal(rng, m*rows, 1)
		dy[9*rows+3] = bad
		for _, ks := range kernelSets() {
			y := make([]float32, m*rows)
			matMulT(ks, y, x, q, m, false, true)
			dx := make([]float32, m*cols)
			matMul(ks, dx, dy, q, m, false, true)
			for i := 0; i < m; i++ {
				for j := 0; j < rows; j++ {
					if v := y[i*rows+j]; (i == 5) != (math.IsNaN(float64(v)) || math.IsInf(float64(v), 0)) {
						t.Fatalf("%s MatMulT with %v at row 5: y[%d,%d] = %v", ks.name, bad, i, j, v)
					}
				}
				for j := 0; j < cols; j++ {
					if v := dx[i*cols+j]; (i == 9) != (math.IsNaN(float64(v)) || math.IsInf(float64(v), 0)) {
						t.Fatalf("%s MatMul with %v at row 9: dx[%d,%d] = %v", ks.name, bad, i, j, v)
					}
				}
			}
		}
	}
}
