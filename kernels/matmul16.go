package kernels

import (
	"sync"

	"github.com/lorakit/lorakit/tensor"
)

//go:generate go run matmul16_asmgen.go

// Products with weights held as 16-bit floats, BF16 or F16, stored as their
// raw bits in a []uint16 with the layout of the float32 weights. The weights
// are never converted in memory as a whole: the small-m path (decode) widens
// each chunk of a row of w to float32 in registers inside the dot-product
// kernels, and the packed GEMM (prefill, training) widens B while packing its
// panels (packB16). Widening is exact, so the results are float32 products
// and sums of the exact 16-bit values, the same as the float32 kernels on
// the widened matrix up to the order of summation. x is never rounded.

// half16 names the 16-bit format of a weight.
type half16 uint8

const (
	halfNone half16 = iota // float32 weights (gemmArgs.b)
	halfBF16               // bfloat16: the top half of a float32
	halfF16                // IEEE 754 binary16
)

// widenGo is the portable widening of src into dst (len(dst) ≥ len(src)).
func widenGo(kind half16, dst []float32, src []uint16) {
	dst = dst[:len(src)]
	if kind == halfBF16 {
		for i, v := range src {
			dst[i] = tensor.BF16ToF32(v)
		}
		return
	}
	for i, v := range src {
		dst[i] = tensor.F16ToF32(v)
	}
}

// widen16 widens src into dst with the fastest routine available.
func widen16(kind half16, dst []float32, src []uint16) {
	if len(src) == 0 {
		return
	}
	_ = dst[len(src)-1]
	if f := widenAsm[kind]; f != nil && use16Asm {
		f(&dst[0], &src[0], len(src))
		return
	}
	widenGo(kind, dst, src)
}

// WidenBF16 sets dst[i] to the bfloat16 src[i] as a float32 (exact), for
// i < len(src).
func WidenBF16(dst []float32, src []uint16) { widen16(halfBF16, dst, src) }

// WidenF16 sets dst[i] to the binary16 src[i] as a float32 (exact), for
// i < len(src).
func WidenF16(dst []float32, src []uint16) { widen16(halfF16, dst, src) }

// matMulT16Ref is the reference for dst = x·wᵀ (+ dst) with 16-bit w [n, k].
func matMulT16Ref(op string, kind half16, dst, x []float32, w []uint16, m, n, k int, accumulate bool) {
	checkMatMul(op, len(dst), len(x), len(w), m*n, m*k, n*k)
	row := make([]float32, k)
	for j := 0; j < n; j++ {
		widenGo(kind, row, w[j*k:j*k+k])
		for i := 0; i < m; i++ {
			xi := x[i*k : i*k+k]
			var s float32
			for p, v := range xi {
				s += v * row[p]
			}
			if accumulate {
				dst[i*n+j] += s
			} else {
				dst[i*n+j] = s
			}
		}
	}
}

// matMul16Ref is the reference for dst = x·w (+ dst) with 16-bit w [k, n].
func matMul16Ref(op string, kind half16, dst, x []float32, w []uint16, m, n, k int, accumulate bool) {
	checkMatMul(op, len(dst), len(x), len(w), m*n, m*k, k*n)
	wf := make([]float32, k*n)
	widenGo(kind, wf, w[:k*n])
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float32
			for p := 0; p < k; p++ {
				s += x[i*k+p] * wf[p*n+j]
			}
			if accumulate {
				dst[i*n+j] += s
			} else {
				dst[i*n+j] = s
			}
		}
	}
}

// MatMulTBF16Ref is the reference for MatMulTBF16.
func MatMulTBF16Ref(dst, x []float32, w []uint16, m, n, k int, accumulate bool) {
	matMulT16Ref("MatMulTBF16", halfBF16, dst, x, w, m, n, k, accumulate)
}

// MatMulTF16Ref is the reference for MatMulTF16.
func MatMulTF16Ref(dst, x []float32, w []uint16, m, n, k int, accumulate bool) {
	matMulT16Ref("MatMulTF16", halfF16, dst, x, w, m, n, k, accumulate)
}

// MatMulBF16Ref is the reference for MatMulBF16.
func MatMulBF16Ref(dst, x []float32, w []uint16, m, n, k int, accumulate bool) {
	matMul16Ref("MatMulBF16", halfBF16, dst, x, w, m, n, k, accumulate)
}

// MatMulF16Ref is the reference for MatMulF16.
func MatMulF16Ref(dst, x []float32, w []uint16, m, n, k int, accumulate bool) {
	matMul16Ref("MatMulF16", halfF16, dst, x, w, m, n, k, accumulate)
}

