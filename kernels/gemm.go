package kernels

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"unsafe"
)

//go:generate go run gemm_asmgen.go

// The GEMM is organised as in GotoBLAS/BLIS. C[m,n] (+)= A[m,k]·B[k,n] is cut
// into column blocks of nc, depth blocks of kc and row blocks of mc. For each
// (nc, kc) block B is packed into panels of nr columns stored k-major
// (panel[p*nr+j]), for each (mc, kc) block A into panels of mr rows
// (panel[p*mr+i]), both zero-padded to whole panels, and a register-blocked
// micro-kernel computes each mr×nr tile of C from one A panel and one B panel
// (broadcasting A, loading B as vectors). The packed A block stays in L2 and
// is swept once per B panel; the B block sits in L3. When each A block would
// serve only one or two B panels (n small, as with LoRA's rank-r factors) A
// is not packed but read in place by a kernel variant. The operands' layouts
// only change how they are packed, so MatMulT (B = wᵀ), MatMul (B = w) and
// MatMulTN (A = aᵀ) share everything else. MatMulT with m ≤ gemvMaxM (decode)
// skips all this and streams w through dot-product kernels.
//
// Determinism: every element of C is computed the same way wherever it lies
// in the partition: one accumulator summing its kc block in k order (one FMA
// per step), then C = acc for the first block (unless accumulating) and
// C = C + acc for the others. The block boundaries depend only on k, the
// kernel variant only on the shape, and the threads split C over rows or
// columns only, so results are bit-identical for any thread count.

// gemmImpl is one instruction-set variant of the micro-kernel with its blocking.
type gemmImpl struct {
	name       string
	mr, nr     int // tile of C computed by one kernel call
	kc, mc, nc int // depth, row and column block sizes (mc multiple of mr, nc of nr)
	// kernel computes the mr×nr tile c[i*ldc+j] = acc[i][j] (+ c when add != 0),
	// acc[i][j] = Σ_p a[p*mr+i]·b[p*nr+j] over p < k, summed in order.
	kernel func(k int, a, b, c *float32, ldc int, add int)
	// kernelRows[r], if set (0 < r < mr), is kernel computing only the first
	// r rows of the tile, for the last panel of A when mr does not divide m.
	kernelRows []func(k int, a, b, c *float32, ldc int, add int)
	// kernelU, if set, is kernel reading A in place: A[i,p] at a[i*rs+p*cs].
	// It saves packing A when each A block serves only a panel or two of B.
	kernelU func(k int, a *float32, rs, cs int, b, c *float32, ldc int, add int)
	// packT and packN pack operands into panels (see packTrans, packCopy).
	packT func(dst, src []float32, ld, q0, nq, p0, kb, w int)
	packN func(dst, src []float32, ld, p0, kb, q0, nq, w int)
	// dot[m] holds the kernels for m rows of x (1 ≤ m ≤ dotMax) against
	// rows of w, used by MatMulT when m is small; each group divides dotStep.
	dot    [gemvMaxM + 1]dotKernels
	dotMax int
	// narrow, if set, is the variant for products with n ≤ narrow.nr,
	// whose tiles would otherwise be mostly padding.
	narrow *gemmImpl
}

// dotKernels compute dst[i*ldd+j] (+)= Σ_p x[i*ldx+p]·w[j*ldw+p] for i < m
// and j < group (fn) or j < 1 (fn1).
type dotKernels struct {
	group   int
	fn, fn1 func(k int, x *float32, ldx int, w *float32, ldw int, dst *float32, ldd int, add int)
}

// gemvMaxM is the largest m for which MatMulT streams w through dot-product
// kernels instead of packing: decode steps (one to a few tokens) are
// memory-bound, and reading each weight once is all that matters.
const gemvMaxM = 8

// dotStep is how many rows of w the small-m path takes at a time.
const dotStep = 4

// impl is the variant in use, chosen at init from the CPU's features.
var impl = pickImpl()

