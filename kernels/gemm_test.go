package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// gemmOp is one of the three products under test with its reference.
type gemmOp struct {
	name     string
	fast     func(dst, a, b []float32, m, n, k int, accumulate bool)
	ref      func(dst, a, b []float32, m, n, k int, accumulate bool)
	aAt, bAt func(m, n, k, i, j, p int) int // index of A[i,p] in a, B[p,j] in b
}

var gemmOps = []gemmOp{
	{"MatMulT", MatMulT, MatMulTRef,
		func(m, n, k, i, j, p int) int { return i*k + p }, func(m, n, k, i, j, p int) int { return j*k + p }},
	{"MatMul", MatMul, MatMulRef,
		func(m, n, k, i, j, p int) int { return i*k + p }, func(m, n, k, i, j, p int) int { return p*n + j }},
	{"MatMulTN", MatMulTN, MatMulTNRef,
		func(m, n, k, i, j, p int) int { return p*m + i }, func(m, n, k, i, j, p int) int { return p*n + j }},
}

func gemmRand(rng *rand.Rand, n, off int) []float32 {
	v := make([]float32, n+off)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v[off:]
}

// withImpl runs f with each micro-kernel variant this build can run, and with
// that variant's blocking shrunk so that small shapes cross every block
// boundary (kc, mc, nc) several times.
func withImpl(t *testing.T, f func(t *testing.T, im *gemmImpl)) {
	saved := impl
	defer func() { impl = saved }()
	for _, im := range gemmImpls() {
		small := *im
		small.name += "-smallblocks"
		small.kc, small.mc, small.nc = 40, 2*im.mr, 3*im.nr
		if im.narrow != nil {
			sn := *im.narrow
			sn.kc, sn.mc = 40, 2*sn.mr
			small.narrow = &sn
		}
		for _, v := range []*gemmImpl{im, &small} {
			impl = v
			t.Run(v.name, func(t *testing.T) { f(t, v) })
		}
	}
}

// checkGEMM compares dst (the fast result over dst0) with a float64
// product, within twice the worst-case float32 summation error.
func checkGEMM(t *testing.T, op gemmOp, dst, dst0, a, b []float32, m, n, k int, accumulate bool) {
	t.Helper()
	const u = 1.0 / (1 << 24)
	// Gather A row-major and B column-major so the check's loop is contiguous.
	am := make([]float64, m*k)
	bm := make([]float64, n*k)
	for p := 0; p < k; p++ {
		for i := 0; i < m; i++ {
			am[i*k+p] = float64(a[op.aAt(m, n, k, i, 0, p)])
		}
		for j := 0; j < n; j++ {
			bm[j*k+p] = float64(b[op.bAt(m, n, k, 0, j, p)])
		}
	}
	for i := 0; i < m; i++ {
		ai := am[i*k : i*k+k]
		for j := 0; j < n; j++ {
			bj := bm[j*k : j*k+k]
			var s, abs float64
			for p, v := range ai {
				v *= bj[p]
				s += v
				abs += math.Abs(v)
			}
			if accumulate {
				s += float64(dst0[i*n+j])
				abs += math.Abs(float64(dst0[i*n+j]))
			}
			got := float64(dst[i*n+j])
			if tol := 2 * float64(k+2) * u * abs; math.Abs(got-s) > tol {
				t.Fatalf("%s m=%d n=%d k=%d acc=%v: [%d,%d] = %v, want %v (tolerance %g)",
					op.name, m, n, k, accumulate, i, j, got, s, tol)
			}
		}
	}
}

