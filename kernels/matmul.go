package kernels

import "fmt"

// MatMulTRef is the reference for dst = x · wᵀ (+ dst when accumulate):
// x is [m, k] row-major, w is [n, k] (a Linear weight stored [out, in]), dst is [m, n].
func MatMulTRef(dst, x, w []float32, m, n, k int, accumulate bool) {
	checkMatMul("MatMulT", len(dst), len(x), len(w), m*n, m*k, n*k)
	for i := 0; i < m; i++ {
		xi := x[i*k : i*k+k]
		for j := 0; j < n; j++ {
			wj := w[j*k : j*k+k]
			var s float32
			for p, v := range xi {
				s += v * wj[p]
			}
			if accumulate {
				dst[i*n+j] += s
			} else {
				dst[i*n+j] = s
			}
		}
	}
}

// MatMulT computes dst = x · wᵀ (+ dst when accumulate), x [m, k], w [n, k],
// dst [m, n], in parallel over 4×4 register blocks of dst. Sums run in the
// same order for every element, so results do not depend on the thread count.
func MatMulT(dst, x, w []float32, m, n, k int, accumulate bool) {
	checkMatMul("MatMulT", len(dst), len(x), len(w), m*n, m*k, n*k)
	if m == 0 || n == 0 {
		return
	}
	// Parallelise over columns of dst (rows of w) so each thread streams its own
	// part of the weights once: the weights are the big operand in decode.
	grain := 16
	if m*k < 4096 {
		grain = 64
	}
	Parallel((n+3)/4, grain/4+1, func(lo, hi int) {
		matMulTBlock(dst, x, w, m, n, k, lo*4, min(hi*4, n), accumulate)
	})
}

func matMulTBlock(dst, x, w []float32, m, n, k, j0, j1 int, accumulate bool) {
	i := 0
	for ; i+4 <= m; i += 4 {
		x0 := x[i*k : i*k+k]
		x1 := x[(i+1)*k : (i+1)*k+k]
		x2 := x[(i+2)*k : (i+2)*k+k]
		x3 := x[(i+3)*k : (i+3)*k+k]
		j := j0
		for ; j+4 <= j1; j += 4 {
			w0 := w[j*k : j*k+k]
			w1 := w[(j+1)*k : (j+1)*k+k]
			w2 := w[(j+2)*k : (j+2)*k+k]
			w3 := w[(j+3)*k : (j+3)*k+k]
			var s00, s01, s02, s03, s10, s11, s12, s13 float32
			var s20, s21, s22, s23, s30, s31, s32, s33 float32
			for p := range x0 {
				a0, a1, a2, a3 := x0[p], x1[p], x2[p], x3[p]
				b0, b1, b2, b3 := w0[p], w1[p], w2[p], w3[p]
				s00 += a0 * b0
				s01 += a0 * b1
				s02 += a0 * b2
				s03 += a0 * b3
				s10 += a1 * b0
				s11 += a1 * b1
				s12 += a1 * b2
				s13 += a1 * b3
				s20 += a2 * b0
				s21 += a2 * b1
				s22 += a2 * b2
				s23 += a2 * b3
				s30 += a3 * b0
				s31 += a3 * b1
				s32 += a3 * b2
				s33 += a3 * b3
			}
			store4(dst[i*n+j:], s00, s01, s02, s03, accumulate)
			store4(dst[(i+1)*n+j:], s10, s11, s12, s13, accumulate)
			store4(dst[(i+2)*n+j:], s20, s21, s22, s23, accumulate)
			store4(dst[(i+3)*n+j:], s30, s31, s32, s33, accumulate)
		}
		for ; j < j1; j++ {
			wj := w[j*k : j*k+k]
			for r, xr := range [][]float32{x0, x1, x2, x3} {
				put(dst, (i+r)*n+j, Dot(xr, wj), accumulate)
			}
		}
	}
	for ; i < m; i++ {
		xi := x[i*k : i*k+k]
		for j := j0; j < j1; j++ {
			put(dst, i*n+j, Dot(xi, w[j*k:j*k+k]), accumulate)
		}
	}
}

func store4(d []float32, a, b, c, e float32, accumulate bool) {
	d = d[:4]
	if accumulate {
		d[0] += a
		d[1] += b
		d[2] += c
		d[3] += e
		return
	}
	d[0], d[1], d[2], d[3] = a, b, c, e
}

func put(d []float32, i int, v float32, accumulate bool) {
	if accumulate {
		d[i] += v
	} else {
		d[i] = v
	}
}

// Dot is Σ a[i]·b[i] with four partial sums (len(b) >= len(a)).
func Dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// Axpy is y += alpha·x (len(y) >= len(x)).
func Axpy(alpha float32, x, y []float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += alpha * v
	}
}

// ShapeError is the panic value of a kernel called with inconsistent sizes: a
// programming error inside lorakit, never a consequence of user input.
type ShapeError struct{ Msg string }

func (e ShapeError) Error() string { return "kernels: " + e.Msg }

func checkMatMul(op string, ld, lx, lw, wantD, wantX, wantW int) {
	if ld < wantD || lx < wantX || lw < wantW {
		panic(ShapeError{fmt.Sprintf("%s: buffers dst %d, x %d, w %d shorter than %d, %d, %d", op, ld, lx, lw, wantD, wantX, wantW)})
	}
}
