package engine

import (
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/lorakit/lorakit/kvcache"
	"github.com/lorakit/lorakit/lora"
	"github.com/lorakit/lorakit/model"
	"github.com/lorakit/lorakit/model/llama"
)

// BenchmarkMixedAdapters compares one batched decode step of 64 sequences
// (the scheduler's steady state) in three batches: all on the base model,
// all on one adapter, each on its own adapter (64 segments). The three are
// interleaved step by step in one run, so load from other processes on a
// shared machine falls on all of them alike; the ratios are the figures to
// read (the targets: many/one >= 0.85, many/base >= 0.8 in throughput,
// i.e. one/many and base/many step-time ratios). Shape: smollm2-135m random
// weights, r=16 on q,k,v,o, context of 32 positions; LORAKIT_BENCH_SHAPE
// picks another named shape.
func BenchmarkMixedAdapters(b *testing.B) {
	shape := os.Getenv("LORAKIT_BENCH_SHAPE")
	if shape == "" {
		shape = "smollm2-135m"
	}
	cfg, err := model.NamedShape(shape)
	if err != nil {
		b.Fatal(err)
	}
	const batch, ctx = 64, 32
	m := llama.NewRandom(cfg, 1)
	ads := make([]*lora.Adapter, batch)
	for i := range ads {
		if ads[i], err = RandomAdapter(m, 16, lora.Attention, uint64(i+1), 0.02); err != nil {
			b.Fatal(err)
		}
	}
	one := make([]*lora.Adapter, batch)
	for i := range one {
		one[i] = ads[0]
	}
	rng := rand.New(rand.NewPCG(1, 2))
	caches := make([]*kvcache.Seq, batch)
	prompts := make([][]int, batch)
	next := make([][]int, batch)
	for i := range caches {
		caches[i] = m.NewCache()
		prompts[i] = make([]int, ctx)
		for j := range prompts[i] {
			prompts[i][j] = rng.IntN(cfg.VocabSize)
		}
		next[i] = []int{rng.IntN(cfg.VocabSize)}
	}
	if _, err := m.Forward(&llama.Step{Caches: caches, Tokens: prompts, Adapters: make([]*lora.Adapter, batch)}); err != nil {
		b.Fatal(err)
	}
	configs := []struct {
		name string
		ads  []*lora.Adapter
	}{{"base", make([]*lora.Adapter, batch)}, {"one", one}, {"many", ads}}
	spent := make([]time.Duration, len(configs))
	step := func(c int) {
		t0 := time.Now()
		if _, err := m.Forward(&llama.Step{Caches: caches, Tokens: next, Adapters: configs[c].ads}); err != nil {
			b.Fatal(err)
		}
		spent[c] += time.Since(t0)
		for _, kc := range caches {
			kc.Truncate(ctx) // decode at the same position every time
		}
	}
	for c := range configs {
		step(c) // warm-up
		spent[c] = 0
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := range configs {
			step((i + k) % len(configs)) // rotate the order too
		}
	}
	per := func(c int) float64 { return spent[c].Seconds() * 1000 / float64(b.N) }
	for c, cf := range configs {
		b.ReportMetric(per(c), cf.name+"-ms/step")
	}
	b.ReportMetric(per(1)/per(2), "many/one")
	b.ReportMetric(per(0)/per(2), "many/base")
	if testing.Verbose() {
		fmt.Printf("%s, batch %d: base %.1f ms, one adapter %.1f ms, 64 adapters %.1f ms per step; throughput 64 vs one %.2f×, vs base %.2f×\n",
			shape, batch, per(0), per(1), per(2), per(1)/per(2), per(0)/per(2))
	}
}
