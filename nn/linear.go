// Package nn holds the layers models are assembled from, each with its
// forward and backward side by side (as llm.c's train_gpt2.c pairs them).
package nn

import (
	"github.com/lorakit/lorakit/kernels"
	"github.com/lorakit/lorakit/lora"
	"github.com/lorakit/lorakit/quant/nf4"
	"github.com/lorakit/lorakit/tensor"
)

// Linear is y = x·Wᵀ + b + s·B·A·dropout(x): a frozen weight W stored
// [Out, In] as Hugging Face stores it, an optional bias, and an optional LoRA
// module (PEFT lora.Linear semantics). Only the LoRA matrices get gradients.
type Linear struct {
	In, Out int
	W       []float32 // [Out, In]; nil when the weight is held in Q or W16
	Q       *nf4.Tensor
	// W16 holds the weight [Out, In] as the raw bits of 16-bit floats of
	// type W16Type (BF16 or F16), as a BF16 or F16 checkpoint stores it;
	// the products widen it in registers. Nil unless the weight is so held.
	W16     []uint16
	W16Type tensor.DType
	// ComputeBF16: the products with an NF4 weight round their operands to
	// BF16 and sum in float32 (bitsandbytes' bnb_4bit_compute_dtype=
	// bfloat16, see nf4.MatMulTBF16); false computes in float32.
	ComputeBF16 bool
	B           []float32 // [Out], nil when the layer has no bias
	LoRA        *lora.Module
	// Dropout on the LoRA branch's input during training (PEFT lora_dropout);
	// the mask is a pure function of DropoutSeed so the backward pass can
	// regenerate it instead of storing it.
	Dropout     float32
	DropoutSeed uint64
}

// base computes y = x·Wᵀ with the frozen weight in whichever form it is held:
// float32, BF16/F16 widened on the fly, or NF4 dequantized on the fly (QLoRA;
// the float32 matrix is never materialised).
func (l *Linear) base(y, x []float32, rows int) {
	if l.Q != nil {
		if l.ComputeBF16 {
			nf4.MatMulTBF16(y, x, l.Q, rows, false)
		} else {
			nf4.MatMulT(y, x, l.Q, rows, false)
		}
		return
	}
	if l.W16 != nil {
		if l.W16Type == tensor.F16 {
			kernels.MatMulTF16(y, x, l.W16, rows, l.Out, l.In, false)
		} else {
			kernels.MatMulTBF16(y, x, l.W16, rows, l.Out, l.In, false)
		}
		return
	}
	kernels.MatMulT(y, x, l.W, rows, l.Out, l.In, false)
}

// Quantize replaces the float32 weight by its NF4 form (bitsandbytes
// semantics, double quantization).
func (l *Linear) Quantize() error {
	if l.Q != nil {
		return nil
	}
	q, err := nf4.Quantize(l.W, l.Out, l.In)
	if err != nil {
		return err
	}
	l.Q, l.W = q, nil
	return nil
}

// Dequantize turns an NF4 or 16-bit weight back into float32 (before a merge).
func (l *Linear) Dequantize() {
	if l.W16 != nil {
		l.W = make([]float32, len(l.W16))
		l.widen16(l.W)
		l.W16, l.W16Type = nil, ""
		return
	}
	if l.Q == nil {
		return
	}
	l.W = make([]float32, l.Out*l.In)
	l.Q.Dequantize(l.W)
	l.Q = nil
}

// Forward computes y [rows, Out] from x [rows, In].
func (l *Linear) Forward(y, x []float32, rows int) {
	l.base(y, x, rows)
	if l.B != nil {
		for r := 0; r < rows; r++ {
			kernels.Axpy(1, l.B, y[r*l.Out:(r+1)*l.Out])
		}
	}
	if m := l.LoRA; m != nil {
		u := l.loraHidden(x, rows) // s·A·dropout(x), [rows, R]
		kernels.MatMulT(y, u, m.B, rows, l.Out, m.R, true)
	}
}

// loraHidden is u = s·dropout(x)·Aᵀ, [rows, R].
func (l *Linear) loraHidden(x []float32, rows int) []float32 {
	m := l.LoRA
	xd := l.dropped(x, rows)
	u := make([]float32, rows*m.R)
	kernels.MatMulT(u, xd, m.A, rows, m.R, l.In, false)
	for i := range u {
		u[i] *= m.Scale
	}
	return u
}

// dropped returns dropout(x): x itself when dropout is off, otherwise a copy
// with each element zeroed with probability p and the rest scaled by 1/(1−p).
func (l *Linear) dropped(x []float32, rows int) []float32 {
	if l.Dropout <= 0 {
		return x
	}
	xd := make([]float32, rows*l.In)
	keep := 1 / (1 - l.Dropout)
	for i := range xd {
		if !dropMask(l.DropoutSeed, uint64(i), l.Dropout) {
			xd[i] = x[i] * keep
		}
	}
	return xd
}

// dropMask decides element i's dropout from a counter-based hash (SplitMix64),
// so forward and backward agree without storing a mask.
func dropMask(seed, i uint64, p float32) bool {
	z := seed + (i+1)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return float32(z>>40)/float32(1<<24) < p
}

