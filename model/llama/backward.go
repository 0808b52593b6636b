package llama

import (
	"fmt"
	"math"

	"github.com/lorakit/lorakit/kernels"
	"github.com/lorakit/lorakit/kvcache"
	"github.com/lorakit/lorakit/nn"
)

// headChunk is how many rows of logits exist at once in LossAndGrad: the full
// [N, vocab] logits never do (memory-lean cross-entropy).
const headChunk = 64

// LossAndGrad runs a training forward over full sequences and back again. It
// returns the summed NLL of the non-ignored targets (targets[r][t] is what
// position t of sequence r predicts, nn.IgnoreIndex to skip) and their count,
// and adds into every attached LoRA module's GradA/GradB the gradient of
// (summed NLL)/norm. The frozen weights get no gradient. Pass norm = the
// target count of the whole optimizer step (HF divides the summed token
// losses of all micro-batches by their total count). With gradient
// checkpointing on (SetGradientCheckpointing) it keeps only each layer's input
// and recomputes the layer before its backward: same gradients, bit for bit.
func (m *Model) LossAndGrad(tokens, targets [][]int, norm float64) (sum float64, count int, err error) {
	c := m.Config
	D, V := c.HiddenSize, c.VocabSize
	if len(tokens) != len(targets) {
		return 0, 0, fmt.Errorf("loss: %d sequences but %d target lists", len(tokens), len(targets))
	}
	bs := &m.bscratch
	flat := bs.flat[:0]
	for r := range tokens {
		if len(targets[r]) != len(tokens[r]) {
			return 0, 0, fmt.Errorf("loss: sequence %d has %d tokens but %d targets", r, len(tokens[r]), len(targets[r]))
		}
		flat = append(flat, targets[r]...)
	}
	bs.flat = flat
	for i, t := range flat {
		if t != nn.IgnoreIndex && (t < 0 || t >= V) {
			return 0, 0, fmt.Errorf("loss: target %d at row %d is outside the vocabulary (%d)", t, i, V)
		}
	}
	ckpt := bs.checkpoint
	acts := &m.acts
	st := &Step{Caches: m.trainCaches(tokens, ckpt), Tokens: tokens, Acts: acts}
	if ckpt {
		st.ck = &checkpointing{inputs: acts, layer: -1}
	}
	x, start, err := m.forwardLayers(st)
	if err != nil {
		return 0, 0, err
	}
	N := len(x) / D
	eps := float32(c.RMSNormEps)

	// Head: final norm, lm_head and cross-entropy, chunk by chunk, each chunk's
	// dlogits turned into dxn at once.
	xn := grow(&bs.xnF, N*D)
	rstdF := grow(&bs.rstdF, N)
	kernels.RMSNorm(xn, rstdF, x, m.Norm, N, D, eps)
	dxn := grow(&bs.dxnF, N*D)
	logits := grow(&bs.logits, headChunk*V)
	scale := float32(1 / norm)
	for r0 := 0; r0 < N; r0 += headChunk {
		rows := min(headChunk, N-r0)
		lg := logits[:rows*V]
		m.LMHead.Forward(lg, xn[r0*D:(r0+rows)*D], rows)
		for i := 0; i < rows; i++ {
			row := lg[i*V : (i+1)*V]
			t := flat[r0+i]
			if t == nn.IgnoreIndex {
				for j := range row {
					row[j] = 0
				}
				continue
			}
			sum += kernels.LogSumExp(row) - float64(row[t])
			count++
			kernels.SoftmaxCrossEntropyBackward(row, t, scale)
		}
		m.LMHead.Backward(dxn[r0*D:(r0+rows)*D], lg, xn[r0*D:(r0+rows)*D], rows, false)
	}
	if math.IsNaN(sum) || math.IsInf(sum, 0) {
		return sum, count, fmt.Errorf("loss is %v", sum)
	}
	dx := grow(&bs.dx, N*D)
	clear(dx)
	kernels.RMSNormBackward(dx, dxn, x, m.Norm, rstdF, N, D) // x is free from here on
	for li := len(m.Layers) - 1; li >= 0; li-- {
		a := &acts.Layers[li]
		if ckpt {
			if a, err = m.recompute(st, li); err != nil {
				return sum, count, err
			}
		}
		m.layerBackward(li, dx, a, acts.Pos, st, start, li > 0)
	}
	return sum, count, nil
}

