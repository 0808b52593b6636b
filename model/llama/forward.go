package llama

import (
	"fmt"

	"github.com/lorakit/lorakit/kernels"
	"github.com/lorakit/lorakit/kvcache"
	"github.com/lorakit/lorakit/lora"
	"github.com/lorakit/lorakit/nn"
	"github.com/lorakit/lorakit/quant/nf4"
	"github.com/lorakit/lorakit/tensor"
)

// Legend: N = new tokens across the batch, D = hidden, F = intermediate,
// Hq = heads·head_dim, Hkv = kv heads·head_dim, V = vocab.

// NewCache makes an empty KV cache for one sequence of this model.
func (m *Model) NewCache() *kvcache.Seq {
	return kvcache.New(len(m.Layers), m.Config.KVDim())
}

// Step is one forward call: for each sequence, its new tokens, processed after
// what its cache already holds (a prompt, a prefill chunk or one decode token).
type Step struct {
	Caches []*kvcache.Seq
	Tokens [][]int
	// AllLogits asks for logits at every new position (training, evaluation);
	// otherwise only the last new position of each sequence (generation).
	AllLogits bool
	// Acts, when not nil, receives what a backward pass needs.
	Acts *Activations
	// Adapters, when not nil, gives each sequence its own LoRA adapter (nil:
	// the base model), applied unmerged in one batched pass; it overrides any
	// attached adapter. Sequences sharing an adapter should be adjacent.
	Adapters []*lora.Adapter
	// ck, when not nil, runs a gradient-checkpointed training forward or one
	// layer's recomputation (checkpoint.go).
	ck *checkpointing
}

// linear runs projection pi of layer li: with per-sequence adapters as
// segments, otherwise with whatever adapter is attached.
func (m *Model) linear(st *Step, start []int, li, pi int, l *nn.Linear, y, x []float32, rows int) {
	if st.Adapters == nil {
		l.Forward(y, x, rows)
		return
	}
	var segs []nn.Segment
	for r, a := range st.Adapters {
		if a == nil || start[r+1] == start[r] {
			continue
		}
		mod := a.Layered(len(m.Layers))[li][pi]
		if mod == nil {
			continue
		}
		if n := len(segs); n > 0 && segs[n-1].M == mod && segs[n-1].Hi == start[r] {
			segs[n-1].Hi = start[r+1]
			continue
		}
		segs = append(segs, nn.Segment{Lo: start[r], Hi: start[r+1], M: mod})
	}
	l.ForwardSegments(y, x, rows, segs)
}

// lin pairs a projection with its output buffer.
type lin struct {
	l *nn.Linear
	y []float32
}

// linears runs projections pi0, pi0+1, ... of layer li that share their
// input x. A decode step without adapters runs the float32 or NF4 products
// as one parallel loop (kernels.MatMulTMany, nf4.MatMulTMany): one fork-join
// instead of one each.
func (m *Model) linears(st *Step, start []int, li, pi0 int, x []float32, rows int, ps ...lin) {
	plain := st.Adapters == nil && rows <= kernels.GEMVMaxRows && len(ps) <= 3
	f32, q4 := plain, plain
	for _, p := range ps {
		f32 = f32 && p.l.PlainFloat32()
		q4 = q4 && p.l.PlainNF4()
	}
	if !f32 && !q4 {
		for i, p := range ps {
			m.linear(st, start, li, pi0+i, p.l, p.y, x, rows)
		}
		return
	}
	var dsts, ws [3][]float32
	var qs [3]*nf4.Tensor
	var ns [3]int
	for i, p := range ps {
		dsts[i], ws[i], qs[i], ns[i] = p.y, p.l.W, p.l.Q, p.l.Out
	}
	if q4 {
		nf4.MatMulTMany(dsts[:len(ps)], x, qs[:len(ps)], rows)
	} else {
		kernels.MatMulTMany(x, rows, ps[0].l.In, dsts[:len(ps)], ws[:len(ps)], ns[:len(ps)])
	}
	for _, p := range ps {
		if p.l.B != nil {
			for r := 0; r < rows; r++ {
				kernels.Axpy(1, p.l.B, p.y[r*p.l.Out:(r+1)*p.l.Out])
			}
		}
	}
}

// Activations are the tensors a forward pass keeps for the backward pass,
// named as in llm.c's ActivationTensors.
type Activations struct {
	Pos    []int // [N] position of each row
	Layers []LayerActs
}

