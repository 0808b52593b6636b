package kernels

import (
	"math"
	"sync"

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
//
// When K8 is set, the keys and values are Q8_0 instead (llama.cpp's 8-bit
// cache, see attention_q8.go): signed bytes in K8 and V8, laid out as K and
// V, each 32 consecutive values of a row sharing one fp16 scale (raw bits)
// in KS and VS, [positions, kvHeads·headDim/32]; HeadDim must be a
// multiple of 32. KVType is not read then.
type AttentionSeq struct {
	Out, Q, K, V []float32
	K16, V16     []uint16
	KVType       tensor.DType
	K8, V8       []int8
	KS, VS       []uint16
	Shape        AttentionShape
	Probs        []float32
}

// attnScratch is a decode worker's scratch: the scores row, key rows
// widened on the portable 16-bit path, and the widened Q8_0 scales. Pooled,
// so a serving step allocates none.
type attnScratch struct {
	scores, wbuf, ks, vs []float32
}

var attnScratches = sync.Pool{New: func() any { return new(attnScratch) }}

// growF returns (*b)[:n], reallocating when the capacity is short.
func growF(b *[]float32, n int) []float32 {
	if cap(*b) < n {
		*b = make([]float32, n+64)
	}
	return (*b)[:n]
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
		buf := attnScratches.Get().(*attnScratch)
		defer attnScratches.Put(buf)
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
			attendRow(s, j/s.Shape.Heads, j%s.Shape.Heads, buf)
		}
	})
}

// attentionDecode is Attention for a short query block.
func attentionDecode(out, q, k, v []float32, s AttentionShape, probs []float32) {
	AttentionBatch([]AttentionSeq{{Out: out, Q: q, K: k, V: v, Shape: s, Probs: probs}})
}

// attendRow computes query row i of head h of one sequence, with the
// worker's scratch buf.
func attendRow(a *AttentionSeq, i, h int, buf *attnScratch) {
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
	sc := growF(&buf.scores, nt)
	// Raw scores q·k for keys first..p, four keys per kernel call.
	dk := &impl.dot[1]
	t := 0
	if a.K8 != nil {
		// The scales of rows first..p, all kv heads (contiguous), widened;
		// this head's are nb apart from g·nb on, kb to a row.
		kb, nb := kw/q8Block, d/q8Block
		sk := growF(&buf.ks, nt*kb)
		widenScales(sk, a.KS[first*kb:(p+1)*kb])
		dotRowsQ8(sc, qi, a.K8[first*kw+g*d:], kw, sk[g*nb:], kb)
	} else if a.K16 != nil {
		if d > 0 {
			dotRows16(half16Of(a.KVType), sc, qi, a.K16[first*kw+g*d:], kw, &buf.wbuf)
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
	if a.V8 != nil {
		kb, nb := kw/q8Block, d/q8Block
		sv := growF(&buf.vs, nt*kb)
		widenScales(sv, a.VS[first*kb:(p+1)*kb])
		weightedRowsQ8(o, sc, a.V8[first*kw+g*d:], kw, sv[g*nb:], kb)
	} else if a.V16 != nil {
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