// Parallel thresholds: below these amounts of work a call runs on the calling
// goroutine, since waking a worker costs microseconds.
const (
	gemmParallelFlops = 1 << 21 // m·n·k multiply-adds
	gemvParallelElems = 1 << 16 // m·n·k for the dot-product path
)

// gemmArgs describes one product C (+)= op(A)·op(B).
type gemmArgs struct {
	m, n, k int
	a       []float32
	lda     int
	aKMajor bool // A[i,p] = a[p*lda+i] (MatMulTN) instead of a[i*lda+p]
	b       []float32
	ldb     int
	bNMajor bool     // B[p,j] = b[j*ldb+p] (MatMulT) instead of b[p*ldb+j]
	b16     []uint16 // B held as 16-bit floats instead of b (matmul16.go)
	b16Kind half16   // their format; halfNone when B is b
	c       []float32
	ldc     int
	acc     bool

	im      *gemmImpl
	kc      int  // balanced depth block: depends only on k and the kernel
	byCol   bool // threads split the columns (else the rows)
	unit    int  // columns or rows per partition unit
	unpackA bool // read A in place with im.kernelU instead of packing it
}

// unpackedAMaxPanels is the most B panels per thread for which A is read in
// place: packing A pays off only when each packed block is reused more.
const unpackedAMaxPanels = 2

// forCols returns the variant for products with n columns.
func (im *gemmImpl) forCols(n int) *gemmImpl {
	if im.narrow != nil && n <= im.narrow.nr {
		return im.narrow
	}
	return im
}

// mcb and ncb are mc and nc rounded to whole tiles.
func (im *gemmImpl) mcb() int { return max(im.mr, im.mc/im.mr*im.mr) }
func (im *gemmImpl) ncb() int { return max(im.nr, im.nc/im.nr*im.nr) }

// ncFor is the B block width for a product of m rows. A product with no
// more rows than one A block (decode batches, a serving lm_head) reuses
// each packed B panel only m/mr times, so a wide B block buys nothing over
// packing its few rows of A a few more times, and it would keep 8 MB per
// worker of packing buffer for a BF16 lm_head of 49152 columns; such
// products take blocks of at most ncSmallM columns.
func (im *gemmImpl) ncFor(m int) int {
	if m <= im.mcb() {
		return min(im.ncb(), max(im.nr, ncSmallM/im.nr*im.nr))
	}
	return im.ncb()
}

const ncSmallM = 512

// gemmBuf is one worker's packing storage, reused across calls.
type gemmBuf struct {
	key     gemmPoolKey
	a, b, t []float32
}

// gemmPoolKey names a pool of packing buffers: one per micro-kernel variant
// and buffer size. The buffers are sized to the product, not to the largest
// block: A to mc rows of its depth block, B to its depth block times the
// columns one worker covers (at most nc). A serving process whose
// projections are not float32 (NF4, BF16) runs only narrow or shallow
// float32 products (attention's per-head products, LoRA's rank-r factors,
// a BF16 lm_head of depth 576), and then never holds the 8 MB blocks a
// float32 projection of depth ≥ 1024 needs. Sizes are rounded up to eight
// steps per octave (sizeClass), so products of nearly the same shape share
// a pool; products of different shapes alternate in every forward (wide
// projections, narrow LoRA products), and a single pool would discard and
// re-zero a large buffer at nearly every call.
type gemmPoolKey struct {
	im     *gemmImpl
	na, nb int // floats in the A and B buffers
}

var gemmBufPools sync.Map // gemmPoolKey → *sync.Pool

func bufPool(k gemmPoolKey) *sync.Pool {
	if p, ok := gemmBufPools.Load(k); ok {
		return p.(*sync.Pool)
	}
	p, _ := gemmBufPools.LoadOrStore(k, new(sync.Pool))
	return p.(*sync.Pool)
}

// gemmBufSlack floats after each packing buffer absorb the wide stores of
// the vector packers.
const gemmBufSlack = 16

// sizeClass rounds n up to one of eight steps per octave: at most 12.5%
// over n.
func sizeClass(n int) int {
	if n <= 256 {
		return 256
	}
	step := 1 << (bits.Len(uint(n-1)) - 3)
	return (n + step - 1) / step * step
}