// LayerActs are one layer's saved tensors.
type LayerActs struct {
	X         []float32 // [N, D] the layer's input (residual stream)
	XNorm1    []float32 // [N, D] input_layernorm output
	Rstd1     []float32 // [N]
	Q         []float32 // [N, Hq] after RoPE (and q_norm)
	QPre      []float32 // [N, Hq] before q_norm (Qwen3 only)
	KPre      []float32 // [N, Hkv] before k_norm (Qwen3 only)
	QRstd     []float32 // [N·heads] (Qwen3 only)
	KRstd     []float32 // [N·kvHeads] (Qwen3 only)
	Probs     [][]float32
	AttnOut   []float32 // [N, Hq] attention output, input of o_proj
	H         []float32 // [N, D] residual after attention
	XNorm2    []float32 // [N, D]
	Rstd2     []float32 // [N]
	Gate, Up  []float32 // [N, F]
	GatedProd []float32 // [N, F] silu(gate)·up, input of down_proj
}

// Forward runs the model and returns logits, [N, V] with AllLogits or
// [len(Caches), V] otherwise. Each cache grows by its new tokens. Without
// AllLogits (generation, serving) the logits live in a buffer of the model
// that the next Forward call reuses: a serving step then allocates nothing
// the size of the vocabulary.
func (m *Model) Forward(st *Step) ([]float32, error) {
	x, start, err := m.forwardLayers(st)
	if err != nil {
		return nil, err
	}
	return m.head(st, x, start)
}