// runGEMMCase checks one shape of one op, overwriting and accumulating, with
// guard slots around dst and inputs at an unaligned offset.
func runGEMMCase(t *testing.T, rng *rand.Rand, op gemmOp, m, n, k, off int) {
	t.Helper()
	a := gemmRand(rng, m*k, off)
	b := gemmRand(rng, k*n, off)
	const g = 19
	buf := gemmRand(rng, m*n+2*g, 0)
	guardVals := append([]float32(nil), buf...)
	dst := buf[g : g+m*n]
	dst0 := append([]float32(nil), dst...)
	for _, accumulate := range []bool{false, true} {
		copy(dst, dst0)
		op.fast(dst, a, b, m, n, k, accumulate)
		for i := 0; i < g; i++ {
			if buf[i] != guardVals[i] || buf[g+m*n+i] != guardVals[g+m*n+i] {
				t.Fatalf("%s m=%d n=%d k=%d: write outside dst (guard %d)", op.name, m, n, k, i)
			}
		}
		checkGEMM(t, op, dst, dst0, a, b, m, n, k, accumulate)
	}
}

func TestGEMMAgainstRef(t *testing.T) {
	withImpl(t, func(t *testing.T, im *gemmImpl) {
		rng := rand.New(rand.NewPCG(7, 8))
		ms := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 17, 31, 32, 33, 47, 65, 129}
		ns := []int{0, 1, 2, 3, 5, 7, 13, 16, 17, 31, 32, 33, 47, 64, 65, 127}
		ks := []int{0, 1, 3, 8, 16, 17, 41, 100}
		if testing.Short() {
			ms, ns, ks = []int{0, 1, 3, 4, 13, 33, 65}, []int{0, 1, 5, 17, 32, 47}, []int{0, 1, 17, 41}
		}
		for _, op := range gemmOps {
			for _, m := range ms {
				for _, n := range ns {
					for _, k := range ks {
						runGEMMCase(t, rng, op, m, n, k, (m+n+k)%3)
					}
				}
			}
		}
	})
}

// TestGEMMLarge uses shapes larger than the real blocks in k and m and
// spanning many tiles, with odd edges in every dimension.
func TestGEMMLarge(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	shapes := [][3]int{{300, 700, 600}, {509, 37, 277}, {4, 1030, 577}, {2, 9, 1100}}
	if testing.Short() {
		shapes = shapes[1:]
	}
	for _, op := range gemmOps {
		for _, s := range shapes {
			runGEMMCase(t, rng, op, s[0], s[1], s[2], 1)
		}
	}
}

func TestGEMMNaNAndInf(t *testing.T) {
	withImpl(t, func(t *testing.T, im *gemmImpl) {
		for _, op := range gemmOps {
			for _, s := range [][3]int{{3, 5, 7}, {29, 70, 97}} {
				m, n, k := s[0], s[1], s[2]
				a := make([]float32, m*k)
				b := make([]float32, k*n)
				for i := range a {
					a[i] = 1
				}
				for i := range b {
					b[i] = 1
				}
				ni, ij, p := m-2, n-3, k/2
				a[op.aAt(m, n, k, ni, 0, p)] = float32(math.NaN())
				b[op.bAt(m, n, k, 0, ij, p+1)] = float32(math.Inf(1))
				dst := make([]float32, m*n)
				op.fast(dst, a, b, m, n, k, false)
				checkNaNInfRowCol(t, fmt.Sprintf("%s %v", op.name, s), dst, m, n, k, ni, ij)
			}
		}
	})
}

func TestGEMMPanicsOnShortBuffers(t *testing.T) {
	for _, op := range gemmOps {
		func() {
			defer func() {
				if _, ok := recover().(ShapeError); !ok {
					t.Fatalf("%s: want a ShapeError panic", op.name)
				}
			}()
			op.fast(make([]float32, 6), make([]float32, 6), make([]float32, 5), 2, 3, 2, false)
		}()
	}
}

// TestGEMMPartitionInvariant computes the same product with the block
// function over different partitions of dst (as different thread counts
// would) and wants bit-identical results, equal to the public function's.
func TestGEMMPartitionInvariant(t *testing.T) {
	withImpl(t, func(t *testing.T, im *gemmImpl) {
		rng := rand.New(rand.NewPCG(11, 12))
		for _, s := range [][3]int{{203, 171, 333}, {203, 13, 333}} {
			partitionInvariant(t, rng, im.forCols(s[1]), s[0], s[1], s[2])
		}
		// The small-m path splits the rows of w.
		n, k := 171, 333
		for mm := 1; mm <= gemvMaxM; mm++ {
			x, w := gemmRand(rng, mm*k, 0), gemmRand(rng, n*k, 0)
			want := make([]float32, mm*n)
			MatMulT(want, x, w, mm, n, k, false)
			for _, step := range []int{1, 3, 8, 64} {
				got := make([]float32, mm*n)
				for j := 0; j < n; j += step * dotStep {
					gemvRange(im, got, x, w, mm, n, k, 0, j, min(n, j+step*dotStep))
				}
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("gemv m=%d step %d: [%d] = %v, want %v", mm, step, i, got[i], want[i])
					}
				}
			}
		}
	})
}

