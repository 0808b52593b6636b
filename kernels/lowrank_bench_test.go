package kernels

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkAddLowRank64 is the SGMV step of a decode batch of 64 sequences on
// 64 different adapters (r=16) for the q,k,v,o projections of SmolLM2-135M's
// 30 layers: every adapter weight comes from memory once, as in serving. It
// reports the adapter bytes streamed per second.
func BenchmarkAddLowRank64(b *testing.B) {
	const seqs, r, in = 64, 16, 576
	outs := []int{576, 192, 192, 576}
	rng := rand.New(rand.NewPCG(1, 2))
	type proj struct {
		out  int
		segs []LowRank
	}
	var projs []proj
	bytes := 0
	for l := 0; l < 30; l++ {
		for _, out := range outs {
			p := proj{out: out}
			for s := 0; s < seqs; s++ {
				bt := randSlice(rng, r*out)
				p.segs = append(p.segs, LowRank{Lo: s, Hi: s + 1, A: randSlice(rng, r*in), B: bt, BT: bt, R: r, Scale: 2})
				bytes += 4 * r * (in + out)
			}
			projs = append(projs, p)
		}
	}
	x := randSlice(rng, seqs*in)
	y := make([]float32, seqs*576)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, p := range projs {
			AddLowRank(y[:seqs*p.out], x, in, p.out, p.segs)
		}
	}
	b.ReportMetric(float64(bytes)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
	b.ReportMetric(b.Elapsed().Seconds()*1000/float64(b.N), "ms/step")
}
