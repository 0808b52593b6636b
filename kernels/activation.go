package kernels

import "math"

// SiLU is z·σ(z) = z / (1 + e^−z).
func SiLU(z float32) float32 { return z / (1 + Exp32(-z)) }

// SwiGLU writes dst[i] = silu(gate[i]) · up[i], the Llama MLP's inner product.
func SwiGLU(dst, gate, up []float32) { swiGLU(dst, gate, up) }

// Softmax replaces x by exp(x − max) / Σ exp(x − max) in place; −Inf entries
// become 0. An all −Inf row becomes all zeros rather than NaN.
func Softmax(x []float32) {
	m := float32(math.Inf(-1))
	for _, v := range x {
		if v > m {
			m = v
		}
	}
	if math.IsInf(float64(m), -1) {
		for i := range x {
			x[i] = 0
		}
		return
	}
	inv := 1 / expScaleSum(x, 1, m)
	for i := range x {
		x[i] *= inv
	}
}

// LogSumExp returns log Σ exp(x) computed stably (float64 accumulation).
func LogSumExp(x []float32) float64 {
	m := math.Inf(-1)
	for _, v := range x {
		if float64(v) > m {
			m = float64(v)
		}
	}
	if math.IsInf(m, -1) {
		return m
	}
	var sum float64
	mf := float32(m)
	for _, v := range x {
		sum += float64(Exp32(v - mf))
	}
	return m + math.Log(sum)
}

// SwiGLUBackward takes d(out) for out = silu(gate)·up and writes dgate and dup:
// dup = dout·silu(gate), dgate = dout·up·σ(gate)·(1 + gate·(1 − σ(gate))).
func SwiGLUBackward(dgate, dup, dout, gate, up []float32) {
	up, dgate, dup = up[:len(gate)], dgate[:len(gate)], dup[:len(gate)]
	dout = dout[:len(gate)]
	for i, z := range gate {
		sig := 1 / (1 + Exp32(-z))
		dup[i] = dout[i] * z * sig
		dgate[i] = dout[i] * up[i] * sig * (1 + z*(1-sig))
	}
}

// SoftmaxCrossEntropyBackward turns a row of logits into its gradient in
// place: (softmax(x) − onehot(target))·scale.
func SoftmaxCrossEntropyBackward(x []float32, target int, scale float32) {
	Softmax(x)
	for i := range x {
		x[i] *= scale
	}
	x[target] -= scale
}
