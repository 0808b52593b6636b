package kernels

import (
	"fmt"

	"github.com/lorakit/lorakit/tensor"
)

// Attention over a Q8_0 KV cache (AttentionSeq.K8, V8 with scales KS, VS),
// llama.cpp's --cache-type-k q8_0: each 32 consecutive values of a row are
// signed bytes q sharing one fp16 scale d, and stand for d·q. The result is
// float32 attention over those values, up to the order of summation:
//
//   - decode scores: dotRowsQ8, score[t] = Σ_b d_b·Σ_{j∈b} q_j·k8_j, the
//     bytes widened in registers (VPMOVSXBD, VCVTDQ2PS) on the AVX-512 path;
//   - decode values: weightedRowsQ8, out[j] = Σ_t (p_t·d_b(t))·v8[t,j];
//   - prefill: the head panels are dequantized while being gathered
//     (gatherHeadQ8) and multiplied by the float32 GEMM.
//
// The scales of the rows a decode job reads are widened to float32 first
// (VCVTPH2PS, 16 at a time), into the worker's scratch: a tenth of the
// values' work for a 64-wide head, and the kernels then read each scale as
// a broadcast memory operand.

// q8Block is the values sharing one scale (kvcache.Q8Block).
const q8Block = 32

func checkQ8Head(d int) {
	if d%q8Block != 0 {
		panic(fmt.Sprintf("kernels: Q8_0 keys and values need a head dim that is a multiple of %d, not %d", q8Block, d))
	}
}

// widenScales sets dst[i] to the fp16 src[i] as a float32.
func widenScales(dst []float32, src []uint16) { widen16(halfF16, dst, src) }

// dotRowsQ8 sets dst[t] = Σ_b s[t·lds+b]·Σ_{j<32} q[32b+j]·k[t·ldk+32b+j]
// for t < len(dst), b < len(q)/32: query q against the Q8_0 rows of k with
// their widened scales s.
func dotRowsQ8(dst, q []float32, k []int8, ldk int, s []float32, lds int) {
	d, nt := len(q), len(dst)
	checkQ8Head(d)
	if nt == 0 {
		return
	}
	if d == 0 {
		clear(dst)
		return
	}
	nb := d / q8Block
	_ = k[(nt-1)*ldk+d-1]
	_ = s[(nt-1)*lds+nb-1]
	if vec512 && use16Asm {
		dotRowsQ8x512(d, nt, &q[0], &k[0], ldk, &s[0], lds, &dst[0])
		return
	}
	for t := range dst {
		row, sr := k[t*ldk:][:d], s[t*lds:][:nb]
		var sum float32
		for b, sb := range sr {
			qb, kb := (*[q8Block]float32)(q[b*q8Block:]), (*[q8Block]int8)(row[b*q8Block:])
			var bs float32
			for j, x := range qb {
				bs += x * float32(kb[j])
			}
			sum += sb * bs
		}
		dst[t] = sum
	}
}

// weightedRowsQ8 is weightedRows with Q8_0 value rows: out[j] =
// Σ_t (p[t]·s[t·lds+j/32])·v[t·ldv+j] for j < len(out), t < len(p), summed
// in order of t.
func weightedRowsQ8(out, p []float32, v []int8, ldv int, s []float32, lds int) {
	d := len(out)
	checkQ8Head(d)
	if len(p) == 0 || d == 0 {
		clear(out)
		return
	}
	nb := d / q8Block
	_ = v[(len(p)-1)*ldv+d-1]
	_ = s[(len(p)-1)*lds+nb-1]
	if vec512 && use16Asm {
		weightedRowsQ8x512(d, len(p), &p[0], &v[0], ldv, &s[0], lds, &out[0])
		return
	}
	clear(out)
	for t, pt := range p {
		row, sr := v[t*ldv:][:d], s[t*lds:][:nb]
		for b, sb := range sr {
			w := pt * sb
			ob, vb := (*[q8Block]float32)(out[b*q8Block:]), (*[q8Block]int8)(row[b*q8Block:])
			for j, x := range vb {
				ob[j] += w * float32(x)
			}
		}
	}
}

// gatherHeadQ8 is gatherHead from Q8_0 rows, dequantizing: columns
// [h·d, h·d+d) of rows of x (row width w, scales xs [rows, w/32]) into dst
// [rows, d] as float32.
func gatherHeadQ8(dst []float32, x []int8, xs []uint16, rows, w, h, d int) {
	checkQ8Head(d)
	nb, wb := d/q8Block, w/q8Block
	for i := 0; i < rows; i++ {
		src, sc := x[i*w+h*d:][:d], xs[i*wb+h*nb:][:nb]
		o := dst[i*d:][:d]
		for b, sb := range sc {
			sf := tensor.F16ToF32(sb)
			ob, xb := (*[q8Block]float32)(o[b*q8Block:]), (*[q8Block]int8)(src[b*q8Block:])
			for j, v := range xb {
				ob[j] = sf * float32(v)
			}
		}
	}
}
