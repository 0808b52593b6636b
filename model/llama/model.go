// Package llama is the Llama family (Llama 2/3, TinyLlama, SmolLM, Mistral,
// Qwen2, Qwen3) with Hugging Face LlamaForCausalLM semantics, driven by config.
package llama

import (
	"fmt"
	"strings"

	"github.com/lorakit/lorakit/format/safetensors"
	"github.com/lorakit/lorakit/kernels"
	"github.com/lorakit/lorakit/model"
	"github.com/lorakit/lorakit/nn"
	"github.com/lorakit/lorakit/quant/nf4"
	"github.com/lorakit/lorakit/tensor"
)

// Model holds the weights of a decoder-only Llama-family model: norms and
// biases in float32, the embedding and the projections in float32 or, as a
// BF16 or F16 checkpoint stores them, in 16 bits (or NF4 for projections).
type Model struct {
	Config *model.Config
	Embed  []float32 // [vocab, hidden]; nil when held in Embed16
	// Embed16 is the embedding [vocab, hidden] as raw 16-bit floats of type
	// EmbedType (BF16 or F16), or nil; a lookup widens one row.
	Embed16   []uint16
	EmbedType tensor.DType
	Layers    []*Layer
	Norm      []float32  // [hidden], the final RMSNorm gain
	LMHead    *nn.Linear // [vocab, hidden]; W (or W16) aliases Embed (Embed16) when embeddings are tied

	invFreq  []float32
	rope     *kernels.RopeTable
	scratch  scratch
	acts     Activations // reused by LossAndGrad
	bscratch backwardScratch
}

// Layer is one decoder block: pre-norm attention then pre-norm SwiGLU MLP.
type Layer struct {
	AttnNorm, MLPNorm []float32 // [hidden]
	QNorm, KNorm      []float32 // [head_dim], Qwen3 only
	Q, K, V, O        *nn.Linear
	Gate, Up, Down    *nn.Linear
}

// Projections lists the seven linear layers by their Hugging Face module name,
// the names LoRA targets use.
func (l *Layer) Projections() []NamedLinear {
	return []NamedLinear{
		{"self_attn.q_proj", l.Q}, {"self_attn.k_proj", l.K}, {"self_attn.v_proj", l.V}, {"self_attn.o_proj", l.O},
		{"mlp.gate_proj", l.Gate}, {"mlp.up_proj", l.Up}, {"mlp.down_proj", l.Down},
	}
}

// NamedLinear pairs a projection with its module path inside a layer.
type NamedLinear struct {
	Name   string
	Linear *nn.Linear
}

// Load reads config.json and the safetensors weights of a model folder.
func Load(src model.Source) (*Model, error) {
	cfg, err := model.ReadConfig(src)
	if err != nil {
		return nil, err
	}
	set, err := src.Weights()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src.Name(), err)
	}
	defer set.Close()
	m, err := FromTensors(cfg, set)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src.Name(), err)
	}
	return m, nil
}

// TensorSource is what FromTensors reads weights from (a safetensors set).
type TensorSource interface {
	Tensor(name string) (safetensors.Tensor, bool)
	Names() []string
}

// FromTensors builds a model from HF-named tensors, checking every shape.
func FromTensors(cfg *model.Config, ts TensorSource) (*Model, error) {
	c := cfg
	D, F, V := c.HiddenSize, c.IntermediateSize, c.VocabSize
	r := &reader{ts: ts, used: map[string]bool{}}
	m := &Model{Config: c}
	m.Embed, m.Embed16, m.EmbedType = r.weight("model.embed_tokens.weight", V, D)
	m.Norm = r.get("model.norm.weight", D)
	for i := 0; i < c.NumLayers; i++ {
		p := fmt.Sprintf("model.layers.%d.", i)
		l := &Layer{
			AttnNorm: r.get(p+"input_layernorm.weight", D),
			MLPNorm:  r.get(p+"post_attention_layernorm.weight", D),
			Q:        r.linear(p+"self_attn.q_proj", c.QDim(), D, c.AttentionBias),
			K:        r.linear(p+"self_attn.k_proj", c.KVDim(), D, c.AttentionBias),
			V:        r.linear(p+"self_attn.v_proj", c.KVDim(), D, c.AttentionBias),
			O:        r.linear(p+"self_attn.o_proj", D, c.QDim(), c.OutputBias),
			Gate:     r.linear(p+"mlp.gate_proj", F, D, false),
			Up:       r.linear(p+"mlp.up_proj", F, D, false),
			Down:     r.linear(p+"mlp.down_proj", D, F, false),
		}
		if c.QKNorm {
			l.QNorm = r.get(p+"self_attn.q_norm.weight", c.HeadDim)
			l.KNorm = r.get(p+"self_attn.k_norm.weight", c.HeadDim)
		}
		m.Layers = append(m.Layers, l)
	}
	if c.TieEmbeddings {
		m.LMHead = &nn.Linear{In: D, Out: V, W: m.Embed, W16: m.Embed16, W16Type: m.EmbedType}
	} else {
		m.LMHead = &nn.Linear{In: D, Out: V}
		m.LMHead.W, m.LMHead.W16, m.LMHead.W16Type = r.weight("lm_head.weight", V, D)
	}
	if r.err != nil {
		return nil, r.err
	}
	for _, name := range ts.Names() {
		if !r.used[name] && !ignorable(name) {
			return nil, fmt.Errorf("tensor %q is not part of a %s model with this config (wrong config.json?)", name, c.ModelType)
		}
	}
	m.applyComputeDType()
	m.init()
	return m, nil
}

