package nf4

import "github.com/lorakit/lorakit/kernels"

// The pure-Go paths for larger m (tiles decoded for the float32 GEMM of
// package kernels) and for rows whose length is not a multiple of 64.

// tileElems is the size of a decoded tile of W, in floats (1 MB, an L2 on
// current server cores: it stays there while the GEMM packs it).
const tileElems = 256 << 10

// decodeRows decodes rows [r0, r1) of w restricted to column blocks
// [cb0, cb1) into dst, (cb1−cb0)·64 floats per row, in parallel.
func decodeRows(ks *kernelSet, dst []float32, w *Tensor, r0, r1, cb0, cb1 int) {
	nb := w.Cols / BlockSize
	width := (cb1 - cb0) * BlockSize
	kernels.Parallel(r1-r0, max(1, 4096/width), func(lo, hi int) {
		var scBuf [256]float32
		sc := scBuf[:]
		if cb1-cb0 > len(sc) {
			sc = make([]float32, cb1-cb0)
		}
		sc = sc[:cb1-cb0]
		for r := r0 + lo; r < r0+hi; r++ {
			b0 := r*nb + cb0
			w.blockScales(sc, b0)
			ks.decode(cb1-cb0, w.Packed[b0*32:], sc, dst[(r-r0)*width:])
		}
	})
}

// matMulTTiled: for each tile of W's rows, decode it and multiply with the
// float32 GEMM into a scratch [m, tile], then copy the columns into dst.
// With round, each decoded tile is rounded to BF16 (the emulated BF16
// compute; x comes rounded).
func matMulTTiled(ks *kernelSet, dst, x []float32, w *Tensor, m int, accumulate, round bool) {
	rows, cols := w.Rows, w.Cols
	nb := cols / BlockSize
	tr := min(rows, max(32, tileElems/cols/32*32))
	tile := getBuf(tr * cols)
	if tr == rows {
		decodeRows(ks, *tile, w, 0, rows, 0, nb)
		if round {
			roundBF16s(*tile, (*tile)[:rows*cols])
		}
		kernels.MatMulT(dst, x, *tile, m, rows, cols, accumulate)
		putBuf(tile)
		return
	}
	tmp := getBuf(m * tr)
	for r0 := 0; r0 < rows; r0 += tr {
		r1 := min(rows, r0+tr)
		n := r1 - r0
		decodeRows(ks, *tile, w, r0, r1, 0, nb)
		if round {
			roundBF16s(*tile, (*tile)[:n*cols])
		}
		kernels.MatMulT(*tmp, x, *tile, m, n, cols, false)
		scatter(dst[r0:], rows, *tmp, n, m, accumulate)
	}
	putBuf(tmp)
	putBuf(tile)
}

// matMulTiled: for each tile of W's column blocks, decode W[:, tile] and
// multiply with the float32 GEMM into a scratch [m, tile], then copy into dst.
func matMulTiled(ks *kernelSet, dst, dy []float32, w *Tensor, m int, accumulate, round bool) {
	rows, cols := w.Rows, w.Cols
	nb := cols / BlockSize
	tb := min(nb, max(1, tileElems/(rows*BlockSize)))
	tc := tb * BlockSize
	tile := getBuf(rows * tc)
	if tb == nb {
		decodeRows(ks, *tile, w, 0, rows, 0, nb)
		if round {
			roundBF16s(*tile, (*tile)[:rows*cols])
		}
		kernels.MatMul(dst, dy, *tile, m, cols, rows, accumulate)
		putBuf(tile)
		return
	}
	tmp := getBuf(m * tc)
	for cb0 := 0; cb0 < nb; cb0 += tb {
		cb1 := min(nb, cb0+tb)
		n := (cb1 - cb0) * BlockSize
		decodeRows(ks, *tile, w, 0, rows, cb0, cb1)
		if round {
			roundBF16s(*tile, (*tile)[:rows*n])
		}
		kernels.MatMul(*tmp, dy, (*tile)[:rows*n], m, n, rows, false)
		scatter(dst[cb0*BlockSize:], cols, *tmp, n, m, accumulate)
	}
	putBuf(tmp)
	putBuf(tile)
}

// scatter stores src [m, n] into the first n columns of dst (row stride ld).
func scatter(dst []float32, ld int, src []float32, n, m int, accumulate bool) {
	for i := 0; i < m; i++ {
		d := dst[i*ld : i*ld+n]
		s := src[i*n : i*n+n]
		if accumulate {
			for j, v := range s {
				d[j] += v
			}
		} else {
			copy(d, s)
		}
	}
}

// matMulTGeneric handles rows that do not start on a block boundary: each
// thread decodes one row of W at a time and multiplies it into every row of x.
func matMulTGeneric(dst, x []float32, w *Tensor, m int, accumulate bool) {
	rows, cols := w.Rows, w.Cols
	kernels.Parallel(rows, max(1, 4096/cols), func(lo, hi int) {
		buf := getBuf(cols)
		wr := *buf
		for r := lo; r < hi; r++ {
			w.dequantizeRange(wr, r*cols, r*cols+cols)
			for i := 0; i < m; i++ {
				s := kernels.Dot(x[i*cols:i*cols+cols], wr)
				if accumulate {
					dst[i*rows+r] += s
				} else {
					dst[i*rows+r] = s
				}
			}
		}
		putBuf(buf)
	})
}

// matMulGeneric is MatMul for rows that do not start on a block boundary:
// threads split the columns; each decodes its part of one row of W at a
// time and adds it, scaled, into every row of dst.
func matMulGeneric(dst, dy []float32, w *Tensor, m int, accumulate bool) {
	rows, cols := w.Rows, w.Cols
	const chunk = 256
	kernels.Parallel((cols+chunk-1)/chunk, max(1, 4096/(rows*chunk)), func(lo, hi int) {
		c0, c1 := lo*chunk, min(cols, hi*chunk)
		buf := getBuf(c1 - c0)
		wr := *buf
		if !accumulate {
			for i := 0; i < m; i++ {
				clear(dst[i*cols+c0 : i*cols+c1])
			}
		}
		for r := 0; r < rows; r++ {
			w.dequantizeRange(wr, r*cols+c0, r*cols+c1)
			for i := 0; i < m; i++ {
				kernels.Axpy(dy[i*rows+r], wr, dst[i*cols+c0:i*cols+c1])
			}
		}
		putBuf(buf)
	})
}
