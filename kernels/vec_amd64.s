//go:build !noasm && amd64

#include "textflag.h"

// Vector forms of the element-wise kernels (vec.go documents each). exp uses
// the same range reduction and Cephes polynomial as Exp32, with FMAs and
// VSCALEFPS for the 2^n step (which also gives 0 and +Inf at the ends).

DATA expc<>+0(SB)/4, $0x3fb8aa3b  // log2(e)
DATA expc<>+4(SB)/4, $0x3f318000  // ln2 hi 0.693359375
DATA expc<>+8(SB)/4, $0xb95e8083  // ln2 lo -2.12194440e-4
DATA expc<>+12(SB)/4, $0x3950696f // 1.9875691500e-4
DATA expc<>+16(SB)/4, $0x3ab743ce // 1.3981999507e-3
DATA expc<>+20(SB)/4, $0x3c088908 // 8.3334519073e-3
DATA expc<>+24(SB)/4, $0x3d2aa9c1 // 4.1665795894e-2
DATA expc<>+28(SB)/4, $0x3e2aaaaa // 1.6666665459e-1
DATA expc<>+32(SB)/4, $0x3f000000 // 5.0000001201e-1
DATA expc<>+36(SB)/4, $0x3f800000 // 1
DATA expc<>+40(SB)/4, $0x42b20000 // 89: above ln(MaxFloat32), VSCALEFPS gives +Inf
DATA expc<>+44(SB)/4, $0xc2d00000 // -104: below ln of the smallest subnormal, gives 0
GLOBL expc<>(SB), RODATA|NOPTR, $48

// EXPCONST loads the constants into Z16..Z27.
#define EXPCONST \
	VBROADCASTSS expc<>+0(SB), Z16 \
	VBROADCASTSS expc<>+4(SB), Z17 \
	VBROADCASTSS expc<>+8(SB), Z18 \
	VBROADCASTSS expc<>+12(SB), Z19 \
	VBROADCASTSS expc<>+16(SB), Z20 \
	VBROADCASTSS expc<>+20(SB), Z21 \
	VBROADCASTSS expc<>+24(SB), Z22 \
	VBROADCASTSS expc<>+28(SB), Z23 \
	VBROADCASTSS expc<>+32(SB), Z24 \
	VBROADCASTSS expc<>+36(SB), Z25 \
	VBROADCASTSS expc<>+40(SB), Z26 \
	VBROADCASTSS expc<>+44(SB), Z27

// EXP computes Z0 = e^Z0, clobbering Z1, Z2. The clamps take x as their
// second source so that a NaN passes through.
#define EXP \
	VMINPS Z0, Z26, Z0 \
	VMAXPS Z0, Z27, Z0 \
	VMULPS Z16, Z0, Z1 \
	VRNDSCALEPS $0, Z1, Z1 \
	VFNMADD231PS Z17, Z1, Z0 \
	VFNMADD231PS Z18, Z1, Z0 \
	VMOVAPS Z19, Z2 \
	VFMADD213PS Z20, Z0, Z2 \
	VFMADD213PS Z21, Z0, Z2 \
	VFMADD213PS Z22, Z0, Z2 \
	VFMADD213PS Z23, Z0, Z2 \
	VFMADD213PS Z24, Z0, Z2 \
	VMULPS Z0, Z2, Z2 \
	VFMADD213PS Z0, Z0, Z2 \
	VADDPS Z25, Z2, Z0 \
	VSCALEFPS Z1, Z0, Z0

// func expScaleSum512(n int, x *float32, scale, shift float32) float32
// x[i] = e^(x[i]·scale − shift) for i < n (n a multiple of 16); returns Σ.
TEXT ·expScaleSum512(SB), NOSPLIT, $0-28
	MOVQ n+0(FP), CX
	MOVQ x+8(FP), DI
	VBROADCASTSS scale+16(FP), Z28
	VBROADCASTSS shift+20(FP), Z29
	EXPCONST
	VXORPS Z30, Z30, Z30
	SHRQ $4, CX
	JZ esdone
esloop:
	VMOVUPS (DI), Z0
	VFMSUB213PS Z29, Z28, Z0
	EXP
	VMOVUPS Z0, (DI)
	VADDPS Z0, Z30, Z30
	ADDQ $64, DI
	DECQ CX
	JNZ esloop
esdone:
	VEXTRACTF64X4 $1, Z30, Y1
	VADDPS Y1, Y30, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VMOVHLPS X0, X0, X1
	VADDPS X1, X0, X0
	VMOVSHDUP X0, X1
	VADDSS X1, X0, X0
	MOVSS X0, ret+24(FP)
	VZEROUPPER
	RET

// func swiGLU512(n int, dst, gate, up *float32)
// dst[i] = gate[i]/(1+e^−gate[i])·up[i] for i < n (a multiple of 16).
TEXT ·swiGLU512(SB), NOSPLIT, $0-32
	MOVQ n+0(FP), CX
	MOVQ dst+8(FP), DI
	MOVQ gate+16(FP), SI
	MOVQ up+24(FP), DX
	EXPCONST
	VXORPS Z31, Z31, Z31
	SHRQ $4, CX
	JZ swdone
