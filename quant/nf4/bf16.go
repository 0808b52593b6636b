package nf4

import (
	"math"
	"unsafe"

	"github.com/lorakit/lorakit/kernels"
)

// BF16 compute, bitsandbytes' bnb_4bit_compute_dtype=torch.bfloat16 (the
// QLoRA paper's setting): the products of the GEMM paths (m > fusedMaxM rows
// of x: prefill and training) round both operands, the decoded weights and
// x (or dy), to BF16 and sum their products in float32. On a CPU with
// AVX512_BF16 that runs VDPBF16PS, twice the float32 FMA rate. Without it
// the rounding is emulated: the same operands, float32 products (exact for
// BF16 inputs) and sums, so results agree to float32 summation error on
// every machine. The fused paths (m ≤ fusedMaxM: decode, bound by memory,
// not arithmetic) and rows that are not a multiple of 64 stay exact
// float32.

// MatMulTBF16 is MatMulT with BF16 compute.
func MatMulTBF16(dst, x []float32, w *Tensor, m int, accumulate bool) {
	matMulT(impl, dst, x, w, m, accumulate, true)
}

// MatMulBF16 is MatMul with BF16 compute.
func MatMulBF16(dst, dy []float32, w *Tensor, m int, accumulate bool) {
	matMul(impl, dst, dy, w, m, accumulate, true)
}

// bf16Bits rounds f to BF16 as VCVTNEPS2BF16 does: to nearest even, NaN
// kept a quiet NaN, denormal inputs flushed to a zero of their sign (the
// instruction's DAZ).
func bf16Bits(f float32) uint16 {
	b := math.Float32bits(f)
	switch {
	case b&0x7fffffff > 0x7f800000:
		return uint16(b>>16) | 0x40
	case b&0x7f800000 == 0:
		return uint16(b>>16) & 0x8000
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}

// roundBF16 is f rounded to BF16 (bf16Bits) and widened back.
func roundBF16(f float32) float32 { return math.Float32frombits(uint32(bf16Bits(f)) << 16) }

// roundBF16s writes src rounded to BF16 into dst (dst may be src), in
// parallel: the operands of the emulated BF16 path.
func roundBF16s(dst, src []float32) {
	kernels.Parallel(len(src), 4096, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			dst[i] = roundBF16(src[i])
		}
	})
}

// toBF16Rows rounds x [m, k] to BF16 into xb (k/2 pairs per row), in
// parallel: the x operand of gemmBP.
func toBF16Rows(ks *kernelSet, xb []uint32, x []float32, m, k int) {
	kernels.Parallel(m, max(1, 8192/k), func(lo, hi int) {
		ks.toBF16(u16s(xb[lo*k/2:hi*k/2]), x[lo*k:hi*k])
	})
}

// u16s views a slice of uint32 as its uint16 halves, in memory order (the
// BF16 pair of depths 2p and 2p+1 is one little-endian uint32).
func u16s(v []uint32) []uint16 {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*uint16)(unsafe.Pointer(&v[0])), 2*len(v))
}
