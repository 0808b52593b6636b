package llama

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/lorakit/lorakit/lora"
	"github.com/lorakit/lorakit/model"
	"github.com/lorakit/lorakit/nn"
	"github.com/lorakit/lorakit/tensor"
)

// trainGrads runs one LossAndGrad with LoRA dropout on and returns the loss
// and a copy of every LoRA gradient, by module name.
func trainGrads(t *testing.T, m *Model, a *lora.Adapter, tokens, targets [][]int, dropSeed uint64) (float64, int, map[string][2][]float32) {
	t.Helper()
	for li, l := range m.Layers {
		for pi, p := range l.Projections() {
			if p.Linear.LoRA != nil {
				p.Linear.Dropout = 0.3
				p.Linear.DropoutSeed = dropSeed ^ uint64(li)<<8 ^ uint64(pi)
			}
		}
	}
	for _, mod := range a.Modules {
		clear(mod.GradA)
		clear(mod.GradB)
	}
	norm := 0
	for _, tg := range targets {
		for _, v := range tg {
			if v != nn.IgnoreIndex {
				norm++
			}
		}
	}
	sum, n, err := m.LossAndGrad(tokens, targets, float64(norm))
	if err != nil {
		t.Fatal(err)
	}
	g := map[string][2][]float32{}
	for name, mod := range a.Modules {
		g[name] = [2][]float32{slices.Clone(mod.GradA), slices.Clone(mod.GradB)}
	}
	return sum, n, g
}

// randomBatch draws sequences of the given lengths and their shifted labels,
// with a few targets ignored.
func randomBatch(rng *rand.Rand, vocab int, lens ...int) (tokens, targets [][]int) {
	for _, n := range lens {
		ids := make([]int, n)
		for i := range ids {
			ids[i] = rng.IntN(vocab)
		}
		tg := nn.ShiftLabels(ids)
		tg[rng.IntN(n)] = nn.IgnoreIndex
		tokens, targets = append(tokens, ids), append(targets, tg)
	}
	return
}

// TestGradientCheckpointingBitIdentical: with gradient checkpointing the loss
// and every LoRA gradient equal the non-checkpointed pass bit for bit (LoRA
// dropout on, several sequences of different lengths, steps of different
// shapes, switching back and forth), for the family variants and an NF4 base.
func TestGradientCheckpointingBitIdentical(t *testing.T) {
	base := `"hidden_size":64,"intermediate_size":128,"num_hidden_layers":3,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":97,"rms_norm_eps":1e-5`
	for _, tc := range []struct {
		name, cfg string
		nf4, bf16 bool // an NF4 base; its products in BF16
	}{
		{"llama", `{"model_type":"llama",` + base + `}`, false, false},
		{"qwen2-bias-tied", `{"model_type":"qwen2","tie_word_embeddings":true,` + base + `}`, false, false},
		{"qwen3-qknorm", `{"model_type":"qwen3","head_dim":16,` + base + `}`, false, false},
		{"mistral-window", `{"model_type":"mistral","sliding_window":5,` + base + `}`, false, false},
		{"llama-nf4", `{"model_type":"llama",` + base + `}`, true, false},
		{"qwen2-bias-nf4", `{"model_type":"qwen2",` + base + `}`, true, false},
		{"llama-nf4-bf16-compute", `{"model_type":"llama",` + base + `}`, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := model.ParseConfig([]byte(tc.cfg))
			if err != nil {
				t.Fatal(err)
			}
			var m *Model
			if tc.nf4 {
				if m, err = NewRandomNF4(cfg, 3); err != nil {
					t.Fatal(err)
				}
				if !m.Quantized() {
					t.Fatal("NewRandomNF4 made a float32 model")
				}
				if tc.bf16 {
					if err := m.SetNF4ComputeDType("bfloat16"); err != nil {
						t.Fatal(err)
					}
				}
			} else {
				m = NewRandom(cfg, 3)
			}
			a, err := lora.New(lora.Config{PeftType: "LORA", R: 4, Alpha: 8, TargetModules: []string{"all-linear"}}, m, 5)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			for _, mod := range a.Modules {
				for i := range mod.B {
					mod.B[i] = float32(rng.NormFloat64() * 0.1)
				}
				mod.GradA, mod.GradB = make([]float32, len(mod.A)), make([]float32, len(mod.B))
			}
			if err := m.Attach(a); err != nil {
				t.Fatal(err)
			}
			// Steps of different shapes: the GEMM attention path (>= 8 rows)
			// and the row-by-row one, a longer step after a shorter one.
			steps := [][]int{{13, 5, 9}, {21, 3}, {6}}
			for k, lens := range steps {
				tokens, targets := randomBatch(rng, cfg.VocabSize, lens...)
				seed := uint64(100 + k)
				m.SetGradientCheckpointing(false)
				s0, n0, g0 := trainGrads(t, m, a, tokens, targets, seed)
				m.SetGradientCheckpointing(true)
				s1, n1, g1 := trainGrads(t, m, a, tokens, targets, seed)
				s2, _, g2 := trainGrads(t, m, a, tokens, targets, seed) // reused buffers
				m.SetGradientCheckpointing(false)
				s3, _, g3 := trainGrads(t, m, a, tokens, targets, seed) // and back
				if n0 != n1 || math.Float64bits(s0) != math.Float64bits(s1) || math.Float64bits(s1) != math.Float64bits(s2) || math.Float64bits(s0) != math.Float64bits(s3) {
					t.Fatalf("step %d: loss %v (%d targets) without checkpointing, %v (%d), %v with, %v after", k, s0, n0, s1, n1, s2, s3)
				}
				nonzero := 0
				for name, want := range g0 {
					for i, tag := range []string{"A", "B"} {
						for _, got := range [][]float32{g1[name][i], g2[name][i], g3[name][i]} {
							for j := range want[i] {
								if math.Float32bits(got[j]) != math.Float32bits(want[i][j]) {
									t.Fatalf("step %d: %s.lora_%s[%d] = %v with checkpointing, %v without", k, name, tag, j, got[j], want[i][j])
								}
							}
						}
						for _, v := range want[i] {
							if v != 0 {
								nonzero++
							}
						}
					}
				}
				if nonzero == 0 {
					t.Fatal("every gradient is zero")
				}
			}
		})
	}
}

