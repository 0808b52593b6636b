package nf4

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/lorakit/lorakit/kernels"
)

// Napkin math: GEMV (m = 1) reads every weight once, so it is bound by memory
// bandwidth: float32 moves 4 bytes per weight, NF4 0.516 (codes + 8-bit
// statistics), so at equal bandwidth NF4 could be up to 7.75× faster. The
// matrices below are larger than the caches where it matters (49152×576 is
// 113 MB in float32, 14.6 MB in NF4).

var gemvShapes = []struct{ rows, cols int }{
	{1536, 576},  // SmolLM2-135M gate/up: x[576]·Wᵀ
	{576, 1536},  // down
	{49152, 576}, // an lm_head-sized matrix (vocab 49152)
}

// BenchmarkGEMV runs float32 (kernels.MatMulT, m = 1) and NF4 (MatMulT) on
// the same shape, interleaved in one loop so they see the same machine
// state, and reports each one's time and weight bandwidth and the speed-up.
// "hot" multiplies one matrix again and again (it stays in cache, so NF4 is
// bound by its decoding arithmetic); "x30" cycles through 30 distinct
// matrices as a decode step does through 30 layers (the SmolLM2-135M depth),
// so the weights stream from memory.
func BenchmarkGEMV(b *testing.B) {
	for _, s := range gemvShapes {
		for _, copies := range []int{1, 30} {
			if copies > 1 && s.rows*s.cols > 1<<22 {
				continue // one matrix already exceeds the caches
			}
			rng := rand.New(rand.NewPCG(1, 2))
			ws := make([][]float32, copies)
			qs := make([]*Tensor, copies)
			for c := range ws {
				ws[c] = randNormal(rng, s.rows*s.cols, 0.02)
				q, err := Quantize(ws[c], s.rows, s.cols)
				if err != nil {
					b.Fatal(err)
				}
				qs[c] = q
			}
			x := randNormal(rng, s.cols, 1)
			dst := make([]float32, s.rows)
			name := fmt.Sprintf("%dx%d/hot", s.rows, s.cols)
			if copies > 1 {
				name = fmt.Sprintf("%dx%d/x%d", s.rows, s.cols, copies)
			}
			b.Run(name, func(b *testing.B) {
				var tf, tq time.Duration
				for i := 0; i < b.N; i++ {
					t0 := time.Now()
					for _, w := range ws {
						kernels.MatMulT(dst, x, w, 1, s.rows, s.cols, false)
					}
					t1 := time.Now()
					for _, q := range qs {
						MatMulT(dst, x, q, 1, false)
					}
					tq += time.Since(t1)
					tf += t1.Sub(t0)
				}
				n := float64(b.N * copies)
				b.ReportMetric(tf.Seconds()/n*1e6, "f32-µs/matrix")
				b.ReportMetric(tq.Seconds()/n*1e6, "nf4-µs/matrix")
				b.ReportMetric(float64(4*s.rows*s.cols)*n/tf.Seconds()/1e9, "f32-GB/s")
				b.ReportMetric(float64(qs[0].Bytes())*n/tq.Seconds()/1e9, "nf4-GB/s")
				b.ReportMetric(tf.Seconds()/tq.Seconds(), "nf4-speedup")
			})
		}
	}
}

// BenchmarkGEMVKernels: each NF4 kernel variant alone (go, avx512), m = 1…4.
func BenchmarkGEMVKernels(b *testing.B) {
	for _, s := range gemvShapes {
		rng := rand.New(rand.NewPCG(1, 2))
		q, _ := Quantize(randNormal(rng, s.rows*s.cols, 0.02), s.rows, s.cols)
		for _, ks := range kernelSets() {
			for _, m := range []int{1, 4} {
				x := randNormal(rng, m*s.cols, 1)
				dst := make([]float32, m*s.rows)
				b.Run(fmt.Sprintf("%s/%dx%d/m=%d", ks.name, s.rows, s.cols, m), func(b *testing.B) {
					for i := 0; i < b.N; i++ {
						matMulT(ks, dst, x, q, m, false, false)
					}
					b.ReportMetric(float64(q.Bytes())*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
				})
			}
		}
	}
}

// BenchmarkGEMM: forward (MatMulT) and backward (MatMul) products with
// m = 64 and m = 512 rows, NF4 (float32 and BF16 compute) against float32
// in the same loop.
func BenchmarkGEMM(b *testing.B) {
	for _, s := range gemvShapes[:2] {
		for _, m := range []int{64, 512} {
			rng := rand.New(rand.NewPCG(3, 4))
			w := randNormal(rng, s.rows*s.cols, 0.02)
			q, _ := Quantize(w, s.rows, s.cols)
			x := randNormal(rng, m*s.cols, 1)
			dy := randNormal(rng, m*s.rows, 1)
			y := make([]float32, m*s.rows)
			dx := make([]float32, m*s.cols)
			flops := float64(2 * m * s.rows * s.cols)
			for _, dir := range []string{"fwd", "bwd"} {
				b.Run(fmt.Sprintf("%s/%dx%d/m=%d", dir, s.rows, s.cols, m), func(b *testing.B) {
					var tf, tq, tb time.Duration
					for i := 0; i < b.N; i++ {
						t0 := time.Now()
						if dir == "fwd" {
							MatMulTBF16(y, x, q, m, false)
						} else {
							MatMulBF16(dx, dy, q, m, false)
						}
						tb += time.Since(t0)
						t0 = time.Now()
						if dir == "fwd" {
							kernels.MatMulT(y, x, w, m, s.rows, s.cols, false)
						} else {
							kernels.MatMul(dx, dy, w, m, s.cols, s.rows, false)
						}
						t1 := time.Now()
						if dir == "fwd" {
							MatMulT(y, x, q, m, false)
						} else {
							MatMul(dx, dy, q, m, false)
						}
						tq += time.Since(t1)
						tf += t1.Sub(t0)
					}
					n := float64(b.N)
					b.ReportMetric(flops*n/tf.Seconds()/1e9, "f32-GFLOPS")
					b.ReportMetric(flops*n/tq.Seconds()/1e9, "nf4-GFLOPS")
					b.ReportMetric(flops*n/tb.Seconds()/1e9, "nf4-bf16-GFLOPS")
					b.ReportMetric(tf.Seconds()/tq.Seconds(), "nf4/f32-speed")
					b.ReportMetric(tf.Seconds()/tb.Seconds(), "nf4-bf16/f32-speed")
				})
			}
		}
	}
}

// BenchmarkQuantize and BenchmarkDequantize: whole-matrix conversions.
func BenchmarkQuantize(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	w := randNormal(rng, 1536*576, 0.02)
	b.SetBytes(int64(4 * len(w)))
	for i := 0; i < b.N; i++ {
		if _, err := Quantize(w, 1536, 576); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDequantize(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	w := randNormal(rng, 1536*576, 0.02)
	q, _ := Quantize(w, 1536, 576)
	b.SetBytes(int64(4 * len(w)))
	for i := 0; i < b.N; i++ {
		q.Dequantize(w)
	}
}