// layerBackward takes d(layer output) in dx and leaves d(layer input) there
// (when needInput; layer 0's input gradient would only reach the frozen
// embedding). It mirrors the forward in reverse: MLP block, then attention.
// a holds the layer's saved intermediates, pos the position of each row.
func (m *Model) layerBackward(li int, dx []float32, a *LayerActs, pos []int, st *Step, start []int, needInput bool) {
	c := m.Config
	l := m.Layers[li]
	D, F := c.HiddenSize, c.IntermediateSize
	Hq, Hkv := c.QDim(), c.KVDim()
	N := len(dx) / D

	// MLP block: out = h + down(silu(gate(n))·up(n)), n = post_attention_layernorm(h).
	bs := &m.bscratch
	dg := grow(&bs.dg, N*F)
	l.Down.Backward(dg, dx, a.GatedProd, N, false)
	dgate, dup := grow(&bs.dgate, N*F), grow(&bs.dup, N*F)
	kernels.SwiGLUBackward(dgate, dup, dg, a.Gate, a.Up)
	dxn := grow(&bs.dxn, N*D)
	l.Gate.Backward(dxn, dgate, a.XNorm2, N, false)
	l.Up.Backward(dxn, dup, a.XNorm2, N, true)
	kernels.RMSNormBackward(dx, dxn, a.H, l.MLPNorm, a.Rstd2, N, D) // dx is now d(h)

	// Attention block: h = x + o_proj(attn(q, k, v)).
	datt := grow(&bs.datt, N*Hq)
	l.O.Backward(datt, dx, a.AttnOut, N, false)
	dq := grow(&bs.dq, N*Hq)
	dk, dv := grow(&bs.dk, N*Hkv), grow(&bs.dv, N*Hkv)
	clear(dk)
	clear(dv)
	for r, cache := range st.Caches {
		n := start[r+1] - start[r]
		kv := cache.Layers[li]
		shape := kernels.AttentionShape{NQ: n, Heads: c.NumHeads, KVHeads: c.NumKVHeads, HeadDim: c.HeadDim, Window: c.SlidingWindow}
		q0, q1, k0, k1 := start[r]*Hq, start[r+1]*Hq, start[r]*Hkv, start[r+1]*Hkv
		kernels.AttentionBackward(dq[q0:q1], dk[k0:k1], dv[k0:k1], datt[q0:q1], a.Q[q0:q1], kv.K[:n*Hkv], kv.V[:n*Hkv], a.Probs[r], shape)
	}
	kernels.RopeBackward(dq, pos, c.NumHeads, c.HeadDim, m.rope)
	kernels.RopeBackward(dk, pos, c.NumKVHeads, c.HeadDim, m.rope)
	if c.QKNorm {
		dqp, dkp := grow(&bs.dqp, N*Hq), grow(&bs.dkp, N*Hkv)
		clear(dqp)
		clear(dkp)
		kernels.RMSNormBackward(dqp, dq, a.QPre, l.QNorm, a.QRstd, N*c.NumHeads, c.HeadDim)
		kernels.RMSNormBackward(dkp, dk, a.KPre, l.KNorm, a.KRstd, N*c.NumKVHeads, c.HeadDim)
		dq, dk = dqp, dkp
	}
	if !needInput {
		l.Q.Backward(nil, dq, a.XNorm1, N, false)
		l.K.Backward(nil, dk, a.XNorm1, N, false)
		l.V.Backward(nil, dv, a.XNorm1, N, false)
		return
	}
	l.Q.Backward(dxn, dq, a.XNorm1, N, false)
	l.K.Backward(dxn, dk, a.XNorm1, N, true)
	l.V.Backward(dxn, dv, a.XNorm1, N, true)
	kernels.RMSNormBackward(dx, dxn, a.X, l.AttnNorm, a.Rstd1, N, D) // dx is now d(layer input)
}

// backwardScratch holds LossAndGrad's per-layer gradient buffers, reused
// across layers and steps, its KV caches and the checkpointing switch.
type backwardScratch struct {
	dg, dgate, dup, dxn, datt, dq, dk, dv, dqp, dkp []float32
	xnF, rstdF, dxnF, logits, dx                    []float32
	flat                                            []int

	checkpoint   bool           // gradient checkpointing (checkpoint.go)
	caches       []*kvcache.Seq // one per sequence, reused across steps
	sharedCaches bool           // caches' layers share one buffer (checkpointing)
}
