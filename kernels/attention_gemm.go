package kernels

import (
	"math"
	"sync"
)

// The matrix-product form of causal attention, head by head:
//
//	S = Qh·Kgᵀ·scale  [nq, nk];  P = softmax(S + mask);  Oh = P·Vg  [nq, d]
//
// Qh, Kg and Vg are gathered into contiguous [rows, d] panels first (the
// projections interleave heads). The masked upper triangle costs flops the
// GEMM would skip in a fused kernel, but it runs at GEMM speed.

// gatherHead copies columns [h·d, h·d+d) of rows of x (row width w) into dst [rows, d].
func gatherHead(dst, x []float32, rows, w, h, d int) {
	for i := 0; i < rows; i++ {
		copy(dst[i*d:(i+1)*d], x[i*w+h*d:i*w+h*d+d])
	}
}

// scatterHead writes (or adds, when add) src [rows, d] into columns [h·d, h·d+d) of x.
func scatterHead(x, src []float32, rows, w, h, d int, add bool) {
	for i := 0; i < rows; i++ {
		row := x[i*w+h*d : i*w+h*d+d]
		if add {
			Axpy(1, src[i*d:(i+1)*d], row)
		} else {
			copy(row, src[i*d:(i+1)*d])
		}
	}
}

// maskedSoftmaxRows applies the causal (and window) mask and a row softmax to
// S [nq, nk] in place: row i may see keys first(i) .. pos0+i.
func maskedSoftmaxRows(S []float32, s AttentionShape, nk int) {
	for i := 0; i < s.NQ; i++ {
		p := s.Pos0 + i
		first := 0
		if s.Window > 0 && p-s.Window+1 > 0 {
			first = p - s.Window + 1
		}
		row := S[i*nk : (i+1)*nk]
		for t := 0; t < first; t++ {
			row[t] = 0
		}
		Softmax(row[first : p+1])
		for t := p + 1; t < nk; t++ {
			row[t] = 0
		}
	}
}

func attentionGEMM(out, q, k, v []float32, s AttentionShape, probs []float32) {
	attentionGEMMSeq(&AttentionSeq{Out: out, Q: q, K: k, V: v, Shape: s, Probs: probs})
}

// gemmAttnScratch holds attentionGEMMSeq's panels and scores, pooled so
// that prefill in steady state allocates nothing.
type gemmAttnScratch struct {
	qh, kg, vg, oh, S []float32
}

var gemmAttnScratches = sync.Pool{New: func() any { return new(gemmAttnScratch) }}

// attentionGEMMSeq is attentionGEMM for one AttentionSeq; 16-bit keys and
// values (a.K16, a.V16) are widened, and Q8_0 ones (a.K8, a.V8)
// dequantized, while being gathered into the float32 panels, so the
// products are those of the widened cache.
func attentionGEMMSeq(a *AttentionSeq) {
	s, out, q, probs := a.Shape, a.Out, a.Q, a.Probs
	d, nq := s.HeadDim, s.NQ
	nk := s.Pos0 + nq
	rep := s.Heads / s.KVHeads
	qw, kw := s.Heads*d, s.KVHeads*d
	scale := float32(1 / math.Sqrt(float64(d)))
	buf := gemmAttnScratches.Get().(*gemmAttnScratch)
	defer gemmAttnScratches.Put(buf)
	qh := growF(&buf.qh, nq*d)
	kg := growF(&buf.kg, nk*d)
	vg := growF(&buf.vg, nk*d)
	oh := growF(&buf.oh, nq*d)
	var S []float32
	if probs == nil {
		S = growF(&buf.S, nq*nk)
	}
	for g := 0; g < s.KVHeads; g++ {
		if a.K8 != nil {
			gatherHeadQ8(kg, a.K8, a.KS, nk, kw, g, d)
			gatherHeadQ8(vg, a.V8, a.VS, nk, kw, g, d)
		} else if a.K16 != nil {
			kind := half16Of(a.KVType)
			gatherHead16(kind, kg, a.K16, nk, kw, g, d)
			gatherHead16(kind, vg, a.V16, nk, kw, g, d)
		} else {
			gatherHead(kg, a.K, nk, kw, g, d)
			gatherHead(vg, a.V, nk, kw, g, d)
		}
		for h := g * rep; h < (g+1)*rep; h++ {
			gatherHead(qh, q, nq, qw, h, d)
			P := S
			if probs != nil {
				P = probs[h*nq*nk : (h+1)*nq*nk]
			}
			MatMulT(P, qh, kg, nq, nk, d, false)
			for i := range P {
				P[i] *= scale
			}
			maskedSoftmaxRows(P, s, nk)
			MatMul(oh, P, vg, nq, d, nk, false)
			scatterHead(out, oh, nq, qw, h, d, false)
		}
	}
}

// attentionBackwardGEMM: per head, with P from the forward,
//
//	dP = dOh·Vgᵀ;  dVg += Pᵀ·dOh;  dS = P ⊙ (dP − rowsum(P ⊙ dP))·scale;
//	dQh = dS·Kg;  dKg += dSᵀ·Qh
func attentionBackwardGEMM(dq, dk, dv, dout, q, k, v, probs []float32, s AttentionShape) {
	d, n := s.HeadDim, s.NQ
	rep := s.Heads / s.KVHeads
	qw, kw := s.Heads*d, s.KVHeads*d
	scale := float32(1 / math.Sqrt(float64(d)))
	qh, doh, dqh := make([]float32, n*d), make([]float32, n*d), make([]float32, n*d)
	kg, vg := make([]float32, n*d), make([]float32, n*d)
	dkg, dvg := make([]float32, n*d), make([]float32, n*d)
	dP := make([]float32, n*n)
	for g := 0; g < s.KVHeads; g++ {
		gatherHead(kg, k, n, kw, g, d)
		gatherHead(vg, v, n, kw, g, d)
		clear(dkg)
		clear(dvg)
		for h := g * rep; h < (g+1)*rep; h++ {
			P := probs[h*n*n : (h+1)*n*n]
			gatherHead(doh, dout, n, qw, h, d)
			gatherHead(qh, q, n, qw, h, d)
			MatMulT(dP, doh, vg, n, n, d, false)
			MatMulTN(dvg, P, doh, n, d, n, true)
			for i := 0; i < n; i++ {
				pr, dr := P[i*n:(i+1)*n], dP[i*n:(i+1)*n]
				var sum float32
				for t := 0; t <= i; t++ {
					sum += pr[t] * dr[t]
				}
				for t := range dr {
					dr[t] = pr[t] * (dr[t] - sum) * scale
				}
			}
			MatMul(dqh, dP, kg, n, d, n, false)
			scatterHead(dq, dqh, n, qw, h, d, false)
			MatMulTN(dkg, dP, qh, n, d, n, true)
		}
		scatterHead(dk, dkg, n, kw, g, d, true)
		scatterHead(dv, dvg, n, kw, g, d, true)
	}
}