// TestNewRandomNF4 is NewRandom followed by QuantizeNF4, bit for bit.
func TestNewRandomNF4(t *testing.T) {
	cfg, err := model.ParseConfig([]byte(`{"model_type":"qwen2","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":50,"rms_norm_eps":1e-5}`))
	if err != nil {
		t.Fatal(err)
	}
	want := NewRandom(cfg, 9)
	if err := want.QuantizeNF4(); err != nil {
		t.Fatal(err)
	}
	got, err := NewRandomNF4(cfg, 9)
	if err != nil {
		t.Fatal(err)
	}
	same := func(what string, x, y []float32) {
		t.Helper()
		if !slices.Equal(x, y) {
			t.Fatalf("%s differs", what)
		}
	}
	same("embed", got.Embed, want.Embed)
	same("norm", got.Norm, want.Norm)
	same("lm_head", got.LMHead.W, want.LMHead.W)
	dq := func(l *nn.Linear) []float32 {
		w := make([]float32, l.Out*l.In)
		l.Q.Dequantize(w)
		return w
	}
	for li, l := range got.Layers {
		wl := want.Layers[li]
		same("attn norm", l.AttnNorm, wl.AttnNorm)
		same("mlp norm", l.MLPNorm, wl.MLPNorm)
		for pi, p := range l.Projections() {
			wp := wl.Projections()[pi].Linear
			if p.Linear.Q == nil || p.Linear.W != nil {
				t.Fatalf("layer %d %s is not held in NF4 alone", li, p.Name)
			}
			same(p.Name, dq(p.Linear), dq(wp))
			same(p.Name+" bias", p.Linear.B, wp.B)
		}
	}
}

// NewRandomNF4With16 equals NewRandomNF4 followed by ConvertWeights: the
// same embedding and lm_head bits, tied or untied, and the same NF4 codes.
func TestNewRandomNF4With16(t *testing.T) {
	for _, tied := range []bool{true, false} {
		cfg, err := model.ParseConfig([]byte(fmt.Sprintf(`{"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":50,"rms_norm_eps":1e-5,"tie_word_embeddings":%v}`, tied)))
		if err != nil {
			t.Fatal(err)
		}
		want, err := NewRandomNF4(cfg, 9)
		if err != nil {
			t.Fatal(err)
		}
		if err := want.ConvertWeights(tensor.BF16); err != nil {
			t.Fatal(err)
		}
		got, err := NewRandomNF4With16(cfg, 9, tensor.BF16)
		if err != nil {
			t.Fatal(err)
		}
		if got.EmbedType != tensor.BF16 || !slices.Equal(got.Embed16, want.Embed16) || got.Embed != nil {
			t.Fatalf("tied=%v: embedding differs", tied)
		}
		if got.LMHead.W16Type != tensor.BF16 || !slices.Equal(got.LMHead.W16, want.LMHead.W16) {
			t.Fatalf("tied=%v: lm_head differs", tied)
		}
		for li, l := range got.Layers {
			if !slices.Equal(l.Q.Q.Packed, want.Layers[li].Q.Q.Packed) {
				t.Fatalf("tied=%v layer %d: q codes differ", tied, li)
			}
		}
		if got.WeightBytes() != want.WeightBytes() {
			t.Fatalf("tied=%v: %d weight bytes, want %d", tied, got.WeightBytes(), want.WeightBytes())
		}
	}
}
