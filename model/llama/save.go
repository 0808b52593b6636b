package llama

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/lorakit/lorakit/format/safetensors"
	"github.com/lorakit/lorakit/model"
	"github.com/lorakit/lorakit/tensor"
)

// Tensors lists the model's weights under their Hugging Face names, in the
// order transformers' state_dict uses. Tied models have no lm_head.weight.
// Weights held in 16 bits come widened to float32 (and as held in Bits).
func (m *Model) Tensors() []NamedTensor { return m.tensors(true) }

// tensors is Tensors; unless widened, weights held in 16 bits have only Bits.
func (m *Model) tensors(widened bool) []NamedTensor {
	c := m.Config
	D := c.HiddenSize
	out := []NamedTensor{named("model.embed_tokens.weight", []int{c.VocabSize, D}, m.Embed, m.Embed16, m.EmbedType, widened)}
	for i, l := range m.Layers {
		p := fmt.Sprintf("model.layers.%d.", i)
		for _, pl := range l.Projections() {
			w := pl.Linear.W
			if pl.Linear.Q != nil { // NF4: written dequantized
				w = make([]float32, pl.Linear.Out*pl.Linear.In)
				pl.Linear.Q.Dequantize(w)
			}
			out = append(out, named(p+pl.Name+".weight", []int{pl.Linear.Out, pl.Linear.In}, w, pl.Linear.W16, pl.Linear.W16Type, widened))
			if pl.Linear.B != nil {
				out = append(out, NamedTensor{Name: p + pl.Name + ".bias", Shape: []int{pl.Linear.Out}, Data: pl.Linear.B})
			}
		}
		if l.QNorm != nil {
			out = append(out, NamedTensor{Name: p + "self_attn.q_norm.weight", Shape: []int{c.HeadDim}, Data: l.QNorm},
				NamedTensor{Name: p + "self_attn.k_norm.weight", Shape: []int{c.HeadDim}, Data: l.KNorm})
		}
		out = append(out, NamedTensor{Name: p + "input_layernorm.weight", Shape: []int{D}, Data: l.AttnNorm},
			NamedTensor{Name: p + "post_attention_layernorm.weight", Shape: []int{D}, Data: l.MLPNorm})
	}
	out = append(out, NamedTensor{Name: "model.norm.weight", Shape: []int{D}, Data: m.Norm})
	if !c.TieEmbeddings {
		h := m.LMHead
		out = append(out, named("lm_head.weight", []int{c.VocabSize, D}, h.W, h.W16, h.W16Type, widened))
	}
	return out
}

// named is the NamedTensor of a weight held as w or, in 16 bits, as w16.
func named(name string, shape []int, w []float32, w16 []uint16, dt tensor.DType, widenBits bool) NamedTensor {
	t := NamedTensor{Name: name, Shape: shape, Data: w}
	if w16 != nil {
		t.Bits, t.BitsType = w16, dt
		if widenBits {
			t.Data = make([]float32, len(w16))
			widen(dt, t.Data, w16)
		}
	}
	return t
}

// NamedTensor is a float32 weight with its HF name and shape.
type NamedTensor struct {
	Name  string
	Shape []int
	Data  []float32
	// Bits is the weight as held when it is held in 16 bits, of type
	// BitsType (BF16 or F16); Data is then its exact widening.
	Bits     []uint16
	BitsType tensor.DType
}

// SaveOptions says how Save writes the weights.
type SaveOptions struct {
	DType         tensor.DType // F32, BF16 or F16; default: as held (Model.WeightDType)
	MaxShardBytes int64        // 0: one file; otherwise shards as save_pretrained does
	// KeepNF4 writes NF4 projections in bitsandbytes' 4-bit layout (with
	// quantization_config in config.json) instead of dequantizing them.
	KeepNF4 bool
}

// Save writes config.json and the weights as a Hugging Face folder
// (model.safetensors, or model-0000i-of-0000n.safetensors + index). Every file
// is written atomically. Tokenizer files are the caller's to copy.
func (m *Model) Save(dir string, opt SaveOptions) error {
	if opt.DType == "" {
		opt.DType = m.WeightDType()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var ws []safetensors.Writable
	quantized := map[string]bool{}
	if opt.KeepNF4 {
		for i, l := range m.Layers {
			for _, p := range l.Projections() {
				if p.Linear.Q == nil {
					continue
				}
				name := fmt.Sprintf("model.layers.%d.%s.weight", i, p.Name)
				quantized[name] = true
				for _, e := range p.Linear.Q.Entries(name) {
					ws = append(ws, safetensors.Writable{Name: e.Name, DType: tensor.DType(e.DType), Shape: e.Shape, Data: e.Data})
				}
			}
		}
	}
	for _, t := range m.tensors(false) {
		if quantized[t.Name] {
			continue
		}
		if t.Bits != nil && t.BitsType == opt.DType { // as held: the same bits
			ws = append(ws, safetensors.Writable{Name: t.Name, DType: opt.DType, Shape: t.Shape, Data: tensor.Uint16Bytes(t.Bits)})
			continue
		}
		if t.Bits != nil {
			t.Data = make([]float32, len(t.Bits))
			widen(t.BitsType, t.Data, t.Bits)
		}
		var b []byte
		switch opt.DType {
		case tensor.F32:
			b = safetensors.F32Bytes(t.Data)
		case tensor.BF16:
			b = safetensors.BF16Bytes(t.Data)
		case tensor.F16:
			b = safetensors.F16Bytes(t.Data)
		default:
			return fmt.Errorf("save %s: dtype %s is not a weight dtype (F32, BF16, F16)", dir, opt.DType)
		}
		ws = append(ws, safetensors.Writable{Name: t.Name, DType: opt.DType, Shape: t.Shape, Data: b})
	}
	cfg := *m.Config
	cfg.Quantization = ""
	if len(quantized) > 0 {
		cfg.Quantization = "nf4"
	}
	cfg.TorchDType = map[tensor.DType]string{tensor.F32: "float32", tensor.BF16: "bfloat16", tensor.F16: "float16"}[opt.DType]
	cj, err := cfg.HFJSON()
	if err != nil {
		return err
	}
	if err := safetensors.WriteFileAtomic(filepath.Join(dir, "config.json"), cj); err != nil {
		return fmt.Errorf("save %s: %w", dir, err)
	}
	max := opt.MaxShardBytes
	if max <= 0 {
		max = 1 << 62
	}
	if _, err := safetensors.WriteSharded(dir, "model", ws, max, map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("save %s: %w", dir, err)
	}
	return nil
}

// FromTensorsF32 builds a model from named float32 tensors (the inverse of
// Tensors), e.g. after merging an adapter.
func FromTensorsF32(cfg *model.Config, ts []NamedTensor) (*Model, error) {
	set := memTensors{}
	for _, t := range ts {
		set[t.Name] = safetensors.Tensor{Name: t.Name, DType: tensor.F32, Shape: t.Shape, Data: safetensors.F32Bytes(t.Data)}
	}
	return FromTensors(cfg, set)
}

type memTensors map[string]safetensors.Tensor

func (m memTensors) Tensor(name string) (safetensors.Tensor, bool) { t, ok := m[name]; return t, ok }

func (m memTensors) Names() []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	return names
}