// forwardLayers embeds the new tokens and runs every decoder layer; it returns
// the residual stream [N, D] and the row offsets of each sequence.
func (m *Model) forwardLayers(st *Step) (x []float32, start []int, err error) {
	c := m.Config
	D, F, V := c.HiddenSize, c.IntermediateSize, c.VocabSize
	Hq, Hkv := c.QDim(), c.KVDim()
	if len(st.Caches) != len(st.Tokens) {
		return nil, nil, fmt.Errorf("forward: %d caches for %d token lists", len(st.Caches), len(st.Tokens))
	}
	if st.Adapters != nil && len(st.Adapters) != len(st.Tokens) {
		return nil, nil, fmt.Errorf("forward: %d adapters for %d sequences", len(st.Adapters), len(st.Tokens))
	}
	// Rows of the batch: sequence r's new tokens occupy rows start[r]..start[r+1].
	start = make([]int, len(st.Tokens)+1)
	for r, toks := range st.Tokens {
		start[r+1] = start[r] + len(toks)
	}
	N := start[len(st.Tokens)]
	pos := make([]int, N)
	x = grow(&m.scratch.x, N*D)
	maxPos := 0
	for r, toks := range st.Tokens {
		for j, id := range toks {
			if id < 0 || id >= V {
				return nil, nil, fmt.Errorf("forward: token id %d at sequence %d position %d is outside the vocabulary (%d)", id, r, j, V)
			}
			i := start[r] + j
			pos[i] = st.Caches[r].Len + j
			maxPos = max(maxPos, pos[i]+1)
			m.embedRow(x[i*D:(i+1)*D], id)
		}
		st.Caches[r].Reserve(st.Caches[r].Len + len(toks))
	}
	if m.rope.Len() < maxPos {
		m.rope.Grow(m.invFreq, maxPos)
	}
	acts := st.Acts
	saving := acts != nil
	if saving {
		acts.Pos = pos
		if len(acts.Layers) != len(m.Layers) {
			acts.Layers = make([]LayerActs, len(m.Layers))
		}
	}
	eps := float32(c.RMSNormEps)
	sc := &m.scratch
	kv := grow(&sc.kv, 2*N*Hkv)
	tmp := grow(&sc.tmp, N*D)
	for li, l := range m.Layers {
		// Every intermediate is computed straight into its activation buffer;
		// without a backward pass to come, one set of buffers serves all layers.
		a := &sc.layer
		if st.ck != nil { // gradient checkpointing: see checkpoint.go
			var run bool
			if a, saving, run = st.ck.at(li, x, a); !run {
				continue
			}
		} else if saving {
			a = &acts.Layers[li]
			keep(&a.X, x)
		}
		// Attention block: h = x + o_proj(attn(input_layernorm(x))).
		xn := grow(&a.XNorm1, N*D)
		kernels.RMSNorm(xn, grow(&a.Rstd1, N), x, l.AttnNorm, N, D, eps)
		q := grow(&a.Q, N*Hq)
		k, v := kv[:N*Hkv], kv[N*Hkv:]
		m.linears(st, start, li, 0, xn, N, lin{l.Q, q}, lin{l.K, k}, lin{l.V, v})
		if c.QKNorm { // Qwen3: RMSNorm over each head, before RoPE
			if saving {
				keep(&a.QPre, q)
				keep(&a.KPre, k)
			}
			kernels.RMSNorm(q, grow(&a.QRstd, N*c.NumHeads), q, l.QNorm, N*c.NumHeads, c.HeadDim, eps)
			kernels.RMSNorm(k, grow(&a.KRstd, N*c.NumKVHeads), k, l.KNorm, N*c.NumKVHeads, c.HeadDim, eps)
		}
		kernels.RopeForward(q, pos, c.NumHeads, c.HeadDim, m.rope)
		kernels.RopeForward(k, pos, c.NumKVHeads, c.HeadDim, m.rope)
		if saving && len(a.Probs) != len(st.Tokens) {
			a.Probs = make([][]float32, len(st.Tokens))
		}
		att := grow(&a.AttnOut, N*Hq)
		seqs := sc.attn[:0]
		for r, cache := range st.Caches {
			lkv := cache.Layers[li]
			n := len(st.Tokens[r])
			shape := kernels.AttentionShape{NQ: n, Pos0: cache.Len, Heads: c.NumHeads, KVHeads: c.NumKVHeads, HeadDim: c.HeadDim, Window: c.SlidingWindow}
			as := kernels.AttentionSeq{Out: att[start[r]*Hq : start[r+1]*Hq], Q: q[start[r]*Hq : start[r+1]*Hq], Shape: shape}
			if saving && (cache.Is16() || cache.IsQ8()) {
				// The backward reads float32 caches: training never
				// holds a serving cache.
				return nil, nil, fmt.Errorf("forward: sequence %d has a %s KV cache; saving activations needs a float32 one", r, cache.DType)
			}
			if cache.Is16() {
				// A serving cache in the model's 16-bit type (vLLM's
				// kv_cache_dtype="auto"): k (after RoPE) and v are rounded
				// to it once, as stored; a bf16 model in HF transformers
				// computes them in bf16 throughout.
				tensor.Narrow(cache.DType, lkv.K16[cache.Len*Hkv:], k[start[r]*Hkv:start[r+1]*Hkv])
				tensor.Narrow(cache.DType, lkv.V16[cache.Len*Hkv:], v[start[r]*Hkv:start[r+1]*Hkv])
				as.K16, as.V16, as.KVType = lkv.K16, lkv.V16, cache.DType
			} else if cache.IsQ8() {
				// An 8-bit serving cache (llama.cpp's q8_0, chosen with
				// --kv-cache-dtype): each 32 values of k (after RoPE) and v
				// are quantized once, as stored, to bytes and an fp16 scale.
				if err := kvcache.CheckQ8(Hkv, c.HeadDim); err != nil {
					return nil, nil, fmt.Errorf("forward: sequence %d: %w", r, err)
				}
				at := cache.Len * Hkv
				kvcache.QuantizeQ8(lkv.K8[at:], lkv.KS[at/kvcache.Q8Block:], k[start[r]*Hkv:start[r+1]*Hkv])
				kvcache.QuantizeQ8(lkv.V8[at:], lkv.VS[at/kvcache.Q8Block:], v[start[r]*Hkv:start[r+1]*Hkv])
				as.K8, as.V8, as.KS, as.VS = lkv.K8, lkv.V8, lkv.KS, lkv.VS
			} else {
				copy(lkv.K[cache.Len*Hkv:], k[start[r]*Hkv:start[r+1]*Hkv])
				copy(lkv.V[cache.Len*Hkv:], v[start[r]*Hkv:start[r+1]*Hkv])
				as.K, as.V = lkv.K, lkv.V
				if saving {
					as.Probs = grow(&a.Probs[r], c.NumHeads*n*(cache.Len+n))
				}
			}
			seqs = append(seqs, as)
		}
		// All sequences in one call: the decoding ones share a single
		// parallel loop (a serving step holds many).
		kernels.AttentionBatch(seqs)
		clear(seqs)
		sc.attn = seqs
		m.linear(st, start, li, 3, l.O, tmp, att, N)
		kernels.Axpy(1, tmp, x)
		if saving {
			keep(&a.H, x)
		}
		// MLP block: x = h + down(silu(gate(n)) · up(n)), n = post_attention_layernorm(h).
		xn = grow(&a.XNorm2, N*D)
		kernels.RMSNorm(xn, grow(&a.Rstd2, N), x, l.MLPNorm, N, D, eps)
		gate, up := grow(&a.Gate, N*F), grow(&a.Up, N*F)
		m.linears(st, start, li, 4, xn, N, lin{l.Gate, gate}, lin{l.Up, up})
		prod := gate // inference: the product overwrites gate (SwiGLU is elementwise)
		if saving || st.ck != nil {
			prod = grow(&a.GatedProd, N*F)
		}
		kernels.SwiGLU(prod, gate, up)
		if st.ck.recomputing() {
			continue // the backward needs no layer output: skip down_proj
		}
		m.linear(st, start, li, 6, l.Down, tmp, prod, N)
		kernels.Axpy(1, tmp, x)
	}
	for r, cache := range st.Caches {
		cache.Len += len(st.Tokens[r])
	}
	return x, start, nil
}

