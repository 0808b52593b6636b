package llama

import (
	"fmt"
	"strings"

	"github.com/lorakit/lorakit/lora"
	"github.com/lorakit/lorakit/nn"
)

// Linear implements lora.Shape: the [out, in] of a projection by HF module
// name ("model.layers.3.self_attn.q_proj").
func (m *Model) Linear(module string) (out, in int, ok bool) {
	l := m.linearByName(module)
	if l == nil {
		return 0, 0, false
	}
	return l.Out, l.In, true
}

// LinearModules lists the module names of every projection, layer by layer.
func (m *Model) LinearModules() []string {
	var names []string
	for i, l := range m.Layers {
		for _, p := range l.Projections() {
			names = append(names, fmt.Sprintf("model.layers.%d.%s", i, p.Name))
		}
	}
	return names
}

func (m *Model) linearByName(module string) *nn.Linear {
	rest, ok := strings.CutPrefix(module, "model.layers.")
	if !ok {
		return nil
	}
	idx, name, ok := strings.Cut(rest, ".")
	if !ok {
		return nil
	}
	i := 0
	for _, ch := range idx {
		if ch < '0' || ch > '9' {
			return nil
		}
		i = i*10 + int(ch-'0')
		if i > len(m.Layers) {
			return nil
		}
	}
	if idx == "" || i >= len(m.Layers) {
		return nil
	}
	for _, p := range m.Layers[i].Projections() {
		if p.Name == name {
			return p.Linear
		}
	}
	return nil
}

// Attach applies an adapter unmerged: every adapted projection computes
// W·x + s·B·A·x. It replaces any adapter attached before. The adapter is
// checked against the model first; on error nothing changes.
func (m *Model) Attach(a *lora.Adapter) error {
	if err := a.Check(m); err != nil {
		return err
	}
	m.Detach()
	for name, mod := range a.Modules {
		m.linearByName(name).LoRA = mod
	}
	return nil
}

// Detach removes the attached adapter, back to the base model.
func (m *Model) Detach() {
	for _, l := range m.Layers {
		for _, p := range l.Projections() {
			p.Linear.LoRA = nil
			p.Linear.Dropout = 0
		}
	}
}

// Merge folds an adapter into the weights (W += s·B·A); Unmerge takes it out
// again. The adapter is checked against the model first.
func (m *Model) Merge(a *lora.Adapter) error { return m.delta(a, 1) }

// Unmerge subtracts a previously merged adapter.
func (m *Model) Unmerge(a *lora.Adapter) error { return m.delta(a, -1) }

func (m *Model) delta(a *lora.Adapter, sign float32) error {
	if err := a.Check(m); err != nil {
		return err
	}
	for name, mod := range a.Modules {
		l := m.linearByName(name)
		// Merging into an NF4 or 16-bit weight turns it into float32
		// first: the merged model is full precision (quality first;
		// requantize or convert explicitly).
		l.Dequantize()
		mod.Delta(l.W, sign)
	}
	return nil
}

// QuantizeNF4 stores the seven projections of every layer in NF4 (QLoRA's
// frozen base); embeddings, norms and lm_head stay as they are held. The
// products compute in Config.QuantComputeDType (SetNF4ComputeDType).
func (m *Model) QuantizeNF4() error {
	for i, l := range m.Layers {
		for _, p := range l.Projections() {
			if p.Linear.W16 != nil {
				p.Linear.Dequantize() // NF4 quantizes the float32 values
			}
			if err := p.Linear.Quantize(); err != nil {
				return fmt.Errorf("quantize layer %d %s: %w", i, p.Name, err)
			}
		}
	}
	m.applyComputeDType()
	return nil
}

// SetNF4ComputeDType sets the dtype the NF4 products compute in, as
// bitsandbytes' bnb_4bit_compute_dtype: "float32" (f32) or "bfloat16"
// (bf16: operands rounded to BF16, sums in float32; twice the float32 rate
// with AVX512_BF16, the QLoRA paper's setting). It applies to the
// projections quantized now and later, and is what Save writes.
func (m *Model) SetNF4ComputeDType(d string) error {
	switch strings.ToLower(d) {
	case "float32", "f32", "fp32":
		d = "float32"
	case "bfloat16", "bf16":
		d = "bfloat16"
	default:
		return fmt.Errorf("NF4 compute dtype %q: want float32 or bfloat16", d)
	}
	m.Config.QuantComputeDType = d
	m.applyComputeDType()
	return nil
}

// applyComputeDType gives every projection the compute dtype
// Config.QuantComputeDType names (only NF4 products read it).
func (m *Model) applyComputeDType() {
	bf16 := m.Config.QuantComputeDType == "bfloat16"
	for _, l := range m.Layers {
		for _, p := range l.Projections() {
			p.Linear.ComputeBF16 = bf16
		}
	}
}

// WeightBytes is the memory of all weights as held (NF4 counted packed).
func (m *Model) WeightBytes() int {
	n := 4*(len(m.Embed)+len(m.Norm)) + 2*len(m.Embed16)
	for _, l := range m.Layers {
		n += 4 * (len(l.AttnNorm) + len(l.MLPNorm) + len(l.QNorm) + len(l.KNorm))
		for _, p := range l.Projections() {
			n += p.Linear.WeightBytes() + 4*len(p.Linear.B)
		}
	}
	if !m.Config.TieEmbeddings {
		n += m.LMHead.WeightBytes()
	}
	return n
}
