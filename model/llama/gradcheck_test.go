package llama

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/lorakit/lorakit/lora"
	"github.com/lorakit/lorakit/model"
	"github.com/lorakit/lorakit/nn"
)

// ref64 is an independent, naive float64 evaluation of the same model + LoRA
// loss, written from the HF definitions, used for finite differences.
type ref64 struct {
	m *Model
	a *lora.Adapter
}

func (r ref64) linear(l *nn.Linear, name string, x []float64, rows int) []float64 {
	y := make([]float64, rows*l.Out)
	mod := r.a.Modules[name]
	for i := 0; i < rows; i++ {
		xi := x[i*l.In : (i+1)*l.In]
		var u []float64
		if mod != nil {
			u = make([]float64, mod.R)
			for k := 0; k < mod.R; k++ {
				for j, v := range xi {
					u[k] += float64(mod.A[k*l.In+j]) * v
				}
			}
		}
		for o := 0; o < l.Out; o++ {
			s := 0.0
			for j, v := range xi {
				s += float64(l.W[o*l.In+j]) * v
			}
			if l.B != nil {
				s += float64(l.B[o])
			}
			if mod != nil {
				for k := 0; k < mod.R; k++ {
					s += float64(mod.Scale) * float64(mod.B[o*mod.R+k]) * u[k]
				}
			}
			y[o+i*l.Out] = s
		}
	}
	return y
}

func rms64(x []float64, g []float32, rows, d int, eps float64) []float64 {
	y := make([]float64, len(x))
	for i := 0; i < rows; i++ {
		ss := 0.0
		for j := 0; j < d; j++ {
			ss += x[i*d+j] * x[i*d+j]
		}
		s := 1 / math.Sqrt(ss/float64(d)+eps)
		for j := 0; j < d; j++ {
			y[i*d+j] = float64(g[j]) * x[i*d+j] * s
		}
	}
	return y
}

func (r ref64) loss(ids, targets []int) float64 {
	c := r.m.Config
	D, T, hd := c.HiddenSize, len(ids), c.HeadDim
	x := make([]float64, T*D)
	for t, id := range ids {
		for j := 0; j < D; j++ {
			x[t*D+j] = float64(r.m.Embed[id*D+j])
		}
	}
	inv := c.InvFreq()
	rope := func(v []float64, heads int) {
		for t := 0; t < T; t++ {
			for h := 0; h < heads; h++ {
				row := v[(t*heads+h)*hd : (t*heads+h+1)*hd]
				for j := 0; j < hd/2; j++ {
					ang := float64(float32(t) * inv[j])
					a, b := row[j], row[j+hd/2]
					row[j] = a*math.Cos(ang) - b*math.Sin(ang)
					row[j+hd/2] = b*math.Cos(ang) + a*math.Sin(ang)
				}
			}
		}
	}
	for li, l := range r.m.Layers {
		p := fmt.Sprintf("model.layers.%d.", li)
		xn := rms64(x, l.AttnNorm, T, D, c.RMSNormEps)
		q := r.linear(l.Q, p+"self_attn.q_proj", xn, T)
		k := r.linear(l.K, p+"self_attn.k_proj", xn, T)
		v := r.linear(l.V, p+"self_attn.v_proj", xn, T)
		if c.QKNorm {
			q = rms64(q, l.QNorm, T*c.NumHeads, hd, c.RMSNormEps)
			k = rms64(k, l.KNorm, T*c.NumKVHeads, hd, c.RMSNormEps)
		}
		rope(q, c.NumHeads)
		rope(k, c.NumKVHeads)
		att := make([]float64, T*c.QDim())
		for h := 0; h < c.NumHeads; h++ {
			g := h / (c.NumHeads / c.NumKVHeads)
			for t := 0; t < T; t++ {
				w := make([]float64, T)
				sum := 0.0
				for s := 0; s <= t; s++ {
					if c.SlidingWindow > 0 && t-s >= c.SlidingWindow {
						continue
					}
					dot := 0.0
					for j := 0; j < hd; j++ {
						dot += q[(t*c.NumHeads+h)*hd+j] * k[(s*c.NumKVHeads+g)*hd+j]
					}
					w[s] = math.Exp(dot / math.Sqrt(float64(hd)))
					sum += w[s]
				}
				for s := range w {
					for j := 0; j < hd; j++ {
						att[(t*c.NumHeads+h)*hd+j] += w[s] / sum * v[(s*c.NumKVHeads+g)*hd+j]
					}
				}
			}
		}
		o := r.linear(l.O, p+"self_attn.o_proj", att, T)
		for i := range x {
			x[i] += o[i]
		}
		xn = rms64(x, l.MLPNorm, T, D, c.RMSNormEps)
		gate := r.linear(l.Gate, p+"mlp.gate_proj", xn, T)
		up := r.linear(l.Up, p+"mlp.up_proj", xn, T)
		for i, z := range gate {
			gate[i] = z / (1 + math.Exp(-z)) * up[i]
		}
		down := r.linear(l.Down, p+"mlp.down_proj", gate, T)
		for i := range x {
			x[i] += down[i]
		}
	}
	xn := rms64(x, r.m.Norm, T, D, c.RMSNormEps)
	logits := r.linear(r.m.LMHead, "lm_head", xn, T)
	V := c.VocabSize
	total, n := 0.0, 0
	for t, tg := range targets {
		if tg == nn.IgnoreIndex {
			continue
		}
		row := logits[t*V : (t+1)*V]
		mx := math.Inf(-1)
		for _, z := range row {
			mx = math.Max(mx, z)
		}
		s := 0.0
		for _, z := range row {
			s += math.Exp(z - mx)
		}
		total += mx + math.Log(s) - row[tg]
		n++
	}
	return total / float64(n)
}

