package nf4

import (
	"math"
	"math/rand/v2"
	"testing"
)

// nf4MSETheory is the expected squared error per weight, in units of σ², of
// NF4 with exact absmax on blocks of 64 independent N(0, σ²) weights,
// computed by numerical integration from the code table alone:
//
//	M = max|x| has density 64·2φ(m)·F(m)^63, F(m) = erf(m/√2); given M = m
//	the block's maximum is stored exactly (code ±1) and the other 63 values
//	are N(0,1) restricted to |x| < m, each quantized to m·c(x/m), c the
//	nearest code. So
//
//	MSE = 63/64 · ∫ 128 φ(m) F(m)^62 · ∫_{-m}^{m} (x − m·c(x/m))² φ(x) dx dm
//	    = 63/64 · ∫ 128 φ(m) F(m)^62 · m³ ∫_{-1}^{1} (u − c(u))² φ(m·u) du dm.
//
// The inner integral runs cell by cell between the exact midpoints of
// neighbouring codes (Simpson's rule on a smooth integrand); the outer one
// by Simpson's rule on [0, 12].
func nf4MSETheory() float64 {
	phi := func(x float64) float64 { return math.Exp(-x*x/2) / math.Sqrt(2*math.Pi) }
	simpson := func(f func(float64) float64, a, b float64, n int) float64 {
		h := (b - a) / float64(n)
		s := f(a) + f(b)
		for i := 1; i < n; i++ {
			w := 2.0
			if i%2 == 1 {
				w = 4
			}
			s += w * f(a+float64(i)*h)
		}
		return s * h / 3
	}
	edges := []float64{-1}
	for k := 0; k < 15; k++ {
		edges = append(edges, (nf4Values[k]+nf4Values[k+1])/2)
	}
	edges = append(edges, 1)
	inner := func(m float64) float64 {
		var s float64
		for k := 0; k < 16; k++ {
			c := nf4Values[k]
			s += simpson(func(u float64) float64 { return (u - c) * (u - c) * phi(m*u) }, edges[k], edges[k+1], 64)
		}
		return s
	}
	outer := func(m float64) float64 {
		return 128 * phi(m) * math.Pow(math.Erf(m/math.Sqrt2), 62) * m * m * m * inner(m)
	}
	return 63.0 / 64 * simpson(outer, 0, 12, 2400)
}

// TestGaussianMSEMatchesTheory: the measured dequantization error of
// N(0, σ²) weights is within 1% of nf4MSETheory, without double quantization
// (the case the theory describes) and with it (whose 8-bit absmax adds a
// little error, which must stay inside the same 1%).
func TestGaussianMSEMatchesTheory(t *testing.T) {
	theory := nf4MSETheory()
	const sigma = 0.02
	rows, cols := 4096, 1024 // 4M weights, 65536 blocks
	rng := rand.New(rand.NewPCG(11, 12))
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(rng.NormFloat64() * sigma)
	}
	deq := make([]float32, len(w))
	for _, noDQ := range []bool{true, false} {
		q, err := QuantizeWith(w, rows, cols, Options{NoDoubleQuant: noDQ})
		if err != nil {
			t.Fatal(err)
		}
		q.Dequantize(deq)
		var sum, sum2 float64
		for i, v := range w {
			e := float64(deq[i]) - float64(v)
			e2 := e * e / (sigma * sigma)
			sum += e2
			sum2 += e2 * e2
		}
		n := float64(len(w))
		mse := sum / n
		se := math.Sqrt((sum2/n - mse*mse) / n) // Monte-Carlo standard error
		rel := mse/theory - 1
		t.Logf("double quant %v: measured MSE %.6f σ² (± %.6f), theory %.6f σ², relative difference %+.3f%%", !noDQ, mse, se, theory, 100*rel)
		if math.Abs(rel) > 0.01 {
			t.Errorf("double quant %v: MSE %.6f σ² differs from theory %.6f σ² by %.2f%% (> 1%%)", !noDQ, mse, theory, 100*rel)
		}
		if se > 0.002*theory {
			t.Errorf("Monte-Carlo error %.3g too large to test 1%%", se)
		}
	}
}
