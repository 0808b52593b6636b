//go:build !noasm && amd64

package kernels

// The Q8_0 attention kernels (attention_q8.go) on AVX-512 F (vec512): 16
// bytes at a time sign-extended to int32 (VPMOVSXBD) and converted to
// float32 (VCVTDQ2PS, exact), the widened scales read as broadcast memory
// operands. d is a positive multiple of 32.

// dotRowsQ8x512 sets dst[t] = Σ_b s[t*lds+b]·Σ_{j<32} q[32b+j]·k[t*ldk+32b+j]
// for t < nt, four rows at a time.
//
//go:noescape
func dotRowsQ8x512(d, nt int, q *float32, k *int8, ldk int, s *float32, lds int, dst *float32)

// weightedRowsQ8x512 sets out[j] = Σ_t (p[t]·s[t*lds+j/32])·v[t*ldv+j] for
// j < d, t < nt, summed in order of t, 64 columns at a time.
//
//go:noescape
func weightedRowsQ8x512(d, nt int, p *float32, v *int8, ldv int, s *float32, lds int, out *float32)
