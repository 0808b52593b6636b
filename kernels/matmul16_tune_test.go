//go:build lktune

package kernels

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestTune16 times passes over SmolLM2-135M's weights (m = 1) and prints
// the best pass of each type, which the machine's other load disturbs least.
func TestTune16(t *testing.T) {
	type mat struct {
		w    []uint16
		wf   []float32
		n, k int
	}
	rng := rand.New(rand.NewPCG(1, 2))
	shapes := [][2]int{{576, 576}, {192, 576}, {192, 576}, {576, 576}, {1536, 576}, {1536, 576}, {576, 1536}}
	var mats []mat
	for l := 0; l < 30; l++ {
		for _, s := range shapes {
			mats = append(mats, mat{rand16(rng, halfBF16, s[0]*s[1], 0), randSlice(rng, s[0]*s[1]), s[0], s[1]})
		}
	}
	mats = append(mats, mat{rand16(rng, halfBF16, 49152*576, 0), randSlice(rng, 49152*576), 49152, 576})
	x := randSlice(rng, 1536)
	dst := make([]float32, 49152)
	best := map[string]time.Duration{}
	for r := 0; r < 15; r++ {
		for _, kind := range []half16{halfNone, halfBF16, halfF16} {
			t0 := time.Now()
			for _, m := range mats {
				if kind == halfNone {
					MatMulT(dst[:m.n], x[:m.k], m.wf, 1, m.n, m.k, false)
				} else {
					matMulT16(kind, dst[:m.n], x[:m.k], m.w, 1, m.n, m.k, false)
				}
			}
			d := time.Since(t0)
			name := []string{"f32", "bf16", "f16"}[kind]
			if b, ok := best[name]; !ok || d < b {
				best[name] = d
			}
		}
	}
	for _, name := range []string{"f32", "bf16", "f16"} {
		t.Logf("%s: best %.2f ms/token (%.1f tok/s)", name, best[name].Seconds()*1e3, 1/best[name].Seconds())
	}
}

func TestTune16Prefill(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	shapes := [][2]int{{576, 576}, {192, 576}, {192, 576}, {576, 576}, {1536, 576}, {1536, 576}, {576, 1536}}
	m := 128
	var w16 [][]uint16
	var wf [][]float32
	for _, s := range shapes {
		w16 = append(w16, rand16(rng, halfBF16, s[0]*s[1], 0))
		wf = append(wf, randSlice(rng, s[0]*s[1]))
	}
	x := randSlice(rng, m*1536)
	dst := make([]float32, m*1536)
	best := map[string]time.Duration{}
	for r := 0; r < 10; r++ {
		for _, kind := range []half16{halfNone, halfBF16, halfF16} {
			t0 := time.Now()
			for l := 0; l < 30; l++ {
				for i, s := range shapes {
					if kind == halfNone {
						MatMulT(dst, x, wf[i], m, s[0], s[1], false)
					} else {
						matMulT16(kind, dst, x, w16[i], m, s[0], s[1], false)
					}
				}
			}
			d := time.Since(t0)
			name := []string{"f32", "bf16", "f16"}[kind]
			if b, ok := best[name]; !ok || d < b {
				best[name] = d
			}
		}
	}
	for _, name := range []string{"f32", "bf16", "f16"} {
		t.Logf("prefill %d: %s: best %.1f ms (%.0f tok/s for the projections)", m, name, best[name].Seconds()*1e3, float64(m)/best[name].Seconds())
	}
}