// getGemmBuf returns packing buffers for a worker computing cols columns of
// a product of m rows with depth blocks of kc (gemmArgs.kc); putGemmBuf gives them
// back.
func getGemmBuf(im *gemmImpl, m, cols, kc int) *gemmBuf {
	nbc := min(im.ncFor(m), (cols+im.nr-1)/im.nr*im.nr)
	k := gemmPoolKey{im: im, na: sizeClass(im.mcb()*kc) + gemmBufSlack, nb: sizeClass(nbc*kc) + gemmBufSlack}
	if v := bufPool(k).Get(); v != nil {
		return v.(*gemmBuf)
	}
	return &gemmBuf{key: k, a: alignedFloats(k.na), b: alignedFloats(k.nb), t: alignedFloats(im.mr * im.nr)}
}

func putGemmBuf(bf *gemmBuf) { bufPool(bf.key).Put(bf) }

// alignedFloats returns n zeroed floats starting on a 64-byte boundary.
func alignedFloats(n int) []float32 {
	s := make([]float32, n+16)
	off := int(uintptr(unsafe.Pointer(&s[0]))%64) / 4
	if off != 0 {
		off = 16 - off
	}
	return s[off : off+n : off+n]
}

// gemmJob carries one call's arguments to the pool's workers; run is bound
// once so handing it to Parallel does not allocate.
type gemmJob struct {
	g         gemmArgs
	run, gemv func(lo, hi int)
	// small-m path
	x, w, dst []float32
	m, n, k   int
	add       int
}

var gemmJobs = sync.Pool{New: func() any {
	j := new(gemmJob)
	j.run = j.do
	j.gemv = j.gemvRun
	return j
}}

// gemm runs g over the worker pool.
func gemm(g *gemmArgs) {
	if g.m == 0 || g.n == 0 {
		return
	}
	if g.k == 0 {
		if !g.acc {
			for i := 0; i < g.m; i++ {
				clear(g.c[i*g.ldc : i*g.ldc+g.n])
			}
		}
		return
	}
	im := impl.forCols(g.n)
	g.im = im
	g.kc = balancedBlock(g.k, im.kc)
	threads := Threads()
	if threads < 2 || g.m*g.n*g.k < gemmParallelFlops {
		g.unpackA = im.kernelU != nil && g.n <= unpackedAMaxPanels*im.nr
		bf := getGemmBuf(im, g.m, g.n, g.kc)
		gemmBlock(g, bf, 0, g.m, 0, g.n)
		putGemmBuf(bf)
		return
	}
	j := gemmJobs.Get().(*gemmJob)
	j.g = *g
	g = &j.g
	// Threads split the longer side of C, each running the whole blocked
	// algorithm on its part. The operand along the other side is packed by
	// every thread. Sharing it was measured to cost more, on a quiet machine
	// too (M=N=K=1024, alternating runs): A packed once into a buffer of all
	// of A that both threads read, each packing the panels it claims, ran
	// 2–3% slower than A packed by each thread into its own block buffer,
	// which stays in L2; a ring of two shared block buffers, which stays in
	// cache, still lost 2%, and so did a shared B with the rows split: the
	// packed lines then travel between the cores' caches, which costs more
	// than packing them twice.
	units, unit := g.n, im.nr
	g.byCol = g.n >= g.m
	if !g.byCol {
		units, unit = g.m, im.mr
	}
	g.unit = unit
	cols := g.n
	if g.byCol {
		cols = (g.n + threads - 1) / threads
	}
	g.unpackA = im.kernelU != nil && cols <= unpackedAMaxPanels*im.nr
	gemmParallel((units+unit-1)/unit, 1, j.run)
	j.g = gemmArgs{}
	gemmJobs.Put(j)
}

// gemmParallelCalls counts the calls of Parallel made by the products, for
// the allocation test (Parallel itself may allocate).
var gemmParallelCalls atomic.Int64

func gemmParallel(n, grain int, fn func(lo, hi int)) {
	gemmParallelCalls.Add(1)
	Parallel(n, grain, fn)
}