// partitionInvariant checks one shape of each op with variant im.
func partitionInvariant(t *testing.T, rng *rand.Rand, im *gemmImpl, m, n, k int) {
	t.Helper()
	for _, op := range gemmOps {
		a, b := gemmRand(rng, m*k, 0), gemmRand(rng, k*n, 0)
		want := make([]float32, m*n)
		op.fast(want, a, b, m, n, k, false)
		g := gemmArgs{m: m, n: n, k: k, a: a, b: b, ldc: n, im: im, kc: balancedBlock(k, im.kc)}
		switch op.name {
		case "MatMulT":
			g.lda, g.ldb, g.bNMajor = k, k, true
		case "MatMul":
			g.lda, g.ldb = k, n
		case "MatMulTN":
			g.lda, g.ldb, g.aKMajor = m, n, true
		}
		bf := getGemmBuf(im, m, n, g.kc)
		for trial := 0; trial < 8; trial++ {
			// Odd trials read A in place, where the variant can.
			g.unpackA = trial%2 == 1 && im.kernelU != nil
			got := make([]float32, m*n)
			g.c = got
			// Cut rows and columns at random points, aligned to the
			// tiles or not.
			cuts := func(size int) []int {
				c := []int{0}
				for c[len(c)-1] < size {
					c = append(c, min(size, c[len(c)-1]+1+rng.IntN(size/2+1)))
				}
				return c
			}
			ri, cj := cuts(m), cuts(n)
			if trial == 0 {
				ri, cj = []int{0, m}, []int{0, n}
			}
			for x := 0; x+1 < len(ri); x++ {
				for y := 0; y+1 < len(cj); y++ {
					gemmBlock(&g, bf, ri[x], ri[x+1], cj[y], cj[y+1])
				}
			}
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%s trial %d rows %v cols %v: [%d] = %v, want %v (bit-identical)", op.name, trial, ri, cj, i, got[i], want[i])
				}
			}
		}
		putGemmBuf(bf)
	}
}

// TestGEMMKernelRows checks each partial-panel kernel against the full
// kernel: its r rows bit-identical, overwriting and accumulating, and
// nothing written to the rows below them or past the tile's columns.
func TestGEMMKernelRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	for _, im := range gemmImpls() {
		if im.kernelRows == nil {
			continue
		}
		mr, nr := im.mr, im.nr
		ldc := nr + 5
		for _, k := range []int{1, 3, 4, 5, 17, 1024} {
			a, b := gemmRand(rng, mr*k, 0), gemmRand(rng, nr*k, 0)
			c0 := gemmRand(rng, mr*ldc, 0)
			for add := 0; add <= 1; add++ {
				want := append([]float32(nil), c0...)
				im.kernel(k, &a[0], &b[0], &want[0], ldc, add)
				for r := 1; r < mr; r++ {
					got := append([]float32(nil), c0...)
					im.kernelRows[r](k, &a[0], &b[0], &got[0], ldc, add)
					for i := range got {
						w := want[i]
						if i/ldc >= r || i%ldc >= nr {
							w = c0[i]
						}
						if math.Float32bits(got[i]) != math.Float32bits(w) {
							t.Fatalf("%s rows=%d k=%d add=%d: c[%d,%d] = %v, want %v", im.name, r, k, add, i/ldc, i%ldc, got[i], w)
						}
					}
				}
			}
		}
	}
}