// head applies the final norm and lm_head to every row or to each sequence's
// last row.
func (m *Model) head(st *Step, x []float32, start []int) ([]float32, error) {
	c := m.Config
	D, V := c.HiddenSize, c.VocabSize
	N := len(x) / D
	eps := float32(c.RMSNormEps)
	// Final norm and lm_head, on every row or on each sequence's last row.
	if !st.AllLogits {
		rows := len(st.Tokens)
		xn := grow(&m.scratch.headXN, 2*rows*D)
		last := xn[rows*D:]
		for r := range st.Tokens {
			if start[r+1] == start[r] {
				return nil, fmt.Errorf("forward: sequence %d has no new tokens", r)
			}
			copy(last[r*D:(r+1)*D], x[(start[r+1]-1)*D:start[r+1]*D])
		}
		logits := grow(&m.scratch.logits, rows*V)
		kernels.RMSNorm(xn[:rows*D], nil, last, m.Norm, rows, D, eps)
		m.LMHead.Forward(logits, xn[:rows*D], rows)
		return logits, nil
	}
	// Every row (evaluation): fresh buffers, not kept by the model.
	xn := make([]float32, N*D)
	kernels.RMSNorm(xn, nil, x, m.Norm, N, D, eps)
	logits := make([]float32, N*V)
	m.LMHead.Forward(logits, xn, N)
	return logits, nil
}

// Reserve sizes the inference buffers for steps of up to tokens tokens over
// up to seqs sequences (each wanting its last row's logits). The serving
// engine calls it once with its limits, as
// llama.cpp reserves its compute buffers for the largest batch: the buffers
// are then allocated once, at their final size, instead of being outgrown
// (and left to the garbage collector) as the load rises.
func (m *Model) Reserve(tokens, seqs int) {
	c := m.Config
	D, F := c.HiddenSize, c.IntermediateSize
	sc := &m.scratch
	grow(&sc.x, tokens*D)
	grow(&sc.kv, 2*tokens*c.KVDim())
	grow(&sc.tmp, tokens*D)
	a := &sc.layer
	for _, b := range []*[]float32{&a.XNorm1, &a.XNorm2} {
		grow(b, tokens*D)
	}
	for _, b := range []*[]float32{&a.Rstd1, &a.Rstd2} {
		grow(b, tokens)
	}
	grow(&a.Q, tokens*c.QDim())
	grow(&a.AttnOut, tokens*c.QDim())
	grow(&a.Gate, tokens*F)
	grow(&a.Up, tokens*F)
	if c.QKNorm {
		grow(&a.QRstd, tokens*c.NumHeads)
		grow(&a.KRstd, tokens*c.NumKVHeads)
	}
	grow(&sc.headXN, 2*seqs*D)
	grow(&sc.logits, seqs*c.VocabSize)
}

// grow returns *p resized to n, reusing its memory when it is large enough:
// buffers live across calls so a training step does not fault in fresh pages.
// The contents are not cleared.
func grow(p *[]float32, n int) []float32 {
	if cap(*p) < n {
		*p = make([]float32, n)
	}
	*p = (*p)[:n]
	return *p
}

// keep copies src into the reusable buffer *dst.
func keep(dst *[]float32, src []float32) { copy(grow(dst, len(src)), src) }

// scratch holds a model's temporary buffers. A Model is not safe for
// concurrent Forward calls; the engine serialises them.
type scratch struct {
	x, kv, tmp     []float32
	headXN, logits []float32 // head's buffers for generation (not AllLogits)
	layer          LayerActs // every layer's intermediates when nothing is saved
	attn           []kernels.AttentionSeq
}
