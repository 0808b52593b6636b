package kvcache

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/lorakit/lorakit/tensor"
)

// refQuantizeBlock is ggml's quantize_row_q8_0_ref for one block of 32, as
// published (ggml-quants.c), in float32 with C's roundf (Go's math.Round:
// half away from zero), plus the format's rule for non-finite inputs: a
// NaN scale and zero bytes.
func refQuantizeBlock(x []float32) (q [32]int8, scale uint16) {
	var amax float32 // absolute max
	for _, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return q, 0x7e00
		}
		amax = max(amax, float32(math.Abs(float64(v))))
	}
	d := amax / ((1 << 7) - 1)
	var id float32
	if d != 0 {
		id = 1.0 / d
	}
	for j := range x {
		x0 := x[j] * id
		q[j] = int8(math.Round(float64(x0)))
	}
	return q, tensor.F32ToF16(d)
}

// q8Blocks are blocks of 32 the quantizer must get exactly right.
func q8Blocks(rng *rand.Rand) [][]float32 {
	var blocks [][]float32
	block := func(f func(j int) float32) {
		b := make([]float32, 32)
		for j := range b {
			b[j] = f(j)
		}
		blocks = append(blocks, b)
	}
	// Random rows at several magnitudes.
	for _, mag := range []float64{1e-6, 1e-3, 0.1, 1, 3, 100, 6e4, 1e6} {
		for r := 0; r < 20; r++ {
			block(func(int) float32 { return float32(rng.NormFloat64() * mag) })
		}
	}
	// Exact halves: amax = 127·2^e makes d = 2^e and id = 2^−e exactly, so
	// x = (k + 0.5)·2^e gives x·id = k + 0.5 (roundf: away from zero, not
	// to even: 2.5 → 3, −2.5 → −3).
	for _, e := range []int{-3, 0, 2} {
		s := float32(math.Ldexp(1, e))
		block(func(j int) float32 {
			if j == 0 {
				return 127 * s
			}
			k := float32(j - 16)
			return (k + 0.5) * s
		})
		block(func(j int) float32 {
			if j == 31 {
				return -127 * s
			}
			return (float32(j%9) - 4.5) * s
		})
	}
	// Zeros, one value only, and signed zeros.
	block(func(int) float32 { return 0 })
	block(func(j int) float32 {
		if j == 7 {
			return -2.5
		}
		return float32(math.Copysign(0, -1))
	})
	// Non-finite values in an otherwise ordinary block.
	for _, special := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		for _, at := range []int{0, 13, 31} {
			block(func(j int) float32 {
				if j == at {
					return special
				}
				return float32(rng.NormFloat64())
			})
		}
	}
	return blocks
}

// TestQuantizeQ8MatchesGGML: the cache's quantizer gives the published
// algorithm's bytes and scale bits exactly, block by block and for a row
// of many blocks at once; dequantized values are within half a step (plus
// the scale's fp16 rounding) of the inputs, and NaN for non-finite blocks.
func TestQuantizeQ8MatchesGGML(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 0))
	blocks := q8Blocks(rng)
	var row []float32
	for _, b := range blocks {
		row = append(row, b...)
	}
	q := make([]int8, len(row))
	scales := make([]uint16, len(blocks))
	QuantizeQ8(q, scales, row)
	deq := make([]float32, len(row))
	DequantizeQ8(deq, q, scales)
	halves := 0
	for bi, b := range blocks {
		wq, ws := refQuantizeBlock(b)
		if scales[bi] != ws {
			t.Fatalf("block %d %v: scale %#04x, want %#04x", bi, b, scales[bi], ws)
		}
		// One block alone, into slices exactly its size.
		oq, os := make([]int8, 32), make([]uint16, 1)
		QuantizeQ8(oq, os, b)
		for j := range b {
			if q[bi*32+j] != wq[j] || oq[j] != wq[j] {
				t.Fatalf("block %d value %d (%v): q %d (alone %d), want %d", bi, j, b[j], q[bi*32+j], oq[j], wq[j])
			}
		}
		if os[0] != ws {
			t.Fatalf("block %d alone: scale %#04x, want %#04x", bi, os[0], ws)
		}
		d := tensor.F16ToF32(ws)
		finite := ws != 0x7e00
		var amax float64
		for _, v := range b {
			amax = math.Max(amax, math.Abs(float64(v)))
		}
		for j, v := range b {
			got := deq[bi*32+j]
			if !finite {
				if !math.IsNaN(float64(got)) {
					t.Fatalf("block %d (non-finite) value %d dequantizes to %v, want NaN", bi, j, got)
				}
				continue
			}
			if x := float64(v) * (127 / amax); x-math.Trunc(x) == 0.5 || x-math.Trunc(x) == -0.5 {
				halves++
			}
			// |d·q − x| ≤ d/2 + 127·|d − amax/127|.
			bound := float64(d)/2 + 127*math.Abs(float64(d)-amax/127) + 1e-30
			if e := math.Abs(float64(got) - float64(v)); e > bound*(1+1e-6) {
				t.Fatalf("block %d value %d: %v dequantizes to %v (error %g > %g)", bi, j, v, got, e, bound)
			}
		}
	}
	if halves < 40 {
		t.Fatalf("only %d values fall exactly half-way: the test lost its rounding cases", halves)
	}
	// Rounding half away from zero, spelled out.
	for _, c := range []struct {
		x    float32
		want int8
	}{{2.5, 3}, {-2.5, -3}, {0.5, 1}, {-0.5, -1}, {1.5, 2}, {126.5, 127}, {0.49999997, 0}, {-0.49999997, 0}} {
		if got := roundQ8(c.x); got != c.want {
			t.Errorf("roundQ8(%v) = %d, want %d", c.x, got, c.want)
		}
	}
}

func TestCheckQ8(t *testing.T) {
	if err := CheckQ8(192, 64); err != nil {
		t.Fatal(err)
	}
	if CheckQ8(192, 48) == nil || CheckQ8(100, 0) == nil || CheckQ8(96, 96+16) == nil {
		t.Fatal("CheckQ8 accepted a width that is not a multiple of 32")
	}
}
