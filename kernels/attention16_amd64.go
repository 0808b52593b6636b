//go:build !noasm && amd64

package kernels

// weightedRows{BF16,F16}x512 are weightedRows512 with 16-bit value rows,
// each 16-value chunk widened in a register (VPMOVZXWD + VPSLLD for
// bfloat16, VCVTPH2PS for binary16; both exact) before its FMA. They need
// AVX-512 F only (vec512).

//go:noescape
func weightedRowsBF16x512(d, nt int, p *float32, v *uint16, ldv int, out *float32)

//go:noescape
func weightedRowsF16x512(d, nt int, p *float32, v *uint16, ldv int, out *float32)