func (j *gemmJob) do(lo, hi int) {
	g := &j.g
	cols := g.n
	if g.byCol {
		cols = min(hi*g.unit, g.n) - lo*g.unit
	}
	bf := getGemmBuf(g.im, g.m, cols, g.kc)
	if g.byCol {
		gemmBlock(g, bf, 0, g.m, lo*g.unit, min(hi*g.unit, g.n))
	} else {
		gemmBlock(g, bf, lo*g.unit, min(hi*g.unit, g.m), 0, g.n)
	}
	putGemmBuf(bf)
}

// balancedBlock splits n into the fewest blocks of at most max and returns the
// common block size, so the last block is not a sliver.
func balancedBlock(n, max int) int {
	nb := (n + max - 1) / max
	return (n + nb - 1) / nb
}

// gemmBlock computes rows [i0, i1) and columns [j0, j1) of C.
func gemmBlock(g *gemmArgs, bf *gemmBuf, i0, i1, j0, j1 int) {
	nc := g.im.ncFor(g.m)
	for jc := j0; jc < j1; jc += nc {
		nb := min(nc, j1-jc)
		for pc := 0; pc < g.k; pc += g.kc {
			kb := min(g.kc, g.k-pc)
			packB(g, bf.b, pc, kb, jc, nb, g.im.nr)
			gemmRows(g, bf, bf.b, i0, i1, jc, nb, pc, kb)
		}
	}
}

// gemmRows computes the contribution of depth block [pc, pc+kb) to rows
// [i0, i1) and columns [jc, jc+nb) of C, with that block of B packed in bp.
// The rows are cut into A blocks of at most mc rows, balanced in size.
func gemmRows(g *gemmArgs, bf *gemmBuf, bp []float32, i0, i1, jc, nb, pc, kb int) {
	im := g.im
	mr, nr := im.mr, im.nr
	mc := balancedBlock(i1-i0, im.mcb())
	mc = (mc + mr - 1) / mr * mr
	add := 0
	if g.acc || pc > 0 {
		add = 1
	}
	rs, cs := g.lda, 1
	if g.aKMajor {
		rs, cs = 1, g.lda
	}
	t := bf.t
	for ic := i0; ic < i1; ic += mc {
		mb := min(mc, i1-ic)
		if !g.unpackA {
			packA(g, bf.a, ic, mb, pc, kb, mr)
		}
		for jr := 0; jr < nb; jr += nr {
			bpp := &bp[jr*kb]
			nn := min(nr, nb-jr)
			for ir := 0; ir < mb; ir += mr {
				mm := min(mr, mb-ir)
				ci := (ic+ir)*g.ldc + jc + jr
				// An edge tile is computed whole into t, then the part
				// inside C is merged; one of whole columns but partial
				// rows goes straight to C with the kernel for its rows.
				full := mm == mr && nn == nr
				kern := im.kernel
				if mm < mr && nn == nr && im.kernelRows != nil {
					kern, full = im.kernelRows[mm], true
				}
				cp, ldc, kadd := &g.c[ci], g.ldc, add
				if !full {
					cp, ldc, kadd = &t[0], nr, 0
				}
				switch {
				case !g.unpackA:
					kern(kb, &bf.a[ir*kb], bpp, cp, ldc, kadd)
				case mm == mr:
					im.kernelU(kb, &g.a[(ic+ir)*rs+pc*cs], rs, cs, bpp, cp, ldc, kadd)
				default:
					// Rows past the end of A cannot be read in place.
					packA(g, bf.a, ic+ir, mm, pc, kb, mr)
					kern(kb, &bf.a[0], bpp, cp, ldc, kadd)
				}
				if full {
					continue
				}
				for i := 0; i < mm; i++ {
					row := g.c[ci+i*g.ldc : ci+i*g.ldc+nn]
					tr := t[i*nr : i*nr+nn]
					if add != 0 {
						for j, v := range tr {
							row[j] += v
						}
					} else {
						copy(row, tr)
					}
				}
			}
		}
	}
}

