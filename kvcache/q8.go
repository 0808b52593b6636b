package kvcache

import (
	"fmt"
	"math"

	"github.com/lorakit/lorakit/tensor"
)

// Q8_0 is the 8-bit cache type, llama.cpp's Q8_0 (its --cache-type-k q8_0):
// every 32 consecutive values of a row share one IEEE half scale d, and
// each value is held as a signed byte q, standing for d·q. A position takes
// 34 bytes per 32 values (1.0625 bytes a value against 2 for BF16), and the
// error of a value is at most d/2 = max|block|/254.
//
// A Q8_0 layer holds K8, V8 (int8 [capacity, kvDim], laid out as K and V)
// and KS, VS (the raw half bits of the scales, [capacity, kvDim/32]).
const Q8_0 tensor.DType = "Q8_0"

// Q8Block is the values that share one scale.
const Q8Block = 32

// q8NaN is the scale of a block that held a NaN or an infinity: every value
// read from it is NaN (its bytes are 0, and NaN·0 is NaN).
const q8NaN = 0x7e00

// CheckQ8 reports whether a model with kv width kvDim and head width
// headDim (0 if unknown) can keep a Q8_0 cache: a block must not straddle
// two heads, nor a row end.
func CheckQ8(kvDim, headDim int) error {
	if kvDim%Q8Block != 0 || headDim%Q8Block != 0 {
		return fmt.Errorf("kvcache: a Q8_0 KV cache needs the kv width (%d) and the head dim (%d) to be multiples of %d", kvDim, headDim, Q8Block)
	}
	return nil
}

// QuantizeQ8 quantizes src (a multiple of 32 values) into q (as many bytes)
// and scales (one per 32 values), block by block, as ggml's
// quantize_row_q8_0_ref does:
//
//	amax = max|x|;  d = amax/127;  id = d ≠ 0 ? 1/d : 0
//	q[j] = roundf(x[j]·id)  (half away from zero);  scale = fp16(d) (nearest even)
//
// in float32 (q uses the float32 d, not its fp16 rounding). A block holding
// a NaN or an infinity gets the scale fp16 NaN and zero bytes, so that
// whatever reads it is NaN rather than a finite number made up.
//
// Where C leaves the conversion undefined (x·id infinite: d is below about
// 3e-39, so its fp16 scale is 0 and the values read back are 0 whatever q
// holds) q is clamped to ±127.
func QuantizeQ8(q []int8, scales []uint16, src []float32) {
	if len(src)%Q8Block != 0 {
		panic(fmt.Sprintf("kvcache.QuantizeQ8: %d values, not a multiple of %d", len(src), Q8Block))
	}
	nb := len(src) / Q8Block
	q, scales = q[:len(src)], scales[:nb]
	for b := 0; b < nb; b++ {
		x := (*[Q8Block]float32)(src[b*Q8Block:])
		qb := (*[Q8Block]int8)(q[b*Q8Block:])
		var amax float32
		finite := true
		for _, v := range x {
			bits := math.Float32bits(v) & 0x7fffffff
			if bits >= 0x7f800000 {
				finite = false
			}
			if a := math.Float32frombits(bits); a > amax {
				amax = a
			}
		}
		if !finite {
			scales[b] = q8NaN
			*qb = [Q8Block]int8{}
			continue
		}
		d := amax / 127
		var id float32
		if d != 0 {
			id = 1 / d
		}
		for j, v := range x {
			qb[j] = roundQ8(v * id)
		}
		scales[b] = tensor.F32ToF16(d)
	}
}

// roundQ8 is C's roundf (half away from zero) of x, clamped to ±127:
// float64 holds x ± 0.5 exactly for any float32 |x| < 2²³, and truncation
// then rounds half away from zero. No branch depends on the sign: the
// signs of keys and values are random, and a branch on them would be
// mispredicted half the time (it made quantizing the cache 6% of a
// serving step).
func roundQ8(x float32) int8 {
	r := float64(x)
	r = max(-127, min(127, r+math.Copysign(0.5, r)))
	if r != r {
		return 0
	}
	return int8(r)
}

// DequantizeQ8 sets dst[i] to the value q[i] stands for: the float32 of its
// block's fp16 scale times q[i].
func DequantizeQ8(dst []float32, q []int8, scales []uint16) {
	dst = dst[:len(q)]
	for i, v := range q {
		dst[i] = tensor.F16ToF32(scales[i/Q8Block]) * float32(v)
	}
}
