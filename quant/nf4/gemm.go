package nf4

import (
	"sync"

	"github.com/lorakit/lorakit/kernels"
)

// The GEMM paths for larger m (prefill, training), compute bound: W is
// decoded a panel of 32 rows or columns at a time into an L2-sized buffer,
// the packed B panel of a GEMM, which every row of x then multiplies.

// The forward GEMM decodes panelRows rows of W at a time into a column-major
// panel (panelRows·Cols floats: 72 KB for 576 columns) and multiplies
// gemmGroup rows of x at a time into it.
const panelRows, gemmGroup = 32, 12

// matMulTGemm is MatMulT for larger m: threads split W into panels of
// panelRows rows; each panel is decoded once into a small column-major
// buffer (the packed B panel of a GEMM) and every row of x is multiplied
// into it, twelve at a time, writing rows of 32 outputs into dst. A last
// panel with fewer rows is zero-padded and written through a scratch tile.
// With bf16 the operands are rounded to BF16 first (bf16.go): x once per
// call, each panel after decoding.
func matMulTGemm(ks *kernelSet, dst, x []float32, w *Tensor, m int, accumulate, bf16 bool) {
	rows, cols := w.Rows, w.Cols
	nb := cols / BlockSize
	np := (rows + panelRows - 1) / panelRows
	op := newGemmOperand(ks, x, m, cols, bf16)
	kernels.Parallel(np, 1, func(lo, hi int) {
		wtb := getBuf(panelRows * cols)
		wt := *wtb
		scb := getBuf(panelRows*nb + nb)
		scT, rowSc := (*scb)[:panelRows*nb], (*scb)[panelRows*nb:]
		scr := gemmScratchPool.Get().(*gemmScratch)
		tmp, off := &scr.tmp, &scr.off
		pp := op.panel(panelRows * cols)
		for pi := lo; pi < hi; pi++ {
			r0 := pi * panelRows
			rr := min(panelRows, rows-r0)
			for h := 0; h < panelRows/16; h++ {
				*off = [16]int32{}
				sc := scT[h*16*nb : (h+1)*16*nb]
				for r := 0; r < 16; r++ {
					row := r0 + 16*h + r
					if row >= r0+rr {
						for b := 0; b < nb; b++ {
							sc[b*16+r] = 0 // padding rows decode to zero
						}
						continue
					}
					off[r] = int32((16*h + r) * nb * 32)
					w.blockScales(rowSc, row*nb)
					for b, v := range rowSc {
						sc[b*16+r] = v
					}
				}
				ks.panel(nb, w.Packed[r0*nb*32:], off, sc, wt[16*h:], panelRows)
			}
			op.convert(pp, wt)
			for i0 := 0; i0 < m; i0 += gemmGroup {
				mm := min(gemmGroup, m-i0)
				if rr == panelRows {
					op.gemm(mm, i0, pp, wt, dst[i0*rows+r0:], rows, accumulate)
					continue
				}
				op.gemm(mm, i0, pp, wt, tmp[:], panelRows, false)
				for i := 0; i < mm; i++ {
					d := dst[(i0+i)*rows+r0 : (i0+i)*rows+r0+rr]
					src := tmp[i*panelRows : i*panelRows+rr]
					if accumulate {
						for j, v := range src {
							d[j] += v
						}
					} else {
						copy(d, src)
					}
				}
			}
		}
		op.release(pp)
		gemmScratchPool.Put(scr)
		putBuf(scb)
		putBuf(wtb)
	})
	op.free()
}

// gemmScratch is a worker's small scratch in matMulTGemm: the tile of a
// last, partial panel and the row offsets handed to the panel decoder.
// Both reach the kernels through function values, so on the stack they
// would escape: a 1.6 KB heap allocation per worker per call, which a
// serving step (seven NF4 products per layer) turned into most of its
// garbage.
type gemmScratch struct {
	tmp [gemmGroup * panelRows]float32
	off [16]int32
}

var gemmScratchPool = sync.Pool{New: func() any { return new(gemmScratch) }}

