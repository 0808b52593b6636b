package nf4

import "github.com/lorakit/lorakit/kernels"

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
func matMulTGemm(ks *kernelSet, dst, x []float32, w *Tensor, m int, accumulate bool) {
	rows, cols := w.Rows, w.Cols
	nb := cols / BlockSize
	np := (rows + panelRows - 1) / panelRows
	kernels.Parallel(np, 1, func(lo, hi int) {
		wtb := getBuf(panelRows * cols)
		wt := *wtb
		scb := getBuf(panelRows*nb + nb)
		scT, rowSc := (*scb)[:panelRows*nb], (*scb)[panelRows*nb:]
		var tmp [gemmGroup * panelRows]float32
		for pi := lo; pi < hi; pi++ {
			r0 := pi * panelRows
			rr := min(panelRows, rows-r0)
			for h := 0; h < panelRows/16; h++ {
				var off [16]int32
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
				ks.panel(nb, w.Packed[r0*nb*32:], &off, sc, wt[16*h:], panelRows)
			}
			for i0 := 0; i0 < m; i0 += gemmGroup {
				mm := min(gemmGroup, m-i0)
				if rr == panelRows {
					ks.gemmP(mm, cols, x[i0*cols:], cols, wt, dst[i0*rows+r0:], rows, accumulate)
					continue
				}
				ks.gemmP(mm, cols, x[i0*cols:], cols, wt, tmp[:], panelRows, false)
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
		putBuf(scb)
		putBuf(wtb)
	})
}

// matMulGemm is MatMul for larger m: W [rows, cols] is the B operand of
// the GEMM in its own orientation, so threads split its columns into panels
// of panelRows, decode each panel row by row into a small buffer (rows ×
// 32 floats) and multiply every row of dy into it, twelve at a time.
func matMulGemm(ks *kernelSet, dst, dy []float32, w *Tensor, m int, accumulate bool) {
	rows, cols := w.Rows, w.Cols
	kernels.Parallel(cols/panelRows, 1, func(lo, hi int) {
		wtb := getBuf(rows * panelRows)
		wt := *wtb
		scb := getBuf(rows)
		sc := *scb
		cb := -1
		for pi := lo; pi < hi; pi++ {
			j0 := pi * panelRows
			if j0/BlockSize != cb {
				cb = j0 / BlockSize
				w.columnScales(sc, cb)
			}
			ks.panelN(rows, w.Packed[j0/2:], cols/2, sc, 1, wt)
			for i0 := 0; i0 < m; i0 += gemmGroup {
				mm := min(gemmGroup, m-i0)
				ks.gemmP(mm, rows, dy[i0*rows:], rows, wt, dst[i0*cols+j0:], cols, accumulate)
			}
		}
		putBuf(scb)
		putBuf(wtb)
	})
}
