package kernels

import (
	"fmt"

	"github.com/lorakit/lorakit/tensor"
)

// Attention over a 16-bit KV cache (AttentionSeq.K16, V16): a model served
// in BF16 or F16 keeps its keys and values in that type, as vLLM's
// kv_cache_dtype="auto" and llama.cpp's F16 cache do, which halves the
// cache. Every value is widened exactly to float32 as it is read and the
// arithmetic is the float32 kernels', so the result is float32 attention
// over the widened cache (up to the order of summation).
//
//   - decode scores: the 16-bit dot kernels of the GEMV (dot16, widening in
//     registers), or on the portable path a block of key rows widened into
//     a small float32 buffer for the float32 dot kernels (as
//     gemv16RangeWiden does for weights);
//   - decode values: weightedRows16, weightedRows with each value row
//     widened in registers (attention16_amd64.s);
//   - prefill: the head panels are gathered with widening (gatherHead16)
//     and multiplied by the float32 GEMM.

// half16Of maps a 16-bit dtype to the kernels' format tag.
func half16Of(dt tensor.DType) half16 {
	switch dt {
	case tensor.BF16:
		return halfBF16
	case tensor.F16:
		return halfF16
	}
	panic(fmt.Sprintf("kernels: 16-bit keys and values of type %q (want BF16 or F16)", dt))
}

// dotRowsBlock is the key rows the portable path widens at a time: 32 rows
// of a 128-wide head are 16 KB, which stays in L1 next to the query.
const dotRowsBlock = 32

// dotRows16 sets dst[t] = q·widen(k[t·ldk : t·ldk+len(q)]) for t < len(dst).
// buf is scratch for the portable path, grown as needed.
func dotRows16(kind half16, dst, q []float32, k []uint16, ldk int, buf *[]float32) {
	d, nt := len(q), len(dst)
	if nt == 0 {
		return
	}
	_ = k[(nt-1)*ldk+d-1]
	if use16Asm && dot16Max[kind] > 0 {
		dk := &dot16[kind][1]
		t := 0
		for ; t+dk.group <= nt; t += dk.group {
			dk.fn(d, &q[0], d, &k[t*ldk], ldk, &dst[t], 0, 0)
		}
		for ; t < nt; t++ {
			dk.fn1(d, &q[0], d, &k[t*ldk], ldk, &dst[t], 0, 0)
		}
		return
	}
	if cap(*buf) < dotRowsBlock*d {
		*buf = make([]float32, dotRowsBlock*d)
	}
	b := (*buf)[:dotRowsBlock*d]
	dk := &impl.dot[1]
	for t0 := 0; t0 < nt; t0 += dotRowsBlock {
		nb := min(dotRowsBlock, nt-t0)
		for r := 0; r < nb; r++ {
			widenGo(kind, b[r*d:(r+1)*d], k[(t0+r)*ldk:][:d])
		}
		t := 0
		for ; t+dk.group <= nb; t += dk.group {
			dk.fn(d, &q[0], d, &b[t*d], d, &dst[t0+t], 0, 0)
		}
		for ; t < nb; t++ {
			dk.fn1(d, &q[0], d, &b[t*d], d, &dst[t0+t], 0, 0)
		}
	}
}

// weightedRows16 is weightedRows with 16-bit value rows: out[j] =
// Σ_t p[t]·widen(v[t·ldv+j]) for j < len(out), t < len(p), summed in order
// of t.
func weightedRows16(kind half16, out, p []float32, v []uint16, ldv int) {
	d := len(out)
	if len(p) == 0 {
		clear(out)
		return
	}
	_ = v[(len(p)-1)*ldv+d-1]
	j := 0
	if vec512 && use16Asm && d >= 16 {
		j = d &^ 15
		if kind == halfBF16 {
			weightedRowsBF16x512(j, len(p), &p[0], &v[0], ldv, &out[0])
		} else {
			weightedRowsF16x512(j, len(p), &p[0], &v[0], ldv, &out[0])
		}
	}
	if j == d {
		return
	}
	if kind == halfBF16 {
		for ; j < d; j++ {
			var s float32
			for t, pt := range p {
				s += pt * tensor.BF16ToF32(v[t*ldv+j])
			}
			out[j] = s
		}
		return
	}
	for ; j < d; j++ {
		var s float32
		for t, pt := range p {
			s += pt * tensor.F16ToF32(v[t*ldv+j])
		}
		out[j] = s
	}
}

// gatherHead16 is gatherHead from 16-bit rows, widening: columns
// [h·d, h·d+d) of rows of x (row width w) into dst [rows, d] as float32.
func gatherHead16(kind half16, dst []float32, x []uint16, rows, w, h, d int) {
	for i := 0; i < rows; i++ {
		widen16(kind, dst[i*d:(i+1)*d], x[i*w+h*d:i*w+h*d+d])
	}
}
