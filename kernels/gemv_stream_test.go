package kernels

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkGEMVStream runs m=1 products over a model's worth of weights
// (SmolLM2-135M's 30 layers of projections plus the tied head), so every
// weight comes from memory as in decode; it reports the weight bytes read per
// second.
func BenchmarkGEMVStream(b *testing.B) {
	type mat struct {
		w    []float32
		n, k int
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var mats []mat
	shapes := [][2]int{{576, 576}, {192, 576}, {192, 576}, {576, 576}, {1536, 576}, {1536, 576}, {576, 1536}}
	bytes := 0
	for l := 0; l < 30; l++ {
		for _, s := range shapes {
			mats = append(mats, mat{randSlice(rng, s[0]*s[1]), s[0], s[1]})
			bytes += 4 * s[0] * s[1]
		}
	}
	mats = append(mats, mat{randSlice(rng, 49152*576), 49152, 576})
	bytes += 4 * 49152 * 576
	x := randSlice(rng, 1536)
	dst := make([]float32, 49152)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, m := range mats {
			MatMulT(dst[:m.n], x[:m.k], m.w, 1, m.n, m.k, false)
		}
	}
	b.ReportMetric(float64(bytes)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tok/s")
}

func BenchmarkGEMVBig(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	n, k := 49152*4, 576
	w := randSlice(rng, n*k)
	x := randSlice(rng, k)
	dst := make([]float32, n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		MatMulT(dst, x, w, 1, n, k, false)
	}
	b.ReportMetric(float64(4*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
}