// TestGEMMNoAllocs: repeated calls of one size allocate nothing beyond what
// the worker pool's Parallel itself allocates per call; serial calls
// allocate nothing at all.
func TestGEMMNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	rng := rand.New(rand.NewPCG(13, 14))
	noop := func(lo, hi int) {}
	Parallel(2, 1, noop)
	parallelAllocs := testing.AllocsPerRun(20, func() { Parallel(2, 1, noop) })
	if parallelAllocs != 0 && Threads() > 1 {
		t.Errorf("Parallel allocates %v times per call, want 0", parallelAllocs)
	}
	for _, op := range gemmOps {
		for _, s := range [][3]int{{1, 64, 64}, {3, 100, 70}, {7, 30, 40}, {20, 30, 40}, {1, 4096, 256}, {256, 256, 256}, {600, 300, 400}} {
			m, n, k := s[0], s[1], s[2]
			a, b, dst := gemmRand(rng, m*k, 0), gemmRand(rng, k*n, 0), make([]float32, m*n)
			op.fast(dst, a, b, m, n, k, false)
			const runs = 20
			calls := gemmParallelCalls.Load()
			allocs := testing.AllocsPerRun(runs, func() { op.fast(dst, a, b, m, n, k, true) })
			// AllocsPerRun makes one extra warm-up call.
			perCall := float64(gemmParallelCalls.Load()-calls) / (runs + 1)
			if want := perCall * parallelAllocs; allocs > want {
				t.Errorf("%s %dx%dx%d: %v allocations per call, want ≤ %v (%v calls of Parallel)", op.name, m, n, k, allocs, want, perCall)
			}
		}
	}
}

func BenchmarkGEMM(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, op := range gemmOps {
		for _, sz := range []int{256, 512, 1024, 2048} {
			if op.name != "MatMulT" && sz == 2048 {
				continue
			}
			x, w, dst := gemmRand(rng, sz*sz, 0), gemmRand(rng, sz*sz, 0), make([]float32, sz*sz)
			b.Run(fmt.Sprintf("%s/%d", op.name, sz), func(b *testing.B) {
				for b.Loop() {
					op.fast(dst, x, w, sz, sz, sz, false)
				}
				b.ReportMetric(2*float64(sz)*float64(sz)*float64(sz)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
			})
		}
	}
	// Decode: one token against a projection; memory-bound, so GB/s of weights.
	for _, s := range [][3]int{{1, 1536, 576}, {1, 49152, 576}, {4, 1536, 576}, {8, 1536, 576}, {64, 1536, 576}} {
		m, n, k := s[0], s[1], s[2]
		x, w, dst := gemmRand(rng, m*k, 0), gemmRand(rng, n*k, 0), make([]float32, m*n)
		b.Run(fmt.Sprintf("MatMulT/%dx%dx%d", m, n, k), func(b *testing.B) {
			for b.Loop() {
				MatMulT(dst, x, w, m, n, k, false)
			}
			sec := b.Elapsed().Seconds()
			b.ReportMetric(4*float64(n)*float64(k)*float64(b.N)/sec/1e9, "GB/s")
			b.ReportMetric(2*float64(m)*float64(n)*float64(k)*float64(b.N)/sec/1e9, "GFLOPS")
		})
	}
}

// checkNaNInfRowCol checks the product of all-ones operands of depth k with a
// NaN in row ni of the left one and +Inf in column ij of the right one: row
// ni is NaN, column ij (elsewhere) +Inf, every other element k.
func checkNaNInfRowCol(t *testing.T, what string, dst []float32, m, n, k, ni, ij int) {
	t.Helper()
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			v := dst[i*n+j]
			switch {
			case i == ni:
				if !math.IsNaN(float64(v)) {
					t.Fatalf("%s: [%d,%d] = %v, want NaN", what, i, j, v)
				}
			case j == ij:
				if !math.IsInf(float64(v), 1) {
					t.Fatalf("%s: [%d,%d] = %v, want +Inf", what, i, j, v)
				}
			default:
				if v != float32(k) {
					t.Fatalf("%s: [%d,%d] = %v, want %d", what, i, j, v, k)
				}
			}
		}
	}
}