// packA packs rows [i0, i0+mb) and depth [p0, p0+kb) of A into panels of mr
// rows, each panel stored k-major (dst[p*mr+i]) and zero-padded to mr rows.
func packA(g *gemmArgs, dst []float32, i0, mb, p0, kb, mr int) {
	if g.aKMajor {
		g.im.packN(dst, g.a, g.lda, p0, kb, i0, mb, mr)
	} else {
		g.im.packT(dst, g.a, g.lda, i0, mb, p0, kb, mr)
	}
}

// packB packs depth [p0, p0+kb) and columns [j0, j0+nb) of B into panels of
// nr columns, each stored k-major (dst[p*nr+j]) and zero-padded to nr columns.
func packB(g *gemmArgs, dst []float32, p0, kb, j0, nb, nr int) {
	if g.b16Kind != halfNone {
		packB16(g, dst, p0, kb, j0, nb, nr)
		return
	}
	if g.bNMajor {
		g.im.packT(dst, g.b, g.ldb, j0, nb, p0, kb, nr)
	} else {
		g.im.packN(dst, g.b, g.ldb, p0, kb, j0, nb, nr)
	}
}

// packCopy packs src[p*ld+q] for p in [p0, p0+kb), q in [q0, q0+nq) into
// panels of w values of q: panel t holds dst[t*kb*w + (p-p0)*w + (q-q0-t*w)].
func packCopy(dst, src []float32, ld, p0, kb, q0, nq, w int) {
	for t := 0; t*w < nq; t++ {
		qs := q0 + t*w
		wq := min(w, q0+nq-qs)
		pan := dst[t*kb*w : (t+1)*kb*w]
		for p := 0; p < kb; p++ {
			s := src[(p0+p)*ld+qs:][:wq]
			d := pan[p*w : p*w+w]
			for q, v := range s {
				d[q] = v
			}
			clear(d[wq:])
		}
	}
}

// packTrans packs src[q*ld+p] for q in [q0, q0+nq), p in [p0, p0+kb) into
// panels of w values of q: the transpose of packCopy's source layout.
func packTrans(dst, src []float32, ld, q0, nq, p0, kb, w int) {
	for t := 0; t*w < nq; t++ {
		qs := q0 + t*w
		wq := min(w, q0+nq-qs)
		pan := dst[t*kb*w : (t+1)*kb*w]
		q := 0
		for ; q+4 <= wq; q += 4 {
			r0 := src[(qs+q)*ld+p0:][:kb]
			r1 := src[(qs+q+1)*ld+p0:][:kb]
			r2 := src[(qs+q+2)*ld+p0:][:kb]
			r3 := src[(qs+q+3)*ld+p0:][:kb]
			for p := range r0 {
				d := pan[p*w+q:][:4]
				d[0], d[1], d[2], d[3] = r0[p], r1[p], r2[p], r3[p]
			}
		}
		for ; q < wq; q++ {
			r := src[(qs+q)*ld+p0:][:kb]
			for p, v := range r {
				pan[p*w+q] = v
			}
		}
		if wq < w {
			for p := 0; p < kb; p++ {
				clear(pan[p*w+wq : p*w+w])
			}
		}
	}
}

// gemvT computes dst[m,n] (+)= x[m,k]·w[n,k]ᵀ for small m with the dot
// kernels, streaming each row of w once. Threads split the rows of w.
func gemvT(dst, x, w []float32, m, n, k int, accumulate bool) {
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
		gemvRange(impl, dst, x, w, m, n, k, add, 0, n)
		return
	}
	j := gemmJobs.Get().(*gemmJob)
	j.g.im = impl
	j.x, j.w, j.dst, j.m, j.n, j.k, j.add = x, w, dst, m, n, k, add
	// Chunks of at least 64 KB of weights.
	gemmParallel(steps, max(1, (1<<14)/(k*dotStep)), j.gemv)
	j.x, j.w, j.dst = nil, nil, nil
	j.g = gemmArgs{}
	gemmJobs.Put(j)
}