// MatMulTBF16 is MatMulT with a bfloat16 weight: dst = x·wᵀ (+ dst when
// accumulate), x [m, k] float32, w [n, k] bfloat16 bits, dst [m, n].
// Deterministic for any thread count, like MatMulT.
func MatMulTBF16(dst, x []float32, w []uint16, m, n, k int, accumulate bool) {
	checkMatMul("MatMulTBF16", len(dst), len(x), len(w), m*n, m*k, n*k)
	matMulT16(halfBF16, dst, x, w, m, n, k, accumulate)
}

// MatMulTF16 is MatMulTBF16 with an IEEE binary16 weight.
func MatMulTF16(dst, x []float32, w []uint16, m, n, k int, accumulate bool) {
	checkMatMul("MatMulTF16", len(dst), len(x), len(w), m*n, m*k, n*k)
	matMulT16(halfF16, dst, x, w, m, n, k, accumulate)
}

// MatMulBF16 is MatMul with a bfloat16 weight: dst = x·w (+ dst when
// accumulate), x [m, k], w [k, n] bfloat16 bits, dst [m, n]. The backward
// pass's dX = dY·W over a 16-bit frozen weight W [out, in] is MatMulBF16 with
// k = out, n = in.
func MatMulBF16(dst, x []float32, w []uint16, m, n, k int, accumulate bool) {
	checkMatMul("MatMulBF16", len(dst), len(x), len(w), m*n, m*k, k*n)
	gemm(&gemmArgs{m: m, n: n, k: k, a: x, lda: k, b16: w, b16Kind: halfBF16, ldb: n, c: dst, ldc: n, acc: accumulate})
}

// MatMulF16 is MatMulBF16 with an IEEE binary16 weight.
func MatMulF16(dst, x []float32, w []uint16, m, n, k int, accumulate bool) {
	checkMatMul("MatMulF16", len(dst), len(x), len(w), m*n, m*k, k*n)
	gemm(&gemmArgs{m: m, n: n, k: k, a: x, lda: k, b16: w, b16Kind: halfF16, ldb: n, c: dst, ldc: n, acc: accumulate})
}

func matMulT16(kind half16, dst, x []float32, w []uint16, m, n, k int, accumulate bool) {
	if m == 0 || n == 0 {
		return
	}
	if m <= gemvMaxM {
		gemv16(kind, dst, x, w, m, n, k, accumulate)
		return
	}
	gemm(&gemmArgs{m: m, n: n, k: k, a: x, lda: k, b16: w, b16Kind: kind, ldb: k, bNMajor: true, c: dst, ldc: n, acc: accumulate})
}

// dotKernels16 are dotKernels with a 16-bit w: dst[i*ldd+j] (+)=
// Σ_p x[i*ldx+p]·widen(w[j*ldw+p]) for i < m and j < group (fn) or j < 1 (fn1).
type dotKernels16 struct {
	group   int
	fn, fn1 func(k int, x *float32, ldx int, w *uint16, ldw int, dst *float32, ldd int, add int)
}

// Assembly kernels by format (set in matmul16_amd64.go when the CPU has
// AVX-512); use16Asm turns them off, for tests of the portable path.
var (
	dot16      [3][gemvMaxM + 1]dotKernels16
	dot16Max   [3]int
	widenAsm   [3]func(dst *float32, src *uint16, n int)
	use16Asm   = true
	gemv16Jobs = sync.Pool{New: func() any {
		j := new(gemv16Job)
		j.run = j.do
		return j
	}}
)

// gemv16Job carries one small-m call's arguments to the pool's workers.
type gemv16Job struct {
	kind         half16
	x, dst       []float32
	w            []uint16
	m, n, k, add int
	run          func(lo, hi int)
}

func (j *gemv16Job) do(lo, hi int) {
	gemv16Range(j.kind, j.dst, j.x, j.w, j.m, j.n, j.k, j.add, lo*dotStep, min(hi*dotStep, j.n))
}

// gemv16 computes dst[m,n] (+)= x[m,k]·w[n,k]ᵀ for small m, streaming each
// row of w once; threads split the rows of w in chunks of at least 64 KB,
// as gemvT does.
func gemv16(kind half16, dst, x []float32, w []uint16, m, n, k int, accumulate bool) {
	add := 0
	if accumulate {
		add = 1
	}
	if k == 0 {
		if add == 0 {
			clear(dst[:m*n])
		}
		return
	}
	steps := (n + dotStep - 1) / dotStep
	if m*n*k < gemvParallelElems || steps < 2 {
		gemv16Range(kind, dst, x, w, m, n, k, add, 0, n)
		return
	}
	j := gemv16Jobs.Get().(*gemv16Job)
	j.kind, j.x, j.w, j.dst, j.m, j.n, j.k, j.add = kind, x, w, dst, m, n, k, add
	gemmParallel(steps, max(1, (1<<15)/(k*dotStep)), j.run)
	j.x, j.w, j.dst = nil, nil, nil
	gemv16Jobs.Put(j)
}

