//go:build !noasm && amd64

#include "textflag.h"

// Attention over Q8_0 keys and values (attention_q8.go): each 16 bytes are
// sign-extended to int32 (VPMOVSXBD) and converted to float32 (VCVTDQ2PS,
// exact) in registers; the block scales, widened to float32 beforehand,
// are broadcast memory operands. AVX-512 F only: registers Z16 and up
// appear only in 512-bit instructions, and the 128/256-bit ones use X0-X15.

// func dotRowsQ8x512(d, nt int, q *float32, k *int8, ldk int, s *float32, lds int, dst *float32)
// dst[t] = Σ_b s[t*lds+b]·(Σ_{j<32} q[32b+j]·k[t*ldk+32b+j]) for t < nt,
// b < d/32 (d a positive multiple of 32). Per row, lane l of the block sum
// adds q·k at j ≡ l (mod 16); the row's 16 lanes of Σ_b s_b·blocksum_b are
// then added by halves. Four rows at a time share the loads of q and one
// transposing reduction; the remaining rows go one at a time.
TEXT ·dotRowsQ8x512(SB), NOSPLIT, $0-64
	MOVQ nt+8(FP), R9
	MOVQ q+16(FP), SI
	MOVQ k+24(FP), DX
	MOVQ ldk+32(FP), R10
	MOVQ s+40(FP), R11
	MOVQ lds+48(FP), R12
	SHLQ $2, R12              // bytes from one row's scales to the next
	LEAQ (R12)(R12*2), R8     // three rows of scales
	MOVQ dst+56(FP), DI
	MOVL $0x1111, AX
	KMOVW AX, K2              // lanes 0, 4, 8, 12

dq4:
	CMPQ R9, $4
	JLT dq1
	MOVQ DX, BX               // rows 0..3 of k
	LEAQ (BX)(R10*1), R13
	LEAQ (R13)(R10*1), R14
	LEAQ (R14)(R10*1), R15
	MOVQ R11, AX              // their scales: AX + r*R12
	XORQ CX, CX               // byte offset in the rows (32 per block)
	VXORPS Z16, Z16, Z16
	VXORPS Z17, Z17, Z17
	VXORPS Z18, Z18, Z18
	VXORPS Z19, Z19, Z19

dq4blk:
	VMOVUPS (SI)(CX*4), Z0
	VMOVUPS 64(SI)(CX*4), Z1
	VPMOVSXBD (BX)(CX*1), Z4
	VPMOVSXBD 16(BX)(CX*1), Z5
	VPMOVSXBD (R13)(CX*1), Z6
	VPMOVSXBD 16(R13)(CX*1), Z7
	VPMOVSXBD (R14)(CX*1), Z8
	VPMOVSXBD 16(R14)(CX*1), Z9
	VPMOVSXBD (R15)(CX*1), Z10
	VPMOVSXBD 16(R15)(CX*1), Z11
	VCVTDQ2PS Z4, Z4
	VCVTDQ2PS Z5, Z5
	VCVTDQ2PS Z6, Z6
	VCVTDQ2PS Z7, Z7
	VCVTDQ2PS Z8, Z8
	VCVTDQ2PS Z9, Z9
	VCVTDQ2PS Z10, Z10
	VCVTDQ2PS Z11, Z11
	VMULPS Z0, Z4, Z4
	VMULPS Z0, Z6, Z6
	VMULPS Z0, Z8, Z8
	VMULPS Z0, Z10, Z10
	VFMADD231PS Z1, Z5, Z4
	VFMADD231PS Z1, Z7, Z6
	VFMADD231PS Z1, Z9, Z8
	VFMADD231PS Z1, Z11, Z10
	VFMADD231PS.BCST (AX), Z4, Z16
	VFMADD231PS.BCST (AX)(R12*1), Z6, Z17
	VFMADD231PS.BCST (AX)(R12*2), Z8, Z18
	VFMADD231PS.BCST (AX)(R8*1), Z10, Z19
	ADDQ $4, AX
	ADDQ $32, CX
	CMPQ CX, d+0(FP)
	JLT dq4blk

	// Z16..Z19 → the four row sums. 256-bit halves: Z20 = [r0 lo+hi, r1
	// lo+hi] (8 lanes each), Z22 likewise for rows 2, 3.
	VSHUFF64X2 $0x44, Z17, Z16, Z20
	VSHUFF64X2 $0xEE, Z17, Z16, Z21
	VADDPS Z21, Z20, Z20
	VSHUFF64X2 $0x44, Z19, Z18, Z22
	VSHUFF64X2 $0xEE, Z19, Z18, Z23
	VADDPS Z23, Z22, Z22
	// 128-bit quarters: Z21 = [r0, r1, r2, r3], 4 lanes each.
	VSHUFF32X4 $0x88, Z22, Z20, Z21
	VSHUFF32X4 $0xDD, Z22, Z20, Z23
	VADDPS Z23, Z21, Z21
	// Within each quarter: every lane gets the quarter's sum.
	VPERMILPS $0x4E, Z21, Z22
	VADDPS Z22, Z21, Z21
	VPERMILPS $0xB1, Z21, Z22
	VADDPS Z22, Z21, Z21
	VCOMPRESSPS.Z Z21, K2, Z2
	VMOVUPS X2, (DI)
	ADDQ $16, DI
	LEAQ (R15)(R10*1), DX
	LEAQ (R11)(R12*4), R11
	SUBQ $4, R9
	JMP dq4

