package nf4

import "github.com/lorakit/lorakit/kernels"

// The fused kernels for small m (decode): W streams from memory once and
// is decoded in registers, 64 codes at a time.

// packXBlocks is packX for the assembly kernels: within each group of mm ≤
// dotGroup rows of x, blocks go in pairs (the last one alone when their
// number is odd), each pair's 128 values of row i at (pair·mm + i)·128 in
// the order the kernels decode them: vector k (k < 8) of the pair holds, in
// lane l, the weight whose code is nibble k (bits 4k…4k+3) of the pair's
// dword l (lanes 0–7 the first block's 32 bytes, 8–15 the second's). A lone
// last block of row i sits at (pairs·2·mm + i)·64 in widened-byte order:
// the high then the low nibbles of its first 16 bytes, then of its last 16.
func packXBlocks(dst, x []float32, m, cols int) {
	nb := cols / BlockSize
	pairs := nb / 2
	for i0 := 0; i0 < m; i0 += dotGroup {
		mm := min(dotGroup, m-i0)
		g := dst[i0*cols : (i0+mm)*cols]
		for i := 0; i < mm; i++ {
			row := x[(i0+i)*cols : (i0+i+1)*cols]
			for pr := 0; pr < pairs; pr++ {
				s := row[pr*2*BlockSize : (pr+1)*2*BlockSize]
				d := g[(pr*mm+i)*2*BlockSize : (pr*mm+i+1)*2*BlockSize]
				for k := 0; k < 8; k++ {
					for l := 0; l < 16; l++ {
						// Byte j of the pair holds weights 2j (high nibble)
						// and 2j+1 (low); nibble k of dword l is in byte
						// 4l + k/2, low for even k.
						j := 4*l + k/2
						d[16*k+l] = s[2*j+1-k%2]
					}
				}
			}
			if nb%2 == 1 {
				s := row[(nb-1)*BlockSize:]
				d := g[(pairs*2*mm+i)*BlockSize : (pairs*2*mm+i+1)*BlockSize]
				for h := 0; h < 2; h++ {
					for j := 0; j < 16; j++ {
						d[32*h+j] = s[32*h+2*j]
						d[32*h+16+j] = s[32*h+2*j+1]
					}
				}
			}
		}
	}
}

// packedX returns x [m, cols] in the layout ks.dotT reads: x itself, or
// packed by ks.packX into a pooled buffer (also returned, for putBuf).
func packedX(ks *kernelSet, x []float32, m, cols int) ([]float32, *[]float32) {
	if ks.packX == nil {
		return x[:m*cols], nil
	}
	xb := getBuf(m * cols)
	ks.packX(*xb, x, m, cols)
	return *xb, xb
}

// matMulTFused: threads split the rows of W. With more than one group of x
// rows, each thread runs all groups over a slice of its rows that stays in
// L1 before moving on.
func matMulTFused(ks *kernelSet, dst, x []float32, w *Tensor, m int, accumulate bool) {
	rows, cols := w.Rows, w.Cols
	xs, xb := packedX(ks, x, m, cols)
	// Chunks of at least 32 KB of packed weights per thread.
	grain := max(1, (32<<10)/(cols/2))
	kernels.Parallel(rows, grain, func(lo, hi int) {
		step := hi - lo
		if m > dotGroup {
			step = max(1, (16<<10)/(cols/2))
		}
		for r0 := lo; r0 < hi; r0 += step {
			r1 := min(hi, r0+step)
			for i0 := 0; i0 < m; i0 += dotGroup {
				mm := min(dotGroup, m-i0)
				ks.dotT(mm, r1-r0, xs[i0*cols:(i0+mm)*cols], w, r0, dst[i0*rows+r0:], rows, accumulate)
			}
		}
	})
	putBuf(xb)
}

// dotTGo is the pure-Go dotT: decode a block into 64 floats, then multiply
// them into each row of x with four partial sums.
func dotTGo(m, n int, x []float32, w *Tensor, r0 int, dst []float32, ldd int, add bool) {
	nb := w.Cols / BlockSize
	ldx := w.Cols
	var scBuf [256]float32
	sc := scBuf[:]
	if nb > len(sc) {
		sc = make([]float32, nb)
	}
	sc = sc[:nb]
	var blk [BlockSize]float32
	for r := 0; r < n; r++ {
		w.blockScales(sc, (r0+r)*nb)
		wr := w.Packed[(r0+r)*nb*32 : (r0+r+1)*nb*32]
		if m == 1 {
			// One row of x: look the scaled values up straight into the sums.
			var a0, a1, a2, a3 float32
			for b := 0; b < nb; b++ {
				var tbl [16]float32
				for k, c := range Code {
					tbl[k] = c * sc[b]
				}
				p := wr[b*32 : b*32+32 : b*32+32]
				xs := x[b*BlockSize : b*BlockSize+BlockSize : b*BlockSize+BlockSize]
				for j := 0; j < 32; j += 2 {
					q0, q1 := p[j], p[j+1]
					a0 += tbl[q0>>4] * xs[2*j]
					a1 += tbl[q0&15] * xs[2*j+1]
					a2 += tbl[q1>>4] * xs[2*j+2]
					a3 += tbl[q1&15] * xs[2*j+3]
				}
			}
			s := (a0 + a1) + (a2 + a3)
			if add {
				s += dst[r]
			}
			dst[r] = s
			continue
		}
		var acc [dotGroup][4]float32
		for b := 0; b < nb; b++ {
			decodeBlock(&blk, wr[b*32:], sc[b])
			for i := 0; i < m; i++ {
				xs := x[i*ldx+b*BlockSize : i*ldx+b*BlockSize+BlockSize : i*ldx+b*BlockSize+BlockSize]
				a := &acc[i]
				for j := 0; j < BlockSize; j += 4 {
					a[0] += xs[j] * blk[j]
					a[1] += xs[j+1] * blk[j+1]
					a[2] += xs[j+2] * blk[j+2]
					a[3] += xs[j+3] * blk[j+3]
				}
			}
		}
		for i := 0; i < m; i++ {
			s := (acc[i][0] + acc[i][1]) + (acc[i][2] + acc[i][3])
			if add {
				s += dst[i*ldd+r]
			}
			dst[i*ldd+r] = s
		}
	}
}