// matMulGemm is MatMul for larger m: W [rows, cols] is the B operand of
// the GEMM in its own orientation, so threads split its columns into panels
// of panelRows, decode each panel row by row into a small buffer (rows ×
// 32 floats) and multiply every row of dy into it, twelve at a time.
func matMulGemm(ks *kernelSet, dst, dy []float32, w *Tensor, m int, accumulate, bf16 bool) {
	rows, cols := w.Rows, w.Cols
	op := newGemmOperand(ks, dy, m, rows, bf16)
	kernels.Parallel(cols/panelRows, 1, func(lo, hi int) {
		wtb := getBuf(rows * panelRows)
		wt := *wtb
		scb := getBuf(rows)
		sc := *scb
		pp := op.panel(rows * panelRows)
		cb := -1
		for pi := lo; pi < hi; pi++ {
			j0 := pi * panelRows
			if j0/BlockSize != cb {
				cb = j0 / BlockSize
				w.columnScales(sc, cb)
			}
			ks.panelN(rows, w.Packed[j0/2:], cols/2, sc, 1, wt)
			op.convert(pp, wt)
			for i0 := 0; i0 < m; i0 += gemmGroup {
				mm := min(gemmGroup, m-i0)
				op.gemm(mm, i0, pp, wt, dst[i0*cols+j0:], cols, accumulate)
			}
		}
		op.release(pp)
		putBuf(scb)
		putBuf(wtb)
	})
	op.free()
}

// gemmOperand is the x (or dy) operand [m, k] of a panel GEMM in the form the
// micro-kernel reads, and how panels are converted to match: float32 as
// given; BF16 pairs for gemmBP (AVX512_BF16); or, emulating BF16 compute,
// float32 rounded to BF16 values for gemmP.
type gemmOperand struct {
	ks   *kernelSet
	k    int
	x    []float32  // float32 rows (rounded when emulating)
	xb   []uint32   // BF16 pair rows, k/2 per row (gemmBP)
	bufX *[]float32 // the rounded x, when emulating (panels are then rounded in place)
	bufB *[]uint32  // xb's buffer
}

func newGemmOperand(ks *kernelSet, x []float32, m, k int, bf16 bool) *gemmOperand {
	op := &gemmOperand{ks: ks, k: k, x: x}
	switch {
	case bf16 && ks.gemmBP != nil:
		op.bufB = getBuf32(m * k / 2)
		op.xb = *op.bufB
		toBF16Rows(ks, op.xb, x, m, k)
	case bf16:
		op.bufX = getBuf(m * k)
		op.x = *op.bufX
		roundBF16s(op.x, x[:m*k])
	}
	return op
}

// panel returns a buffer for one converted panel of n floats (nil when the
// decoded panel is used as it is).
func (op *gemmOperand) panel(n int) *[]uint32 {
	if op.xb == nil {
		return nil
	}
	return getBuf32(n / 2)
}

func (op *gemmOperand) release(pp *[]uint32) { putBuf32(pp) }

// convert readies a decoded panel wt (rows of 32 floats, one per depth).
func (op *gemmOperand) convert(pp *[]uint32, wt []float32) {
	switch {
	case pp != nil:
		op.ks.pairs(op.k/2, wt, *pp)
	case op.bufX != nil:
		for i, v := range wt[:op.k*panelRows] {
			wt[i] = roundBF16(v)
		}
	}
}

// gemm multiplies rows [i0, i0+mm) of the operand into the panel.
func (op *gemmOperand) gemm(mm, i0 int, pp *[]uint32, wt, dst []float32, ldd int, add bool) {
	if pp != nil {
		kp := op.k / 2
		op.ks.gemmBP(mm, kp, op.xb[i0*kp:], kp, *pp, dst, ldd, add)
		return
	}
	op.ks.gemmP(mm, op.k, op.x[i0*op.k:], op.k, wt, dst, ldd, add)
}

func (op *gemmOperand) free() {
	putBuf(op.bufX)
	putBuf32(op.bufB)
}