// Backward takes dy [rows, Out] and the forward's input x [rows, In]. It adds
// the LoRA gradients into LoRA.GradA/GradB (when they are allocated) and
// writes dx = dy·W + s·dropout'(dy·B·A) (adds into dx when accumulate). dx may
// be nil when no gradient is needed below this layer. The frozen W and b get
// no gradient: no weight-gradient GEMM for them.
//
//	u  = s·xd·Aᵀ          (xd = dropout(x))
//	dB += dyᵀ·u           [Out, R]
//	du = s·dy·B           [rows, R]
//	dA += duᵀ·xd          [R, In]
//	dx += du·A ⊙ mask/(1−p)
func (l *Linear) Backward(dx, dy, x []float32, rows int, accumulate bool) {
	if dx != nil {
		switch {
		case l.Q != nil && l.ComputeBF16:
			nf4.MatMulBF16(dx, dy, l.Q, rows, accumulate)
		case l.Q != nil:
			nf4.MatMul(dx, dy, l.Q, rows, accumulate)
		case l.W16 != nil && l.W16Type == tensor.F16:
			kernels.MatMulF16(dx, dy, l.W16, rows, l.In, l.Out, accumulate)
		case l.W16 != nil:
			kernels.MatMulBF16(dx, dy, l.W16, rows, l.In, l.Out, accumulate)
		default:
			kernels.MatMul(dx, dy, l.W, rows, l.In, l.Out, accumulate)
		}
	}
	m := l.LoRA
	if m == nil {
		return
	}
	xd := l.dropped(x, rows)
	if m.GradB != nil {
		u := make([]float32, rows*m.R)
		kernels.MatMulT(u, xd, m.A, rows, m.R, l.In, false)
		for i := range u {
			u[i] *= m.Scale
		}
		kernels.MatMulTN(m.GradB, dy, u, l.Out, m.R, rows, true)
	}
	du := make([]float32, rows*m.R)
	kernels.MatMul(du, dy, m.B, rows, m.R, l.Out, false)
	for i := range du {
		du[i] *= m.Scale
	}
	if m.GradA != nil {
		kernels.MatMulTN(m.GradA, du, xd, m.R, l.In, rows, true)
	}
	if dx != nil {
		if l.Dropout <= 0 {
			kernels.MatMul(dx, du, m.A, rows, l.In, m.R, true)
		} else {
			dxd := make([]float32, rows*l.In)
			kernels.MatMul(dxd, du, m.A, rows, l.In, m.R, false)
			keep := 1 / (1 - l.Dropout)
			for i, v := range dxd {
				if !dropMask(l.DropoutSeed, uint64(i), l.Dropout) {
					dx[i] += v * keep
				}
			}
		}
	}
}

// Params is the number of scalars in W and B.
func (l *Linear) Params() int { return l.Out*l.In + len(l.B) }

// WeightBytes is the memory the frozen weight takes.
func (l *Linear) WeightBytes() int {
	if l.Q != nil {
		return l.Q.Bytes()
	}
	if l.W16 != nil {
		return 2 * len(l.W16)
	}
	return 4 * len(l.W)
}

// Segment applies one LoRA module to rows [Lo, Hi) of a batch.
type Segment struct {
	Lo, Hi int
	M      *lora.Module
}

// ForwardSegments is the serving forward for a batch that mixes adapters: one
// product with the frozen W for every row, then each segment's low-rank term
// on its own rows (the SGMV idea of Punica/S-LoRA: the base cost is paid once
// for the whole batch, the adapters add only rank-r work). Rows outside every
// segment get the base layer alone. l.LoRA is ignored.
func (l *Linear) ForwardSegments(y, x []float32, rows int, segs []Segment) {
	lr := make([]kernels.LowRank, len(segs))
	for i, s := range segs {
		lr[i] = kernels.LowRank{Lo: s.Lo, Hi: s.Hi, A: s.M.A, B: s.M.B, BT: s.M.BT(), R: s.M.R, Scale: s.M.Scale}
	}
	if l.W != nil && len(lr) > 0 {
		// Float32 weight: the base product and the adapters' terms overlap
		// (compute-bound and memory-bound work on different threads).
		kernels.MatMulTLowRank(y, x, l.W, rows, l.Out, l.In, lr)
	} else {
		l.base(y, x, rows)
		kernels.AddLowRank(y, x, l.In, l.Out, lr)
	}
	if l.B != nil {
		for r := 0; r < rows; r++ {
			kernels.Axpy(1, l.B, y[r*l.Out:(r+1)*l.Out])
		}
	}
}

// PlainFloat32 reports whether the layer is a bare float32 product (no LoRA,
// no quantized or 16-bit weight), the case decode can batch with its siblings
// (kernels.MatMulTMany).
func (l *Linear) PlainFloat32() bool { return l.W != nil && l.LoRA == nil }

// PlainNF4 reports whether the layer is a bare NF4 product (no LoRA), which
// decode batches with its siblings (nf4.MatMulTMany).
func (l *Linear) PlainNF4() bool { return l.Q != nil && l.LoRA == nil }
