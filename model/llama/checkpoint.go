package llama

import (
	"github.com/lorakit/lorakit/kvcache"
)

// Gradient checkpointing (activation recomputation, HF
// gradient_checkpointing_enable): the training forward keeps only each
// decoder layer's input [N, hidden]; the backward recomputes one layer's
// forward from it, with every intermediate saved into one shared set of
// buffers, just before that layer's backward. It costs one more forward of
// the decoder layers and saves all but one layer's activations. The gradients
// are bit-identical to the non-checkpointed pass: the recomputation runs the
// same kernels in the same order on the same input, and LoRA dropout masks
// are a pure hash of their seed.

// SetGradientCheckpointing turns gradient checkpointing on or off for
// LossAndGrad.
func (m *Model) SetGradientCheckpointing(on bool) { m.bscratch.checkpoint = on }

// GradientCheckpointing reports whether LossAndGrad recomputes activations.
func (m *Model) GradientCheckpointing() bool { return m.bscratch.checkpoint }

// Quantized reports whether any projection is held in NF4 (a QLoRA base).
func (m *Model) Quantized() bool {
	for _, l := range m.Layers {
		for _, p := range l.Projections() {
			if p.Linear.Q != nil {
				return true
			}
		}
	}
	return false
}

// checkpointing drives forwardLayers under gradient checkpointing: either the
// first pass over every layer (layer < 0), which keeps each layer's input in
// inputs.Layers[li].X and computes the rest into the shared scratch, or the
// recomputation of one layer from its kept input, saving everything.
type checkpointing struct {
	inputs *Activations
	layer  int
}

// at is called by forwardLayers at the top of layer li, with the residual
// stream x (the layer's input) and the shared intermediates buffer sc. It
// returns where the layer's intermediates go, whether to save what a backward
// needs (attention probabilities, pre-norm q/k), and whether to run the layer.
func (ck *checkpointing) at(li int, x []float32, sc *LayerActs) (a *LayerActs, saving, run bool) {
	in := &ck.inputs.Layers[li]
	if ck.layer < 0 {
		// Drop whatever a non-checkpointed step left here.
		*in = LayerActs{X: in.X}
		keep(&in.X, x)
		return sc, false, true
	}
	if li != ck.layer {
		return nil, false, false
	}
	copy(x, in.X)
	sc.X = in.X // read by the backward; never written through sc
	return sc, true, true
}

// recomputing reports whether this forward is a layer's recomputation (nil:
// an ordinary forward).
func (ck *checkpointing) recomputing() bool { return ck != nil && ck.layer >= 0 }

// recompute reruns layer li's forward from its kept input (the caches are
// rewound so its keys and values land where the first pass put them) and
// returns its saved intermediates, valid until the next forward.
func (m *Model) recompute(st *Step, li int) (*LayerActs, error) {
	for _, c := range st.Caches {
		c.Len = 0
	}
	rs := &Step{Caches: st.Caches, Tokens: st.Tokens, ck: &checkpointing{inputs: st.Acts, layer: li}}
	if _, _, err := m.forwardLayers(rs); err != nil {
		return nil, err
	}
	return &m.scratch.layer, nil
}

// trainCaches returns an empty KV cache per sequence, reusing the buffers of
// earlier steps. With shared, every layer of a sequence uses the same buffers:
// under checkpointing a layer's keys and values are needed only while that
// layer runs, forward or recomputed before its backward.
func (m *Model) trainCaches(tokens [][]int, shared bool) []*kvcache.Seq {
	bs := &m.bscratch
	L, kvd := len(m.Layers), m.Config.KVDim()
	if bs.sharedCaches != shared {
		bs.caches = nil // layers must not stay aliased
		bs.sharedCaches = shared
	}
	for len(bs.caches) < len(tokens) {
		bs.caches = append(bs.caches, kvcache.New(L, kvd))
	}
	caches := bs.caches[:len(tokens)]
	for r, c := range caches {
		c.Len = 0
		if !shared {
			continue // forwardLayers' Reserve grows each layer as needed
		}
		need := len(tokens[r]) * kvd
		l0 := c.Layers[0]
		if cap(l0.K) < need {
			l0 = kvcache.Layer{K: make([]float32, need), V: make([]float32, need)}
		}
		for i := range c.Layers {
			c.Layers[i] = kvcache.Layer{K: l0.K[:need], V: l0.V[:need]}
		}
	}
	return caches
}
