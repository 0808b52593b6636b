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
// dst [m, n]. Small m (decode) streams w through dot-product kernels; larger
// products use the packed, cache-blocked GEMM (gemm.go). Threads split dst
// by rows or columns only and every element is summed in an order that
// depends only on k, so results do not depend on the thread count.
func MatMulT(dst, x, w []float32, m, n, k int, accumulate bool) {
	checkMatMul("MatMulT", len(dst), len(x), len(w), m*n, m*k, n*k)
	if m == 0 || n == 0 {
		return
	}
	if m <= gemvMaxM {
		gemvT(dst, x, w, m, n, k, accumulate)
		return
	}
	gemm(&gemmArgs{m: m, n: n, k: k, a: x, lda: k, b: w, ldb: k, bNMajor: true, c: dst, ldc: n, acc: accumulate})
}

// MatMulRef is the reference for dst = x · w (+ dst when accumulate): x is
// [m, k], w is [k, n] row-major, dst is [m, n]. The backward pass's
// dX = dY·W for a weight W stored [out, in] is MatMul with k = out, n = in.
func MatMulRef(dst, x, w []float32, m, n, k int, accumulate bool) {
	checkMatMul("MatMul", len(dst), len(x), len(w), m*n, m*k, k*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float32
			for p := 0; p < k; p++ {
				s += x[i*k+p] * w[p*n+j]
			}
			if accumulate {
				dst[i*n+j] += s
			} else {
				dst[i*n+j] = s
			}
		}
	}
}

// MatMul computes dst = x · w (+ dst when accumulate), x [m, k], w [k, n],
// dst [m, n], with the packed GEMM; deterministic like MatMulT.
func MatMul(dst, x, w []float32, m, n, k int, accumulate bool) {
	checkMatMul("MatMul", len(dst), len(x), len(w), m*n, m*k, k*n)
	gemm(&gemmArgs{m: m, n: n, k: k, a: x, lda: k, b: w, ldb: n, c: dst, ldc: n, acc: accumulate})
}

// MatMulTNRef is the reference for dst = aᵀ · b (+ dst when accumulate): a is
// [k, m], b is [k, n], dst is [m, n]. Weight gradients dW = dYᵀ·X are
// MatMulTN with k = tokens.
func MatMulTNRef(dst, a, b []float32, m, n, k int, accumulate bool) {
	checkMatMul("MatMulTN", len(dst), len(a), len(b), m*n, k*m, k*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float32
			for p := 0; p < k; p++ {
				s += a[p*m+i] * b[p*n+j]
			}
			if accumulate {
				dst[i*n+j] += s
			} else {
				dst[i*n+j] = s
			}
		}
	}
}

// MatMulTN computes dst = aᵀ · b (+ dst when accumulate), a [k, m], b [k, n],
// dst [m, n], with the packed GEMM; deterministic like MatMulT.
func MatMulTN(dst, a, b []float32, m, n, k int, accumulate bool) {
	checkMatMul("MatMulTN", len(dst), len(a), len(b), m*n, k*m, k*n)
	gemm(&gemmArgs{m: m, n: n, k: k, a: a, lda: m, aKMajor: true, b: b, ldb: n, c: dst, ldc: n, acc: accumulate})
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

// GEMVMaxRows is the largest row count MatMulT and MatMulTMany serve with the
// dot-product (decode) path.
const GEMVMaxRows = gemvMaxM

// MatMulTMany computes dsts[i] = x·ws[i]ᵀ (x [m, k], ws[i] [ns[i], k], dsts[i]
// [m, ns[i]]) for weights that share their input — q, k and v; gate and up —
// in one parallel loop over all their rows, so a decode step pays one
// fork-join where it would pay one per matrix. Each element is computed as
// MatMulT computes it.
func MatMulTMany(x []float32, m, k int, dsts, ws [][]float32, ns []int) {
	if m > gemvMaxM || k == 0 || Threads() < 2 {
		for i := range ws {
			MatMulT(dsts[i], x, ws[i], m, ns[i], k, false)
		}
		return
	}
	steps := 0
	for i := range ws {
		checkMatMul("MatMulTMany", len(dsts[i]), len(x), len(ws[i]), m*ns[i], m*k, ns[i]*k)
		steps += (ns[i] + dotStep - 1) / dotStep
	}
	Parallel(steps, max(1, (1<<14)/(k*dotStep)), func(lo, hi int) {
		first := 0 // the first step of matrix i
		for i := range ws {
			si := (ns[i] + dotStep - 1) / dotStep
			if a, b := max(lo, first), min(hi, first+si); a < b {
				gemvRange(impl, dsts[i], x, ws[i], m, ns[i], k, 0, (a-first)*dotStep, min((b-first)*dotStep, ns[i]))
			}
			first += si
		}
	})
}
