package llama

import (
	"math/rand/v2"
	"testing"

	"github.com/lorakit/lorakit/kvcache"
	"github.com/lorakit/lorakit/lora"
	"github.com/lorakit/lorakit/model"
	"github.com/lorakit/lorakit/nn"
)

// BenchmarkTrainStep: LossAndGrad on random weights of the tiny-brown shape,
// B=8, T=256, r=16 on all seven projections; reports tokens/s.
func BenchmarkTrainStep(b *testing.B) {
	cfg, _ := model.NamedShape("tiny-brown")
	m := NewRandom(cfg, 1)
	a, err := lora.New(lora.Config{PeftType: "LORA", R: 16, Alpha: 32, TargetModules: []string{"all-linear"}}, m, 1)
	if err != nil {
		b.Fatal(err)
	}
	for _, mod := range a.Modules {
		mod.GradA, mod.GradB = make([]float32, len(mod.A)), make([]float32, len(mod.B))
	}
	m.Attach(a)
	rng := rand.New(rand.NewPCG(1, 1))
	B, T := 8, 256
	toks, tg := make([][]int, B), make([][]int, B)
	for i := range toks {
		for j := 0; j < T; j++ {
			toks[i] = append(toks[i], rng.IntN(cfg.VocabSize))
		}
		tg[i] = nn.ShiftLabels(toks[i])
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := m.LossAndGrad(toks, tg, float64(B*(T-1))); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(B*T*b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkForward: the forward pass alone, same shape.
func BenchmarkForward(b *testing.B) {
	cfg, _ := model.NamedShape("tiny-brown")
	m := NewRandom(cfg, 1)
	rng := rand.New(rand.NewPCG(1, 1))
	B, T := 8, 256
	toks := make([][]int, B)
	for i := range toks {
		for j := 0; j < T; j++ {
			toks[i] = append(toks[i], rng.IntN(cfg.VocabSize))
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		caches := make([]*kvcache.Seq, B)
		for j := range caches {
			caches[j] = m.NewCache()
		}
		if _, err := m.Forward(&Step{Caches: caches, Tokens: toks, AllLogits: true}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(B*T*b.N)/b.Elapsed().Seconds(), "tokens/s")
}
