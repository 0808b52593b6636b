package kernels

import "math"

// AttentionShape describes one sequence's causal attention: nq new query rows
// at positions pos0 .. pos0+nq−1 attend to keys at positions 0 .. their own
// (and not further back than Window positions when Window > 0).
type AttentionShape struct {
	NQ, Pos0       int
	Heads, KVHeads int
	HeadDim        int
	Window         int
}

// Attention computes softmax(q·kᵀ/√d + causal mask)·v per head.
// q, out: [nq, heads·d]; k, v: [nk, kvHeads·d] with nk ≥ pos0+nq (the KV
// store holds every earlier position). Query head h reads kv head
// h / (heads/kvHeads): kv heads are repeated, as HF repeat_kv does.
// When probs is not nil it receives the attention weights, laid out
// [heads, nq, pos0+nq] (masked entries zero) for the backward pass.
func Attention(out, q, k, v []float32, s AttentionShape, probs []float32) {
	d := s.HeadDim
	rep := s.Heads / s.KVHeads
	nk := s.Pos0 + s.NQ
	qw, kw := s.Heads*d, s.KVHeads*d
	scale := float32(1 / math.Sqrt(float64(d)))
	Parallel(s.Heads*s.NQ, 8, func(lo, hi int) {
		scores := make([]float32, nk)
		for job := lo; job < hi; job++ {
			h, i := job/s.NQ, job%s.NQ
			g := h / rep
			p := s.Pos0 + i
			first := 0
			if s.Window > 0 && p-s.Window+1 > 0 {
				first = p - s.Window + 1
			}
			qi := q[i*qw+h*d : i*qw+h*d+d]
			sc := scores[:p+1]
			for t := 0; t < first; t++ {
				sc[t] = float32(math.Inf(-1))
			}
			for t := first; t <= p; t++ {
				sc[t] = Dot(qi, k[t*kw+g*d:t*kw+g*d+d]) * scale
			}
			Softmax(sc)
			o := out[i*qw+h*d : i*qw+h*d+d]
			for j := range o {
				o[j] = 0
			}
			for t := first; t <= p; t++ {
				Axpy(sc[t], v[t*kw+g*d:t*kw+g*d+d], o)
			}
			if probs != nil {
				row := probs[(h*s.NQ+i)*nk : (h*s.NQ+i+1)*nk]
				copy(row, sc)
				for t := p + 1; t < nk; t++ {
					row[t] = 0
				}
			}
		}
	})
}
