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

// attentionGEMMRows is the query count from which Attention works head by
// head with matrix products instead of one dot product per key.
const attentionGEMMRows = 8

// Attention computes softmax(q·kᵀ/√d + causal mask)·v per head.
// q, out: [nq, heads·d]; k, v: [nk, kvHeads·d] with nk ≥ pos0+nq (the KV
// store holds every earlier position). Query head h reads kv head
// h / (heads/kvHeads): kv heads are repeated, as HF repeat_kv does.
// When probs is not nil it receives the attention weights, laid out
// [heads, nq, pos0+nq] (masked entries zero) for the backward pass.
func Attention(out, q, k, v []float32, s AttentionShape, probs []float32) {
	if s.NQ >= attentionGEMMRows {
		attentionGEMM(out, q, k, v, s, probs)
		return
	}
	attentionDecode(out, q, k, v, s, probs)
}

// AttentionRef is the reference: one dot product per (query, key) pair,
// parallel over heads and queries.
func AttentionRef(out, q, k, v []float32, s AttentionShape, probs []float32) {
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

// AttentionBackward is the backward of Attention for one sequence with no
// cached prefix (training: Pos0 = 0, nk = nq). Given dout [nq, heads·d] and the
// forward's probs [heads, nq, nq], it writes dq [nq, heads·d] and adds into
// dk, dv [nq, kvHeads·d]:
//
//	dP = dout·vᵀ;  dv += Pᵀ·dout;  dS = P ⊙ (dP − rowsum(P ⊙ dP));
//	dq = scale·dS·k;  dk += scale·dSᵀ·q
//
// Work is split by kv head, so heads sharing a kv head never race.
func AttentionBackward(dq, dk, dv, dout, q, k, v, probs []float32, s AttentionShape) {
	if s.NQ >= attentionGEMMRows {
		attentionBackwardGEMM(dq, dk, dv, dout, q, k, v, probs, s)
		return
	}
	AttentionBackwardRef(dq, dk, dv, dout, q, k, v, probs, s)
}

// AttentionBackwardRef is the reference backward, one key at a time.
func AttentionBackwardRef(dq, dk, dv, dout, q, k, v, probs []float32, s AttentionShape) {
	d := s.HeadDim
	n := s.NQ
	rep := s.Heads / s.KVHeads
	qw, kw := s.Heads*d, s.KVHeads*d
	scale := float32(1 / math.Sqrt(float64(d)))
	Parallel(s.KVHeads, 1, func(lo, hi int) {
		dp := make([]float32, n)
		for g := lo; g < hi; g++ {
			for h := g * rep; h < (g+1)*rep; h++ {
				for i := 0; i < n; i++ {
					P := probs[(h*n+i)*n : (h*n+i)*n+i+1]
					do := dout[i*qw+h*d : i*qw+h*d+d]
					var sum float32
					for t := range P {
						dp[t] = Dot(do, v[t*kw+g*d:t*kw+g*d+d])
						sum += P[t] * dp[t]
					}
					dqi := dq[i*qw+h*d : i*qw+h*d+d]
					for j := range dqi {
						dqi[j] = 0
					}
					qi := q[i*qw+h*d : i*qw+h*d+d]
					for t, p := range P {
						if p == 0 {
							continue
						}
						Axpy(p, do, dv[t*kw+g*d:t*kw+g*d+d])
						ds := p * (dp[t] - sum) * scale
						Axpy(ds, k[t*kw+g*d:t*kw+g*d+d], dqi)
						Axpy(ds, qi, dk[t*kw+g*d:t*kw+g*d+d])
					}
				}
			}
		}
	})
}