dq1:
	TESTQ R9, R9
	JZ dqdone
	MOVQ R11, AX
	XORQ CX, CX
	VXORPS Z2, Z2, Z2

dq1blk:
	VMOVUPS (SI)(CX*4), Z0
	VMOVUPS 64(SI)(CX*4), Z1
	VPMOVSXBD (DX)(CX*1), Z4
	VPMOVSXBD 16(DX)(CX*1), Z5
	VCVTDQ2PS Z4, Z4
	VCVTDQ2PS Z5, Z5
	VMULPS Z0, Z4, Z4
	VFMADD231PS Z1, Z5, Z4
	VFMADD231PS.BCST (AX), Z4, Z2
	ADDQ $4, AX
	ADDQ $32, CX
	CMPQ CX, d+0(FP)
	JLT dq1blk

	VEXTRACTF64X4 $1, Z2, Y3
	VADDPS Y2, Y3, Y3
	VEXTRACTF128 $1, Y3, X4
	VADDPS X4, X3, X3
	VMOVHLPS X3, X3, X4
	VADDPS X4, X3, X3
	VMOVSHDUP X3, X4
	VADDSS X4, X3, X3
	VMOVSS X3, (DI)
	ADDQ $4, DI
	ADDQ R10, DX
	ADDQ R12, R11
	DECQ R9
	JMP dq1

dqdone:
	VZEROUPPER
	RET

// func weightedRowsQ8x512(d, nt int, p *float32, v *int8, ldv int, s *float32, lds int, out *float32)
// out[j] = Σ_t (p[t]·s[t*lds+j/32])·v[t*ldv+j] for j < d (a positive
// multiple of 32), t < nt, summed in order of t, as weightedRows512 does
// with float32 rows: 64 columns (two blocks) at a time, then 32.
TEXT ·weightedRowsQ8x512(SB), NOSPLIT, $0-64
	MOVQ d+0(FP), R8
	MOVQ nt+8(FP), R9
	MOVQ p+16(FP), SI
	MOVQ v+24(FP), DX
	MOVQ ldv+32(FP), R10
	MOVQ s+40(FP), R11
	MOVQ lds+48(FP), R12
	SHLQ $2, R12
	MOVQ out+56(FP), DI

wq2:
	CMPQ R8, $64
	JLT wq1
	VXORPS Z0, Z0, Z0
	VXORPS Z1, Z1, Z1
	VXORPS Z2, Z2, Z2
	VXORPS Z3, Z3, Z3
	MOVQ SI, AX
	MOVQ DX, BX
	MOVQ R11, R13
	MOVQ R9, CX
	TESTQ CX, CX
	JZ wq2store

wq2loop:
	VBROADCASTSS (AX), Z4
	VMULPS.BCST (R13), Z4, Z5   // p[t]·s[t, block 0]
	VMULPS.BCST 4(R13), Z4, Z6  // p[t]·s[t, block 1]
	VPMOVSXBD 0(BX), Z7
	VPMOVSXBD 16(BX), Z8
	VPMOVSXBD 32(BX), Z9
	VPMOVSXBD 48(BX), Z10
	VCVTDQ2PS Z7, Z7
	VCVTDQ2PS Z8, Z8
	VCVTDQ2PS Z9, Z9
	VCVTDQ2PS Z10, Z10
	VFMADD231PS Z7, Z5, Z0
	VFMADD231PS Z8, Z5, Z1
	VFMADD231PS Z9, Z6, Z2
	VFMADD231PS Z10, Z6, Z3
	ADDQ $4, AX
	ADDQ R10, BX
	ADDQ R12, R13
	DECQ CX
	JNZ wq2loop

wq2store:
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	VMOVUPS Z2, 128(DI)
	VMOVUPS Z3, 192(DI)
	ADDQ $64, DX
	ADDQ $8, R11
	ADDQ $256, DI
	SUBQ $64, R8
	JMP wq2

wq1:
	CMPQ R8, $32
	JLT wqdone
	VXORPS Z0, Z0, Z0
	VXORPS Z1, Z1, Z1
	MOVQ SI, AX
	MOVQ DX, BX
	MOVQ R11, R13
	MOVQ R9, CX
	TESTQ CX, CX
	JZ wq1store

wq1loop:
	VBROADCASTSS (AX), Z4
	VMULPS.BCST (R13), Z4, Z5
	VPMOVSXBD 0(BX), Z7
	VPMOVSXBD 16(BX), Z8
	VCVTDQ2PS Z7, Z7
	VCVTDQ2PS Z8, Z8
	VFMADD231PS Z7, Z5, Z0
	VFMADD231PS Z8, Z5, Z1
	ADDQ $4, AX
	ADDQ R10, BX
	ADDQ R12, R13
	DECQ CX
	JNZ wq1loop

wq1store:
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	ADDQ $32, DX
	ADDQ $4, R11
	ADDQ $128, DI
	SUBQ $32, R8
	JMP wq1

wqdone:
	VZEROUPPER
	RET