// ignorable tensors are buffers some checkpoints carry that the math recomputes.
func ignorable(name string) bool {
	return strings.HasSuffix(name, "rotary_emb.inv_freq") || (name == "lm_head.weight")
}

func (m *Model) init() {
	m.invFreq = m.Config.InvFreq()
	n := m.Config.MaxPositions
	if n <= 0 || n > 8192 {
		n = 8192 // grown on demand beyond this
	}
	m.rope = kernels.NewRopeTable(m.invFreq, min(n, 4096))
}

type reader struct {
	ts   TensorSource
	used map[string]bool
	err  error
}

func (r *reader) get(name string, shape ...int) []float32 {
	if r.err != nil {
		return nil
	}
	t, ok := r.ts.Tensor(name)
	if !ok {
		r.err = fmt.Errorf("tensor %q is missing", name)
		return nil
	}
	r.used[name] = true
	if !equalShape(t.Shape, shape) {
		r.err = fmt.Errorf("tensor %q has shape %v, config wants %v", name, t.Shape, shape)
		return nil
	}
	v, err := t.Float32()
	if err != nil {
		r.err = fmt.Errorf("tensor %q: %w", name, err)
	}
	return v
}

// weight reads a matrix, keeping a BF16 or F16 one in its 16 bits (copied,
// since the file may be unmapped after loading; w16 and its type) and
// reading any other type as float32 (w).
func (r *reader) weight(name string, shape ...int) (w []float32, w16 []uint16, dt tensor.DType) {
	if r.err != nil {
		return nil, nil, ""
	}
	t, ok := r.ts.Tensor(name)
	if !ok || !t.DType.Is16() || !equalShape(t.Shape, shape) || len(t.Data) != 2*t.NumElements() {
		return r.get(name, shape...), nil, ""
	}
	r.used[name] = true
	return nil, tensor.Uint16s(t.Data), t.DType
}

func (r *reader) linear(prefix string, out, in int, bias bool) *nn.Linear {
	name := prefix + ".weight"
	if nf4.IsQuantized(name, func(k string) bool { _, ok := r.ts.Tensor(k); return ok }) {
		return r.quantized(name, prefix, out, in, bias)
	}
	l := &nn.Linear{In: in, Out: out}
	l.W, l.W16, l.W16Type = r.weight(name, out, in)
	if bias {
		l.B = r.get(prefix+".bias", out)
	}
	return l
}

// quantized reads a bitsandbytes NF4 weight (the packed codes and their
// statistics under the weight's name); the bytes are copied because the file
// may be unmapped after loading.
func (r *reader) quantized(name, prefix string, out, in int, bias bool) *nn.Linear {
	if r.err != nil {
		return nil
	}
	q, err := nf4.FromEntries(name, func(key string) (string, []int, []byte, bool) {
		t, ok := r.ts.Tensor(key)
		if !ok {
			return "", nil, nil, false
		}
		r.used[key] = true
		return string(t.DType), t.Shape, append([]byte(nil), t.Data...), true
	})
	if err != nil {
		r.err = fmt.Errorf("tensor %q: %w", name, err)
		return nil
	}
	if q.Rows != out || q.Cols != in {
		r.err = fmt.Errorf("tensor %q is a %d×%d NF4 weight, config wants %d×%d", name, q.Rows, q.Cols, out, in)
		return nil
	}
	l := &nn.Linear{In: in, Out: out, Q: q}
	if bias {
		l.B = r.get(prefix+".bias", out)
	}
	return l
}

func equalShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// NumParams counts the model's scalars (tied embeddings once).
func (m *Model) NumParams() int {
	n := len(m.Embed) + len(m.Embed16) + len(m.Norm)
	for _, l := range m.Layers {
		n += len(l.AttnNorm) + len(l.MLPNorm) + len(l.QNorm) + len(l.KNorm)
		for _, p := range l.Projections() {
			n += p.Linear.Params()
		}
	}
	if !m.Config.TieEmbeddings {
		n += m.LMHead.Params()
	}
	return n
}