// TestBackwardFiniteDifferences checks LossAndGrad's LoRA gradients against
// central finite differences of the float64 reference loss, on micro models
// of every family variant (biases, q/k norm, sliding window, GQA, rsLoRA).
func TestBackwardFiniteDifferences(t *testing.T) {
	base := `"hidden_size":16,"intermediate_size":24,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":32,"rms_norm_eps":1e-5`
	for _, tc := range []struct{ name, cfg string }{
		{"llama", `{"model_type":"llama",` + base + `}`},
		{"qwen2-bias-tied", `{"model_type":"qwen2","tie_word_embeddings":true,` + base + `}`},
		{"qwen3-qknorm", `{"model_type":"qwen3","head_dim":8,` + base + `}`},
		{"mistral-window", `{"model_type":"mistral","sliding_window":3,` + base + `}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := model.ParseConfig([]byte(tc.cfg))
			if err != nil {
				t.Fatal(err)
			}
			m := NewRandom(cfg, 11)
			// Larger weights than HF's init so every path carries signal.
			for _, nt := range m.Tensors() {
				if len(nt.Shape) == 2 {
					for i := range nt.Data {
						nt.Data[i] *= 15
					}
				}
			}
			lc := lora.Config{PeftType: "LORA", R: 3, Alpha: 5, TargetModules: []string{"all-linear"}, UseRSLoRA: tc.name == "qwen3-qknorm"}
			a, err := lora.New(lc, m, 5)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(9, 9))
			for _, mod := range a.Modules {
				for i := range mod.B {
					mod.B[i] = float32(rng.NormFloat64() * 0.3)
				}
				mod.GradA, mod.GradB = make([]float32, len(mod.A)), make([]float32, len(mod.B))
			}
			if err := m.Attach(a); err != nil {
				t.Fatal(err)
			}
			ids := []int{3, 17, 5, 29, 0, 8, 8, 31}
			targets := []int{nn.IgnoreIndex, 5, 29, 0, 8, 8, 31, nn.IgnoreIndex}
			sum, n, err := m.LossAndGrad([][]int{ids}, [][]int{targets}, 6)
			if err != nil {
				t.Fatal(err)
			}
			ref := ref64{m, a}
			if l := ref.loss(ids, targets); math.Abs(l-sum/float64(n)) > 1e-4*math.Abs(l) {
				t.Fatalf("float32 loss %.7f vs float64 reference %.7f", sum/float64(n), l)
			}
			checked := 0
			for _, name := range a.Names() {
				mod := a.Modules[name]
				for _, which := range []struct {
					p, g []float32
					tag  string
				}{{mod.A, mod.GradA, "A"}, {mod.B, mod.GradB, "B"}} {
					for trial := 0; trial < 3; trial++ {
						i := rng.IntN(len(which.p))
						orig := which.p[i]
						const h = 1e-3
						which.p[i] = orig + h
						lp := ref.loss(ids, targets)
						which.p[i] = orig - h
						lm := ref.loss(ids, targets)
						which.p[i] = orig
						fd := (lp - lm) / float64((orig+h)-(orig-h)) // the float32 step actually taken
						got := float64(which.g[i])
						if math.Abs(got-fd) > 2e-3*math.Abs(fd)+1e-5 {
							t.Errorf("%s.lora_%s[%d]: analytic %.6g, finite difference %.6g", name, which.tag, i, got, fd)
						}
						checked++
					}
				}
			}
			t.Logf("%d gradient elements checked", checked)
		})
	}
}
