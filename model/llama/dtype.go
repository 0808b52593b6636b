package llama

import (
	"fmt"

	"github.com/lorakit/lorakit/kernels"
	"github.com/lorakit/lorakit/tensor"
)

// Weights may be held in 16 bits: a BF16 or F16 checkpoint loads as it is
// stored (the projections, the embedding and lm_head; norms and biases are
// widened to float32, being tiny), and the products widen the weights in
// registers (kernels.MatMulTBF16 and friends). Merging an adapter into a
// 16-bit projection turns that projection into float32 first, as with NF4.

// embedRow writes the embedding of token id into dst, widening a 16-bit row.
func (m *Model) embedRow(dst []float32, id int) {
	D := m.Config.HiddenSize
	if m.Embed16 == nil {
		copy(dst, m.Embed[id*D:(id+1)*D])
		return
	}
	widen(m.EmbedType, dst, m.Embed16[id*D:(id+1)*D])
}

// widen sets dst to the 16-bit values src of type dt as float32 (exact).
func widen(dt tensor.DType, dst []float32, src []uint16) {
	if dt == tensor.F16 {
		kernels.WidenF16(dst, src)
	} else {
		kernels.WidenBF16(dst, src)
	}
}

// WeightDType is the 16-bit type weights are held in (BF16 or F16) when any
// are, else F32 (NF4 projections aside). It is the type Save writes by
// default.
func (m *Model) WeightDType() tensor.DType {
	if m.Embed16 != nil {
		return m.EmbedType
	}
	if m.LMHead != nil && m.LMHead.W16 != nil {
		return m.LMHead.W16Type
	}
	for _, l := range m.Layers {
		for _, p := range l.Projections() {
			if p.Linear.W16 != nil {
				return p.Linear.W16Type
			}
		}
	}
	return tensor.F32
}

// ConvertWeights holds every projection, the embedding and lm_head in dtype
// d: F32, or BF16 / F16 rounded to nearest even as torch's .to does. NF4
// projections stay NF4 (the type of the weights around them, like
// torch_dtype next to a bitsandbytes 4-bit config). Norms and biases stay
// float32.
func (m *Model) ConvertWeights(d tensor.DType) error {
	if d != tensor.F32 && !d.Is16() {
		return fmt.Errorf("convert weights: dtype %s is not F32, BF16 or F16", d)
	}
	for i, l := range m.Layers {
		for _, p := range l.Projections() {
			if p.Linear.Q != nil {
				continue
			}
			if err := p.Linear.ToDType(d); err != nil {
				return fmt.Errorf("convert layer %d %s: %w", i, p.Name, err)
			}
		}
	}
	switch {
	case d == tensor.F32 && m.Embed16 != nil:
		m.Embed = make([]float32, len(m.Embed16))
		widen(m.EmbedType, m.Embed, m.Embed16)
		m.Embed16, m.EmbedType = nil, ""
	case d.Is16() && (m.Embed16 == nil || m.EmbedType != d):
		src := m.Embed
		if m.Embed16 != nil {
			src = make([]float32, len(m.Embed16))
			widen(m.EmbedType, src, m.Embed16)
		}
		h := make([]uint16, len(src))
		tensor.Narrow(d, h, src)
		m.Embed, m.Embed16, m.EmbedType = nil, h, d
	}
	if m.Config.TieEmbeddings {
		h := m.LMHead
		h.W, h.Q, h.W16, h.W16Type = m.Embed, nil, m.Embed16, m.EmbedType
		return nil
	}
	if m.LMHead.Q != nil {
		return nil
	}
	if err := m.LMHead.ToDType(d); err != nil {
		return fmt.Errorf("convert lm_head: %w", err)
	}
	return nil
}

// embedFloat32 is the embedding as float32: Embed, or a widened copy.
func (m *Model) embedFloat32() []float32 {
	if m.Embed16 == nil {
		return m.Embed
	}
	w := make([]float32, len(m.Embed16))
	widen(m.EmbedType, w, m.Embed16)
	return w
}
