package kernels

import (
	"math"

	"github.com/lorakit/lorakit/tensor"
)

// The decode path of attention: a few query rows against a long KV cache.
// Each (query row, head) is one job: scores with the dot kernels the GEMV
// uses (one query row against four keys at a time), softmax with the vector
// exp, and the value rows weighted by the probabilities. Nothing of size
// T×T exists; the scores row is per worker.

// AttentionSeq is one sequence's share of a batched attention call: the
// arguments of Attention. The keys and values are float32 (K, V) or, when
// K16 is set, 16-bit floats of type KVType (BF16 or F16) in K16 and V16,
// laid out alike: a serving KV cache held in the model's 16-bit type. They
// are widened exactly to float32 as they are read (in registers on the
// AVX-512 paths, see attention16.go), and all arithmetic is float32 as for
// float32 keys and values.
type AttentionSeq struct {
	Out, Q, K, V []float32
	K16, V16     []uint16
	KVType       tensor.DType
	Shape        AttentionShape
	Probs        []float32
}

// AttentionBatch runs Attention for several sequences (a serving step). Long
// query blocks (prefill) go through the per-head matrix products one sequence
// at a time; all the short ones (decode) share one parallel loop over their
// (sequence, query row, head) jobs, so a step of 64 decoding sequences is one
// fork-join rather than 64.
func AttentionBatch(seqs []AttentionSeq) {
	var jobs int
	for i := range seqs {
		s := &seqs[i]
		if s.Shape.NQ >= attentionGEMMRows {
			attentionGEMMSeq(s)
			continue
		}
		jobs += s.Shape.NQ * s.Shape.Heads
	}
	if jobs == 0 {
		return
	}
	Parallel(jobs, 4, func(lo, hi int) {
		var scores, wbuf []float32
		seq, base := 0, 0 // the sequence holding job lo, and its first job
		for job := lo; job < hi; job++ {
			for {
				s := &seqs[seq]
				if s.Shape.NQ < attentionGEMMRows && job < base+s.Shape.NQ*s.Shape.Heads {
					break
				}
				if s.Shape.NQ < attentionGEMMRows {
					base += s.Shape.NQ * s.Shape.Heads
				}
				seq++
			}
			s := &seqs[seq]
			j := job - base
			nk := s.Shape.Pos0 + s.Shape.NQ
			if cap(scores) < nk {
				scores = make([]float32, nk+64)
			}
			attendRow(s, j/s.Shape.Heads, j%s.Shape.Heads, scores[:nk], &wbuf)
		}
	})
}

// attentionDecode is Attention for a short query block.
func attentionDecode(out, q, k, v []float32, s AttentionShape, probs []float32) {
	AttentionBatch([]AttentionSeq{{Out: out, Q: q, K: k, V: v, Shape: s, Probs: probs}})
}

// attendRow computes query row i of head h of one sequence. wbuf is the
// worker's scratch for widening 16-bit keys on the portable path.
func attendRow(a *AttentionSeq, i, h int, scores []float32, wbuf *[]float32) {
	s := a.Shape
	d := s.HeadDim
	g := h / (s.Heads / s.KVHeads)
	qw, kw := s.Heads*d, s.KVHeads*d
	p := s.Pos0 + i
	first := 0
	if s.Window > 0 && p-s.Window+1 > 0 {
		first = p - s.Window + 1
	}
	nt := p + 1 - first
	qi := a.Q[i*qw+h*d : i*qw+h*d+d]
	sc := scores[:nt]
	// Raw scores q·k for keys first..p, four keys per kernel call.
	dk := &impl.dot[1]
	t := 0
	if a.K16 != nil {
		if d > 0 {
			dotRows16(half16Of(a.KVType), sc, qi, a.K16[first*kw+g*d:], kw, wbuf)
		} else {
			clear(sc)
		}
	} else if kg := a.K[first*kw+g*d:]; d > 0 {
		for ; t+dk.group <= nt; t += dk.group {
			dk.fn(d, &qi[0], d, &kg[t*kw], kw, &sc[t], 0, 0)
		}
		for ; t < nt; t++ {
			dk.fn1(d, &qi[0], d, &kg[t*kw], kw, &sc[t], 0, 0)
		}
	} else {
		clear(sc)
	}
	// softmax(scale·scores): the maximum is taken on the raw scores (scale > 0).
	scale := float32(1 / math.Sqrt(float64(d)))
	m := float32(math.Inf(-1))
	nan := false
	for _, x := range sc {
		if x > m {
			m = x
		} else if x != x {
			nan = true
		}
	}
	o := a.Out[i*qw+h*d : i*qw+h*d+d]
	if nan || math.IsInf(float64(m), 0) {
		// NaN, or ±Inf scores: the reference's exact semantics.
		for t := range sc {
			sc[t] *= scale
		}
		Softmax(sc)
	} else {
		inv := 1 / expScaleSum(sc, scale, m*scale)
		for t := range sc {
			sc[t] *= inv
		}
	}
	if a.V16 != nil {
		weightedRows16(half16Of(a.KVType), o, sc, a.V16[first*kw+g*d:], kw)
	} else {
		weightedRows(o, sc, a.V[first*kw+g*d:], kw)
	}
	if a.Probs != nil {
		row := a.Probs[(h*s.NQ+i)*(s.Pos0+s.NQ):][:s.Pos0+s.NQ]
		clear(row[:first])
		copy(row[first:], sc)
		clear(row[p+1:])
	}
}