// gemv16Range computes columns [j0, j1) of dst, dotStep rows of w at a time
// (one at a time for the last few), each against all of x in chunks of at
// most dotMax rows. Every element is computed the same way whatever the
// range, so the result does not depend on the thread count.
func gemv16Range(kind half16, dst, x []float32, w []uint16, m, n, k, add, j0, j1 int) {
	if !use16Asm || dot16Max[kind] == 0 {
		gemv16RangeWiden(kind, dst, x, w, m, n, k, add, j0, j1)
		return
	}
	dmax := dot16Max[kind]
	for j := j0; j < j1; {
		g := dotStep
		if j+g > j1 {
			g = 1
		}
		for i0 := 0; i0 < m; {
			mm := min(m-i0, dmax)
			d := &dot16[kind][mm]
			xp := &x[i0*k]
			if g == 1 {
				d.fn1(k, xp, k, &w[j*k], k, &dst[i0*n+j], n, add)
			} else {
				for jj := 0; jj < g; jj += d.group {
					d.fn(k, xp, k, &w[(j+jj)*k], k, &dst[i0*n+j+jj], n, add)
				}
			}
			i0 += mm
		}
		j += g
	}
}

// widenBufs holds float32 scratch for the portable paths (rows of w widened
// for the float32 dot kernels, panels of B widened before packing).
var widenBufs sync.Pool

func getWidenBuf(n int) *[]float32 {
	if v := widenBufs.Get(); v != nil {
		b := v.(*[]float32)
		if cap(*b) >= n {
			*b = (*b)[:n]
			return b
		}
	}
	b := alignedFloats(n)
	return &b
}

// gemv16RangeWiden is gemv16Range without 16-bit dot kernels: each group of
// dotStep rows of w is widened into a small float32 buffer (in L1) and
// multiplied by the float32 dot kernels of impl, just as gemvRange would.
func gemv16RangeWiden(kind half16, dst, x []float32, w []uint16, m, n, k, add, j0, j1 int) {
	im := impl
	bp := getWidenBuf(dotStep * k)
	buf := *bp
	for j := j0; j < j1; {
		g := dotStep
		if j+g > j1 {
			g = 1
		}
		widen16(kind, buf, w[j*k:(j+g)*k])
		for i0 := 0; i0 < m; {
			mm := min(m-i0, im.dotMax)
			d := &im.dot[mm]
			xp := &x[i0*k]
			if g == 1 {
				d.fn1(k, xp, k, &buf[0], k, &dst[i0*n+j], n, add)
			} else {
				for jj := 0; jj < g; jj += d.group {
					d.fn(k, xp, k, &buf[jj*k], k, &dst[i0*n+j+jj], n, add)
				}
			}
			i0 += mm
		}
		j += g
	}
	widenBufs.Put(bp)
}

// packB16 is packB for a 16-bit B (g.b16): depth [p0, p0+kb) and columns
// [j0, j0+nb) widened into panels of nr columns, stored k-major
// (dst[p*nr+j]) and zero-padded to nr columns. Only one panel is widened at
// a time: a row-major B (MatMul16) is widened straight into the panel, a
// transposed one (MatMulT16, B = wᵀ) into a kb×nr buffer that the variant's
// own transposing packer then packs.
func packB16(g *gemmArgs, dst []float32, p0, kb, j0, nb, nr int) {
	if !g.bNMajor {
		for t := 0; t*nr < nb; t++ {
			qs := j0 + t*nr
			wq := min(nr, nb-t*nr)
			pan := dst[t*kb*nr : (t+1)*kb*nr]
			for p := 0; p < kb; p++ {
				d := pan[p*nr : p*nr+nr]
				widen16(g.b16Kind, d, g.b16[(p0+p)*g.ldb+qs:][:wq])
				clear(d[wq:])
			}
		}
		return
	}
	bp := getWidenBuf(nr * kb)
	buf := *bp
	for t := 0; t*nr < nb; t++ {
		qs := j0 + t*nr
		wq := min(nr, nb-t*nr)
		for q := 0; q < wq; q++ {
			widen16(g.b16Kind, buf[q*kb:q*kb+kb], g.b16[(qs+q)*g.ldb+p0:][:kb])
		}
		// The packer's wide stores may spill past this panel into the
		// next one (rewritten after) or the buffer's slack, as they do
		// when packing all panels at once.
		g.im.packT(dst[t*kb*nr:], buf, kb, 0, wq, 0, kb, nr)
	}
	widenBufs.Put(bp)
}
