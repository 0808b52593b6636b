package nn

import (
	"math/rand/v2"
	"testing"

	"github.com/lorakit/lorakit/internal/testutil"
	"github.com/lorakit/lorakit/lora"
	"github.com/lorakit/lorakit/tensor"
)

func randVec(rng *rand.Rand, n int, std float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * std)
	}
	return v
}

// TestLinear16MatchesWidened: a Linear holding its weight in BF16 or F16
// computes the forward, dx and the LoRA gradients of the same Linear holding
// the widened weight in float32.
func TestLinear16MatchesWidened(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	in, out, r := 70, 45, 4
	for _, d := range []tensor.DType{tensor.BF16, tensor.F16} {
		for _, rows := range []int{1, 3, 8, 9, 40} {
			h := &Linear{In: in, Out: out, W: randVec(rng, in*out, 0.1), B: randVec(rng, out, 0.1)}
			if err := h.ToDType(d); err != nil {
				t.Fatal(err)
			}
			if h.W != nil || h.DType() != d || h.WeightBytes() != 2*in*out {
				t.Fatalf("%s: not held in 16 bits (%d bytes)", d, h.WeightBytes())
			}
			f := &Linear{In: in, Out: out, W: h.Float32(), B: h.B}
			mod := &lora.Module{R: r, Scale: 0.5, A: randVec(rng, r*in, 0.1), B: randVec(rng, out*r, 0.1)}
			mf := *mod
			for _, m := range []*lora.Module{mod, &mf} {
				m.GradA, m.GradB = make([]float32, r*in), make([]float32, out*r)
			}
			h.LoRA, f.LoRA = mod, &mf
			x, dy := randVec(rng, rows*in, 1), randVec(rng, rows*out, 1)
			yh, yf := make([]float32, rows*out), make([]float32, rows*out)
			h.Forward(yh, x, rows)
			f.Forward(yf, x, rows)
			if msg := testutil.AllClose(yh, yf, 1e-5, 1e-6); msg != "" {
				t.Fatalf("%s rows %d: y: %s", d, rows, msg)
			}
			dxh, dxf := make([]float32, rows*in), make([]float32, rows*in)
			h.Backward(dxh, dy, x, rows, false)
			f.Backward(dxf, dy, x, rows, false)
			for _, c := range [][2][]float32{{dxh, dxf}, {mod.GradA, mf.GradA}, {mod.GradB, mf.GradB}} {
				if msg := testutil.AllClose(c[0], c[1], 1e-5, 1e-6); msg != "" {
					t.Fatalf("%s rows %d: gradient: %s", d, rows, msg)
				}
			}
		}
	}
}

func TestLinearToDType(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	w := randVec(rng, 6*5, 1)
	l := &Linear{In: 5, Out: 6, W: append([]float32(nil), w...)}
	if err := l.ToDType(tensor.BF16); err != nil {
		t.Fatal(err)
	}
	for i, v := range w {
		if l.W16[i] != tensor.F32ToBF16(v) {
			t.Fatalf("[%d] %v held as %#04x", i, v, l.W16[i])
		}
	}
	if err := l.ToDType(tensor.F16); err != nil || l.W16Type != tensor.F16 {
		t.Fatal("BF16 → F16", err)
	}
	l.Dequantize()
	if l.W16 != nil || l.W == nil || l.DType() != tensor.F32 || l.WeightBytes() != 4*30 {
		t.Fatal("Dequantize did not widen the 16-bit weight")
	}
	for i, v := range w {
		want := tensor.F16ToF32(tensor.F32ToF16(tensor.BF16ToF32(tensor.F32ToBF16(v))))
		if l.W[i] != want {
			t.Fatalf("[%d] = %v, want %v", i, l.W[i], want)
		}
	}
	if err := l.ToDType(tensor.I8); err == nil {
		t.Fatal("ToDType(I8) succeeded")
	}
	if err := l.Quantize(); err != nil || l.DType() != "" {
		t.Fatal("Quantize", err)
	}
	if err := l.ToDType(tensor.BF16); err != nil || l.Q != nil || l.W16 == nil {
		t.Fatal("NF4 → BF16", err)
	}
}
