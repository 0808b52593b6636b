package llama

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/lorakit/lorakit/format/gguf"
	"github.com/lorakit/lorakit/internal/testutil"
	"github.com/lorakit/lorakit/kvcache"
	"github.com/lorakit/lorakit/lora"
	"github.com/lorakit/lorakit/model"
	"github.com/lorakit/lorakit/nn"
	"github.com/lorakit/lorakit/tensor"
)

func tiedConfig(t *testing.T) *model.Config {
	t.Helper()
	cfg, err := model.ParseConfig([]byte(`{
		"architectures": ["LlamaForCausalLM"], "model_type": "llama",
		"hidden_size": 48, "intermediate_size": 80, "num_hidden_layers": 2,
		"num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 211,
		"max_position_embeddings": 128, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
		"tie_word_embeddings": true, "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2}`))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// extraBytes is the float32 memory of norms and biases, which stay float32.
func extraBytes(m *Model) int {
	n := len(m.Norm)
	for _, l := range m.Layers {
		n += len(l.AttnNorm) + len(l.MLPNorm) + len(l.QNorm) + len(l.KNorm)
		for _, p := range l.Projections() {
			n += len(p.Linear.B)
		}
	}
	return 4 * n
}

// check16 fails unless every projection, the embedding and lm_head are held
// in dtype d, with lm_head aliasing the embedding when tied.
func check16(t *testing.T, m *Model, d tensor.DType) {
	t.Helper()
	for i, l := range m.Layers {
		for _, p := range l.Projections() {
			if p.Linear.W16 == nil || p.Linear.W16Type != d || p.Linear.W != nil || p.Linear.DType() != d {
				t.Fatalf("layer %d %s is not held in %s", i, p.Name, d)
			}
		}
	}
	if m.Embed16 == nil || m.EmbedType != d || m.Embed != nil {
		t.Fatalf("embedding is not held in %s", d)
	}
	if h := m.LMHead; h.W16 == nil || h.W16Type != d || h.W != nil {
		t.Fatalf("lm_head is not held in %s", d)
	}
	if m.Config.TieEmbeddings && &m.LMHead.W16[0] != &m.Embed16[0] {
		t.Fatal("tied lm_head does not alias the embedding")
	}
	if m.WeightDType() != d {
		t.Fatalf("WeightDType = %s, want %s", m.WeightDType(), d)
	}
}

// logitsOf runs a prefill of more than gemvMaxM tokens (the packed GEMM
// path) for two sequences, then three decode steps (the dot-product path),
// and returns all the logits.
func logitsOf(t *testing.T, m *Model) []float32 {
	t.Helper()
	ids := [][]int{{1, 5, 77, 199, 3, 42, 8, 13, 100, 150, 7}, {2, 9, 31}}
	caches := []*kvcache.Seq{m.NewCache(), m.NewCache()}
	out, err := m.Forward(&Step{Caches: caches, Tokens: ids, AllLogits: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, next := range []int{4, 60, 11} {
		lg, err := m.Forward(&Step{Caches: caches, Tokens: [][]int{{next}, {next + 1}}})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, lg...)
	}
	return out
}

// TestLoad16KeepsWeights16: a model saved as BF16 or F16 loads with its
// weights held in that type (half the bytes), computes the logits of the
// same model loaded and widened to float32, and saves back the same bits.
func TestLoad16KeepsWeights16(t *testing.T) {
	for _, cfg := range []*model.Config{qwen2Config(t), tiedConfig(t)} {
		for _, d := range []tensor.DType{tensor.BF16, tensor.F16} {
			dir := t.TempDir()
			if err := NewRandom(cfg, 11).Save(dir, SaveOptions{DType: d}); err != nil {
				t.Fatal(err)
			}
			m, err := Load(model.Dir(dir))
			if err != nil {
				t.Fatal(err)
			}
			check16(t, m, d)
			ref, err := Load(model.Dir(dir))
			if err != nil {
				t.Fatal(err)
			}
			if err := ref.ConvertWeights(tensor.F32); err != nil {
				t.Fatal(err)
			}
			if ref.WeightDType() != tensor.F32 || ref.Embed == nil || ref.LMHead.W == nil {
				t.Fatal("ConvertWeights(F32) left 16-bit weights")
			}
			b16, b32, e := m.WeightBytes(), ref.WeightBytes(), extraBytes(m)
			if b16-e != (b32-e)/2 {
				t.Fatalf("%s %s: %d bytes held, float32 %d (norms and biases %d): want half the weights", cfg.ModelType, d, b16, b32, e)
			}
			got, want := logitsOf(t, m), logitsOf(t, ref)
			if msg := testutil.AllClose(got, want, 1e-5, 1e-6); msg != "" {
				t.Fatalf("%s %s: logits: %s", cfg.ModelType, d, msg)
			}
			// Saving writes the held type back, bit for bit.
			dir2 := t.TempDir()
			if err := m.Save(dir2, SaveOptions{}); err != nil {
				t.Fatal(err)
			}
			back, err := Load(model.Dir(dir2))
			if err != nil {
				t.Fatal(err)
			}
			check16(t, back, d)
			a, b := m.Tensors(), back.Tensors()
			for i := range a {
				if a[i].Name != b[i].Name || len(a[i].Data) != len(b[i].Data) {
					t.Fatalf("tensor %d: %s vs %s", i, a[i].Name, b[i].Name)
				}
				for j := range a[i].Data {
					if math.Float32bits(a[i].Data[j]) != math.Float32bits(b[i].Data[j]) {
						t.Fatalf("%s[%d]: %v saved as %v", a[i].Name, j, a[i].Data[j], b[i].Data[j])
					}
				}
			}
		}
	}
}

// TestConvertWeights: BF16 rounds to nearest even (as torch), F16 too, back
// to F32 is exact, and the model keeps computing the same function.
func TestConvertWeights(t *testing.T) {
	cfg := tiedConfig(t)
	m := NewRandom(cfg, 5)
	orig := m.Tensors()
	for _, d := range []tensor.DType{tensor.BF16, tensor.F16, tensor.BF16} {
		if err := m.ConvertWeights(d); err != nil {
			t.Fatal(err)
		}
		check16(t, m, d)
	}
	for _, nt := range m.Tensors() {
		for _, o := range orig {
			if o.Name != nt.Name || nt.Bits == nil {
				continue
			}
			for j, v := range o.Data {
				// BF16, F16, BF16 again: compare with the same path.
				want := round3(v)
				if nt.Bits[j] != want {
					t.Fatalf("%s[%d]: %v held as %#04x, want %#04x", nt.Name, j, v, nt.Bits[j], want)
				}
			}
		}
	}
	ref := NewRandom(cfg, 5)
	for _, l := range ref.Layers {
		for _, p := range l.Projections() {
			for j, v := range p.Linear.W {
				p.Linear.W[j] = tensor.BF16ToF32(round3(v))
			}
		}
	}
	for j, v := range ref.Embed {
		ref.Embed[j] = tensor.BF16ToF32(round3(v))
	}
	if msg := testutil.AllClose(logitsOf(t, m), logitsOf(t, ref), 1e-5, 1e-6); msg != "" {
		t.Fatalf("logits: %s", msg)
	}
	if err := m.ConvertWeights(tensor.F32); err != nil {
		t.Fatal(err)
	}
	if m.WeightDType() != tensor.F32 || &m.LMHead.W[0] != &m.Embed[0] {
		t.Fatal("F32 conversion did not widen every weight or broke the tie")
	}
	if err := m.ConvertWeights(tensor.I8); err == nil {
		t.Fatal("ConvertWeights(I8) succeeded")
	}
}

// round3 rounds v to BF16, then F16, then BF16.
func round3(v float32) uint16 {
	v = tensor.BF16ToF32(tensor.F32ToBF16(v))
	v = tensor.F16ToF32(tensor.F32ToF16(v))
	return tensor.F32ToBF16(v)
}

// Test16BitBaseLoRA: with the projections held in BF16, LoRA training (the
// loss and every gradient, through dX = dY·W over the 16-bit weights) and
// merging match the same model with the weights widened to float32.
func Test16BitBaseLoRA(t *testing.T) {
	dir := testutil.Path("testdata", "oracle", "tiny-brown")
	load := func(d tensor.DType) (*Model, *lora.Adapter) {
		m, err := Load(model.Dir(filepath.Join(dir, "../../../models/tiny-brown")))
		if err != nil {
			t.Fatal(err)
		}
		// The reference holds the BF16 values in float32.
		if err := m.ConvertWeights(tensor.BF16); err != nil {
			t.Fatal(err)
		}
		if err := m.ConvertWeights(d); err != nil {
			t.Fatal(err)
		}
		a, err := lora.Load(filepath.Join(dir, "adapter"))
		if err != nil {
			t.Fatal(err)
		}
		for _, mod := range a.Modules {
			mod.GradA, mod.GradB = make([]float32, len(mod.A)), make([]float32, len(mod.B))
		}
		return m, a
	}
	h, ha := load(tensor.BF16)
	ref, ra := load(tensor.F32)
	check16(t, h, tensor.BF16)
	h.Attach(ha)
	ref.Attach(ra)
	ids := [][]int{{0, 464, 1201, 318, 257, 1332, 286, 262, 3390, 11, 290, 340}, {0, 37, 91, 1003, 77}}
	var targets [][]int
	for _, r := range ids {
		targets = append(targets, nn.ShiftLabels(r))
	}
	sh, n, err := h.LossAndGrad(ids, targets, 15)
	if err != nil {
		t.Fatal(err)
	}
	sr, _, _ := ref.LossAndGrad(ids, targets, 15)
	if math.Abs(sh-sr)/float64(n) > 1e-5 {
		t.Fatalf("loss %v vs %v", sh/float64(n), sr/float64(n))
	}
	for name, m := range ha.Modules {
		r := ra.Modules[name]
		for _, pair := range [][2][]float32{{m.GradA, r.GradA}, {m.GradB, r.GradB}} {
			if msg := testutil.AllClose(pair[0], pair[1], 1e-4, 1e-7); msg != "" {
				t.Fatalf("%s: gradient: %s", name, msg)
			}
		}
	}
	// Merging into the 16-bit base widens the merged projections.
	h.Detach()
	ref.Detach()
	if err := h.Merge(ha); err != nil {
		t.Fatal(err)
	}
	if err := ref.Merge(ra); err != nil {
		t.Fatal(err)
	}
	for name := range ha.Modules {
		if l := h.linearByName(name); l.W16 != nil || l.W == nil {
			t.Fatalf("%s: merged projection still 16-bit", name)
		}
	}
	if h.Embed16 == nil {
		t.Fatal("merging widened the embedding")
	}
	if msg := testutil.AllClose(logitsOf(t, h), logitsOf(t, ref), 1e-5, 1e-6); msg != "" {
		t.Fatalf("merged logits: %s", msg)
	}
	if err := h.Unmerge(ha); err != nil {
		t.Fatal(err)
	}
}

// TestGGUF16KeepsWeights16: a GGUF file with F16 matrices (q and k rows
// permuted, as llama.cpp writes them) loads with them held in F16, un-permuted
// in their own type.
func TestGGUF16KeepsWeights16(t *testing.T) {
	for _, tie := range []string{`, "tie_word_embeddings": true`, `, "tie_word_embeddings": false`} {
		cfg := synthLlamaConfig(t, tie)
		m0 := NewRandom(cfg, 9)
		if err := m0.ConvertWeights(tensor.F16); err != nil {
			t.Fatal(err)
		}
		enc := func(name string, shape []int, x []float32) gguf.WriteTensor {
			if len(shape) == 2 {
				return gguf.F16Tensor(name, shape, x)
			}
			return gguf.F32Tensor(name, shape, x)
		}
		kv := append(archKV("llama", cfg), spmVocabKV()...)
		m, _, err := LoadGGUF(writeGGUF(t, kv, modelTensors(t, m0, true, enc)))
		if err != nil {
			t.Fatal(err)
		}
		check16(t, m, tensor.F16)
		sameTensors(t, m, m0)
		sameLogits(t, m, m0, []int{1, 5, 9, 3, 7, 2, 11, 4, 6, 8})
	}
}
