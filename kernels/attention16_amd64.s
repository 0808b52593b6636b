//go:build !noasm && amd64

#include "textflag.h"

// Attention's probabilities times 16-bit value rows (attention16.go); the
// float32 form is weightedRows512 in vec_amd64.s. Each iteration widens 16
// values per register: bfloat16 by zero-extending to 32 bits and shifting
// into the top half, binary16 by VCVTPH2PS (exact, subnormals included).

// func weightedRowsBF16x512(d, nt int, p *float32, v *uint16, ldv int, out *float32)
// out[j] = Σ_t p[t]·widen(v[t*ldv+j]) for j < d (a multiple of 16), t < nt,
// summed in order of t, as weightedRows512 does with float32 rows.
TEXT ·weightedRowsBF16x512(SB), NOSPLIT, $0-48
	MOVQ d+0(FP), R8
	MOVQ nt+8(FP), R9
	MOVQ p+16(FP), SI
	MOVQ v+24(FP), DX
	MOVQ ldv+32(FP), R10
	SHLQ $1, R10
	MOVQ out+40(FP), DI
wb4:
	CMPQ R8, $64
	JLT wb1
	VXORPS Z0, Z0, Z0
	VXORPS Z1, Z1, Z1
	VXORPS Z2, Z2, Z2
	VXORPS Z3, Z3, Z3
	MOVQ SI, AX
	MOVQ DX, BX
	MOVQ R9, CX
	TESTQ CX, CX
	JZ wb4store
wb4loop:
	VBROADCASTSS (AX), Z4
	VPMOVZXWD 0(BX), Z5
	VPSLLD $16, Z5, Z5
	VPMOVZXWD 32(BX), Z6
	VPSLLD $16, Z6, Z6
	VPMOVZXWD 64(BX), Z7
	VPSLLD $16, Z7, Z7
	VPMOVZXWD 96(BX), Z8
	VPSLLD $16, Z8, Z8
	VFMADD231PS Z5, Z4, Z0
	VFMADD231PS Z6, Z4, Z1
	VFMADD231PS Z7, Z4, Z2
	VFMADD231PS Z8, Z4, Z3
	ADDQ $4, AX
	ADDQ R10, BX
	DECQ CX
	JNZ wb4loop
wb4store:
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	VMOVUPS Z2, 128(DI)
	VMOVUPS Z3, 192(DI)
	ADDQ $128, DX
	ADDQ $256, DI
	SUBQ $64, R8
	JMP wb4
wb1:
	CMPQ R8, $16
	JLT wbdone
	VXORPS Z0, Z0, Z0
	MOVQ SI, AX
	MOVQ DX, BX
	MOVQ R9, CX
	TESTQ CX, CX
	JZ wb1store
wb1loop:
	VBROADCASTSS (AX), Z4
	VPMOVZXWD 0(BX), Z5
	VPSLLD $16, Z5, Z5
	VFMADD231PS Z5, Z4, Z0
	ADDQ $4, AX
	ADDQ R10, BX
	DECQ CX
	JNZ wb1loop
wb1store:
	VMOVUPS Z0, (DI)
	ADDQ $32, DX
	ADDQ $64, DI
	SUBQ $16, R8
	JMP wb1
wbdone:
	VZEROUPPER
	RET

// func weightedRowsF16x512(d, nt int, p *float32, v *uint16, ldv int, out *float32)
// out[j] = Σ_t p[t]·widen(v[t*ldv+j]) for j < d (a multiple of 16), t < nt,
// summed in order of t, as weightedRows512 does with float32 rows.
TEXT ·weightedRowsF16x512(SB), NOSPLIT, $0-48
	MOVQ d+0(FP), R8
	MOVQ nt+8(FP), R9
	MOVQ p+16(FP), SI
	MOVQ v+24(FP), DX
	MOVQ ldv+32(FP), R10
	SHLQ $1, R10
	MOVQ out+40(FP), DI
wh4:
	CMPQ R8, $64
	JLT wh1
	VXORPS Z0, Z0, Z0
	VXORPS Z1, Z1, Z1
	VXORPS Z2, Z2, Z2
	VXORPS Z3, Z3, Z3
	MOVQ SI, AX
	MOVQ DX, BX
	MOVQ R9, CX
	TESTQ CX, CX
	JZ wh4store
wh4loop:
	VBROADCASTSS (AX), Z4
	VCVTPH2PS 0(BX), Z5
	VCVTPH2PS 32(BX), Z6
	VCVTPH2PS 64(BX), Z7
	VCVTPH2PS 96(BX), Z8
	VFMADD231PS Z5, Z4, Z0
	VFMADD231PS Z6, Z4, Z1
	VFMADD231PS Z7, Z4, Z2
	VFMADD231PS Z8, Z4, Z3
	ADDQ $4, AX
	ADDQ R10, BX
	DECQ CX
	JNZ wh4loop
wh4store:
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	VMOVUPS Z2, 128(DI)
	VMOVUPS Z3, 192(DI)
	ADDQ $128, DX
	ADDQ $256, DI
	SUBQ $64, R8
	JMP wh4
wh1:
	CMPQ R8, $16
	JLT whdone
	VXORPS Z0, Z0, Z0
	MOVQ SI, AX
	MOVQ DX, BX
	MOVQ R9, CX
	TESTQ CX, CX
	JZ wh1store
wh1loop:
	VBROADCASTSS (AX), Z4
	VCVTPH2PS 0(BX), Z5
	VFMADD231PS Z5, Z4, Z0
	ADDQ $4, AX
	ADDQ R10, BX
	DECQ CX
	JNZ wh1loop
wh1store:
	VMOVUPS Z0, (DI)
	ADDQ $32, DX
	ADDQ $64, DI
	SUBQ $16, R8
	JMP wh1
whdone:
	VZEROUPPER
	RET
