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
func (m *Model) Tensors() []NamedTensor {
	c := m.Config
	D := c.HiddenSize
	out := []NamedTensor{{"model.embed_tokens.weight", []int{c.VocabSize, D}, m.Embed}}
	for i, l := range m.Layers {
		p := fmt.Sprintf("model.layers.%d.", i)
		for _, pl := range l.Projections() {
			w := pl.Linear.W
			if pl.Linear.Q != nil { // NF4: written dequantized
				w = make([]float32, pl.Linear.Out*pl.Linear.In)
				pl.Linear.Q.Dequantize(w)
			}
			out = append(out, NamedTensor{p + pl.Name + ".weight", []int{pl.Linear.Out, pl.Linear.In}, w})
			if pl.Linear.B != nil {
				out = append(out, NamedTensor{p + pl.Name + ".bias", []int{pl.Linear.Out}, pl.Linear.B})
			}
		}
		if l.QNorm != nil {
			out = append(out, NamedTensor{p + "self_attn.q_norm.weight", []int{c.HeadDim}, l.QNorm},
				NamedTensor{p + "self_attn.k_norm.weight", []int{c.HeadDim}, l.KNorm})
		}
		out = append(out, NamedTensor{p + "input_layernorm.weight", []int{D}, l.AttnNorm},
			NamedTensor{p + "post_attention_layernorm.weight", []int{D}, l.MLPNorm})
	}
	out = append(out, NamedTensor{"model.norm.weight", []int{D}, m.Norm})
	if !c.TieEmbeddings {
		out = append(out, NamedTensor{"lm_head.weight", []int{c.VocabSize, D}, m.LMHead.W})
	}
	return out
}

// NamedTensor is a float32 weight with its HF name and shape.
type NamedTensor struct {
	Name  string
	Shape []int
	Data  []float32
}

// SaveOptions says how Save writes the weights.
type SaveOptions struct {
	DType         tensor.DType // F32 (default), BF16 or F16
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
		opt.DType = tensor.F32
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
	for _, t := range m.Tensors() {
		if quantized[t.Name] {
			continue
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