func (j *gemmJob) gemvRun(lo, hi int) {
	gemvRange(j.g.im, j.dst, j.x, j.w, j.m, j.n, j.k, j.add, lo*dotStep, min(hi*dotStep, j.n))
}

// gemvRange computes columns [j0, j1) of dst: dotStep rows of w at a time,
// each against all of x in chunks of at most im.dotMax rows while it is hot
// in L1. Every element is computed by the same kernel whatever the range.
func gemvRange(im *gemmImpl, dst, x, w []float32, m, n, k, add, j0, j1 int) {
	for j := j0; j < j1; {
		g := dotStep
		if j+g > j1 {
			g = 1
		}
		for i0 := 0; i0 < m; {
			mm := min(m-i0, im.dotMax)
			d := &im.dot[mm]
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

// goKernel is the portable micro-kernel (goMR×goNR), used when no vector
// kernel is available or with the noasm tag.
const goMR, goNR = 4, 4

// goKernel computes the goMR×goNR tile c[i*ldc+j] = acc[i][j] (+ c when
// add != 0), acc[i][j] = Σ_p a[p*4+i]·b[p*4+j] in order of p.
func goKernel(k int, ap, bp, cp *float32, ldc int, add int) {
	a := unsafe.Slice(ap, k*goMR)
	b := unsafe.Slice(bp, k*goNR)
	c := unsafe.Slice(cp, (goMR-1)*ldc+goNR)
	var c00, c01, c02, c03, c10, c11, c12, c13 float32
	var c20, c21, c22, c23, c30, c31, c32, c33 float32
	for p := 0; p < k; p++ {
		av := a[p*4 : p*4+4 : p*4+4]
		bv := b[p*4 : p*4+4 : p*4+4]
		a0, a1, a2, a3 := av[0], av[1], av[2], av[3]
		b0, b1, b2, b3 := bv[0], bv[1], bv[2], bv[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
	}
	r := [4][4]float32{{c00, c01, c02, c03}, {c10, c11, c12, c13}, {c20, c21, c22, c23}, {c30, c31, c32, c33}}
	for i := range r {
		row := c[i*ldc : i*ldc+4 : i*ldc+4]
		if add != 0 {
			row[0] += r[i][0]
			row[1] += r[i][1]
			row[2] += r[i][2]
			row[3] += r[i][3]
		} else {
			row[0], row[1], row[2], row[3] = r[i][0], r[i][1], r[i][2], r[i][3]
		}
	}
}

// goDot computes dst[i*ldd+j] (+)= Σ_p x[i*ldx+p]·w[j*ldw+p] for i < m, j < n
// with the portable Dot.
func goDot(m, n, k int, xp *float32, ldx int, wp *float32, ldw int, dp *float32, ldd int, add int) {
	x := unsafe.Slice(xp, (m-1)*ldx+k)
	w := unsafe.Slice(wp, (n-1)*ldw+k)
	d := unsafe.Slice(dp, (m-1)*ldd+n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			s := Dot(x[i*ldx:i*ldx+k], w[j*ldw:j*ldw+k])
			if add != 0 {
				d[i*ldd+j] += s
			} else {
				d[i*ldd+j] = s
			}
		}
	}
}

// goImpl is the portable variant.
var goImpl = func() *gemmImpl {
	im := &gemmImpl{name: "go", mr: goMR, nr: goNR, kc: 256, mc: 128, nc: 1024,
		kernel: goKernel, packT: packTrans, packN: packCopy}
	im.dotMax = 4
	for m := 1; m <= im.dotMax; m++ {
		m := m
		im.dot[m] = dotKernels{
			group: 4,
			fn: func(k int, x *float32, ldx int, w *float32, ldw int, dst *float32, ldd int, add int) {
				goDot(m, 4, k, x, ldx, w, ldw, dst, ldd, add)
			},
			fn1: func(k int, x *float32, ldx int, w *float32, ldw int, dst *float32, ldd int, add int) {
				goDot(m, 1, k, x, ldx, w, ldw, dst, ldd, add)
			},
		}
	}
	return im
}()