swloop:
	VMOVUPS (SI), Z3
	VSUBPS Z3, Z31, Z0
	EXP
	VADDPS Z25, Z0, Z0
	VDIVPS Z0, Z3, Z3
	VMULPS (DX), Z3, Z3
	VMOVUPS Z3, (DI)
	ADDQ $64, SI
	ADDQ $64, DX
	ADDQ $64, DI
	DECQ CX
	JNZ swloop
swdone:
	VZEROUPPER
	RET

// func weightedRows512(d, nt int, p, v *float32, ldv int, out *float32)
// out[j] = Σ_t p[t]·v[t*ldv+j] for j < d (a multiple of 16), t < nt, summed
// in order of t: attention's probabilities times the value rows.
TEXT ·weightedRows512(SB), NOSPLIT, $0-48
	MOVQ d+0(FP), R8
	MOVQ nt+8(FP), R9
	MOVQ p+16(FP), SI
	MOVQ v+24(FP), DX
	MOVQ ldv+32(FP), R10
	SHLQ $2, R10
	MOVQ out+40(FP), DI
wr4:
	CMPQ R8, $64
	JLT wr1
	VXORPS Z0, Z0, Z0
	VXORPS Z1, Z1, Z1
	VXORPS Z2, Z2, Z2
	VXORPS Z3, Z3, Z3
	MOVQ SI, AX
	MOVQ DX, BX
	MOVQ R9, CX
	TESTQ CX, CX
	JZ wr4store
wr4loop:
	VBROADCASTSS (AX), Z4
	VFMADD231PS (BX), Z4, Z0
	VFMADD231PS 64(BX), Z4, Z1
	VFMADD231PS 128(BX), Z4, Z2
	VFMADD231PS 192(BX), Z4, Z3
	ADDQ $4, AX
	ADDQ R10, BX
	DECQ CX
	JNZ wr4loop
wr4store:
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	VMOVUPS Z2, 128(DI)
	VMOVUPS Z3, 192(DI)
	ADDQ $256, DX
	ADDQ $256, DI
	SUBQ $64, R8
	JMP wr4
wr1:
	CMPQ R8, $16
	JLT wrdone
	VXORPS Z0, Z0, Z0
	MOVQ SI, AX
	MOVQ DX, BX
	MOVQ R9, CX
	TESTQ CX, CX
	JZ wr1store
wr1loop:
	VBROADCASTSS (AX), Z4
	VFMADD231PS (BX), Z4, Z0
	ADDQ $4, AX
	ADDQ R10, BX
	DECQ CX
	JNZ wr1loop
wr1store:
	VMOVUPS Z0, (DI)
	ADDQ $64, DX
	ADDQ $64, DI
	SUBQ $16, R8
	JMP wr1
wrdone:
	VZEROUPPER
	RET

// func axpyRows512(n, nt int, a, x, y *float32)
// y[j] += a[t]·x[t*n+j] for t = 0..nt−1 in turn, j < n (a multiple of 16):
// the rows of x stream once, in order (a LoRA expand from Bᵀ, whose rows
// are contiguous: one sequential pass instead of nt strided streams).
TEXT ·axpyRows512(SB), NOSPLIT, $0-40
	MOVQ n+0(FP), R8
	MOVQ nt+8(FP), R9
	MOVQ a+16(FP), SI
	MOVQ x+24(FP), DX
	MOVQ y+32(FP), DI
	TESTQ R9, R9
	JZ axdone
axrow:
	VBROADCASTSS (SI), Z4
	MOVQ R8, CX
	MOVQ DI, BX
ax4:
	CMPQ CX, $64
	JLT ax1
	VMOVUPS (BX), Z0
	VMOVUPS 64(BX), Z1
	VMOVUPS 128(BX), Z2
	VMOVUPS 192(BX), Z3
	VFMADD231PS (DX), Z4, Z0
	VFMADD231PS 64(DX), Z4, Z1
	VFMADD231PS 128(DX), Z4, Z2
	VFMADD231PS 192(DX), Z4, Z3
	VMOVUPS Z0, (BX)
	VMOVUPS Z1, 64(BX)
	VMOVUPS Z2, 128(BX)
	VMOVUPS Z3, 192(BX)
	ADDQ $256, BX
	ADDQ $256, DX
	SUBQ $64, CX
	JMP ax4
ax1:
	CMPQ CX, $16
	JLT axnext
	VMOVUPS (BX), Z0
	VFMADD231PS (DX), Z4, Z0
	VMOVUPS Z0, (BX)
	ADDQ $64, BX
	ADDQ $64, DX
	SUBQ $16, CX
	JMP ax1
axnext:
	ADDQ $4, SI
	DECQ R9
	JNZ axrow
axdone:
	VZEROUPPER
	RET
