package engine

import (
	"math"
	"testing"

	"github.com/lorakit/lorakit/kvcache"
	"github.com/lorakit/lorakit/model/llama"
	"github.com/lorakit/lorakit/tensor"
)

// greedyWith decodes n tokens greedily after prompt with a cache of type dt
// (prefill in one step, then one token per step), returning the tokens and
// every step's logits.
func greedyWith(t *testing.T, m *llama.Model, dt tensor.DType, prompt []int, n int) ([]int, [][]float32) {
	t.Helper()
	cache := kvcache.NewOf(dt, len(m.Layers), m.Config.KVDim())
	var toks []int
	var all [][]float32
	next := prompt
	for len(toks) < n {
		logits, err := m.Forward(&llama.Step{Caches: []*kvcache.Seq{cache}, Tokens: [][]int{next}})
		if err != nil {
			t.Fatal(err)
		}
		// A copy: the model reuses its logits buffer from step to step.
		all = append(all, append([]float32(nil), logits...))
		best := argmax(logits)
		toks = append(toks, best)
		next = []int{best}
	}
	return toks, all
}

// TestKV16CacheMatchesFloat32: on tiny-brown (float32 weights), greedy
// generation with a BF16 or F16 KV cache gives the float32 cache's tokens,
// and its logits stay within a small distance of the float32 ones. Rounding
// k and v to 16 bits perturbs each score by about 2⁻⁹ (BF16) or 2⁻¹² (F16)
// of |q|·|k|; the bounds below are 2.4–3.4× what this model shows (max
// |Δlogit| 0.0149 with BF16, 0.0025 with F16, logits up to ±14), and fail
// by far if keys or values were misplaced, rounded in the wrong format or
// stale. The prompt (checked to be at least 8 tokens) takes the prefill
// GEMM path, the rest the decode path.
func TestKV16CacheMatchesFloat32(t *testing.T) {
	m := loadTinyBrown(t)
	tok := tinyBrownTokenizer(t)
	prompt := append([]int{0}, tok.Encode("The jury said that the city of Atlanta", true)...)
	if len(prompt) < 8 {
		t.Fatalf("prompt of %d tokens: the prefill GEMM path needs 8", len(prompt))
	}
	const n = 48
	want, wantLogits := greedyWith(t, m, tensor.F32, prompt, n)
	for _, c := range []struct {
		dt  tensor.DType
		tol float64
	}{{tensor.BF16, 0.05}, {tensor.F16, 0.006}} {
		got, logits := greedyWith(t, m, c.dt, prompt, n)
		var worst, scale float64
		for s := range logits {
			for i, v := range logits[s] {
				worst = math.Max(worst, math.Abs(float64(v-wantLogits[s][i])))
				scale = math.Max(scale, math.Abs(float64(wantLogits[s][i])))
			}
		}
		same := 0
		for same < n && got[same] == want[same] {
			same++
		}
		t.Logf("%s: %d/%d tokens as float32, max |Δlogit| %.4g (max |logit| %.3g)", c.dt, same, n, worst, scale)
		if same < n {
			t.Errorf("%s cache: token %d is %d, float32 cache gives %d", c.dt, same, got[same], want[same])
		}
		if worst > c.tol {
			t.Errorf("%s cache: max |Δlogit| %.4g over %d steps, want ≤ %g", c.dt, worst, n, c.tol)
		}
	}
}