// decodeBlock writes the 64 weights of one packed block with scale s.
func decodeBlock(dst *[BlockSize]float32, p []byte, s float32) {
	var tbl [16]float32
	for k, c := range Code {
		tbl[k] = c * s
	}
	p = p[:BlockSize/2]
	for j, q := range p {
		dst[2*j] = tbl[q>>4]
		dst[2*j+1] = tbl[q&15]
	}
}

func decodeGo(nb int, w []byte, sc []float32, dst []float32) {
	for b := 0; b < nb; b++ {
		decodeBlock((*[BlockSize]float32)(dst[b*BlockSize:]), w[b*32:], sc[b])
	}
}

// matMulFused: the work units are (column chunk, group of dy rows),
// chunk-major so that a thread's consecutive units reuse the same columns
// of W while they are in cache. Each thread first decodes the block scales
// of its columns; the kernel keeps the sums over W's rows in registers and
// stores them once.
func matMulFused(ks *kernelSet, dst, dy []float32, w *Tensor, m int, accumulate bool) {
	rows, cols := w.Rows, w.Cols
	nb := cols / BlockSize
	g, cw := ks.axGroup, ks.axCols
	ng := (m + g - 1) / g
	dys := dy[:m*rows]
	// Units of at least 16 K multiply-adds.
	grain := max(1, (16<<10)/(rows*cw*g))
	kernels.Parallel(cols/cw*ng, grain, func(lo, hi int) {
		cb0, cb1 := lo/ng*cw/BlockSize, ((hi-1)/ng*cw)/BlockSize+1
		k := cb1 - cb0
		buf := getBuf(rows * k)
		sc := *buf
		for r := 0; r < rows; r++ {
			w.blockScales(sc[r*k:r*k+k], r*nb+cb0)
		}
		for u := lo; u < hi; u++ {
			c, i0 := u/ng*cw, u%ng*g
			mm := min(g, m-i0)
			ks.axpyCol(mm, rows, dys[i0*rows:(i0+mm)*rows], w.Packed[c/2:], cols/2, sc[c/BlockSize-cb0:], k, dst[i0*cols+c:], cols, accumulate)
		}
		putBuf(buf)
	})
}

// axpyColGo is the pure-Go axpyCol (dy rows natural, n apart).
func axpyColGo(m, n int, dy []float32, w []byte, wstride int, sc []float32, sstride int, dst []float32, ldd int, add bool) {
	var blk [BlockSize]float32
	var acc [maxAxGroup][BlockSize]float32
	for r := 0; r < n; r++ {
		decodeBlock(&blk, w[r*wstride:], sc[r*sstride])
		for i := 0; i < m; i++ {
			a := dy[i*n+r]
			ai := &acc[i]
			for j, v := range blk {
				ai[j] += a * v
			}
		}
	}
	for i := 0; i < m; i++ {
		d := dst[i*ldd : i*ldd+BlockSize]
		if add {
			for j, v := range acc[i] {
				d[j] += v
			}
		} else {
			copy(d, acc[i][:])
		}
	}
}

// MatMulTMany computes dsts[i][m, ws[i].Rows] = x[m, cols]·ws[i]ᵀ for
// several weights that share their input (a layer's q, k and v, or gate and
// up), as MatMulT would one by one. Decode-sized m (≤ fusedMaxM) with
// block-aligned rows runs all of them in one parallel loop over their
// concatenated rows: one fork-join and one packing of x instead of one each.
// Every element is computed by the same kernel call as MatMulT's.
func MatMulTMany(dsts [][]float32, x []float32, ws []*Tensor, m int) {
	ks := impl
	fused := m >= 1 && m <= fusedMaxM && len(ws) > 0
	for i, w := range ws {
		fused = fused && w.Cols == ws[0].Cols && w.Cols%BlockSize == 0
		checkMatMul("MatMulTMany", w, m, len(dsts[i]), len(x), m*w.Rows, m*w.Cols)
	}
	if !fused {
		for i, w := range ws {
			matMulT(ks, dsts[i], x, w, m, false, false)
		}
		return
	}
	cols := ws[0].Cols
	xs, xb := packedX(ks, x, m, cols)
	// Units of manyRows rows; a unit never spans two weights.
	const manyRows = 16
	units := 0
	for _, w := range ws {
		units += (w.Rows + manyRows - 1) / manyRows
	}
	grain := max(1, (32<<10)/(cols/2*manyRows))
	kernels.Parallel(units, grain, func(lo, hi int) {
		first := 0 // the first unit of weight i
		for i, w := range ws {
			ui := (w.Rows + manyRows - 1) / manyRows
			a, b := max(lo, first), min(hi, first+ui)
			first += ui
			if a >= b {
				continue
			}
			r0, r1 := (a-first+ui)*manyRows, min(w.Rows, (b-first+ui)*manyRows)
			for i0 := 0; i0 < m; i0 += dotGroup {
				mm := min(dotGroup, m-i0)
				ks.dotT(mm, r1-r0, xs[i0*cols:(i0+mm)*cols], w, r0, dsts[i][i0*w.Rows+r0:], w.Rows, false)
			}
		}
	})
	putBuf(xb)
}
