package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/lorakit/lorakit/tensor"
)

// op16 is one of the four 16-bit products under test.
type op16 struct {
	name      string
	kind      half16
	fast, ref func(dst, x []float32, w []uint16, m, n, k int, accumulate bool)
	like      gemmOp // the float32 product with the same layouts
}

var ops16 = []op16{
	{"MatMulTBF16", halfBF16, MatMulTBF16, MatMulTBF16Ref, gemmOps[0]},
	{"MatMulTF16", halfF16, MatMulTF16, MatMulTF16Ref, gemmOps[0]},
	{"MatMulBF16", halfBF16, MatMulBF16, MatMulBF16Ref, gemmOps[1]},
	{"MatMulF16", halfF16, MatMulF16, MatMulF16Ref, gemmOps[1]},
}

// to16 rounds v to the format (nearest even).
func to16(kind half16, v float32) uint16 {
	if kind == halfBF16 {
		return tensor.F32ToBF16(v)
	}
	return tensor.F32ToF16(v)
}

func from16(kind half16, h uint16) float32 {
	if kind == halfBF16 {
		return tensor.BF16ToF32(h)
	}
	return tensor.F16ToF32(h)
}

// rand16 returns n random 16-bit values after off unused ones.
func rand16(rng *rand.Rand, kind half16, n, off int) []uint16 {
	v := make([]uint16, n+off)
	for i := range v {
		v[i] = to16(kind, float32(rng.NormFloat64()))
	}
	return v[off:]
}

func widenAll(kind half16, w []uint16) []float32 {
	f := make([]float32, len(w))
	widenGo(kind, f, w)
	return f
}

// with16Paths runs f with the assembly 16-bit kernels (where this build has
// them) and with the portable path, under each float32 variant of withImpl.
func with16Paths(t *testing.T, f func(t *testing.T)) {
	saved := use16Asm
	defer func() { use16Asm = saved }()
	withImpl(t, func(t *testing.T, im *gemmImpl) {
		for _, asm := range []bool{true, false} {
			if asm && dot16Max[halfBF16] == 0 {
				continue
			}
			use16Asm = asm
			t.Run(fmt.Sprintf("asm=%v", asm), f)
		}
	})
}

// run16Case checks one shape: the fast product over guard slots and inputs
// at an unaligned offset, overwriting and accumulating, against a float64
// product of the widened weight (within twice the worst-case float32
// summation error), and the reference the same way.
func run16Case(t *testing.T, rng *rand.Rand, op op16, m, n, k, off int) {
	t.Helper()
	x := gemmRand(rng, m*k, off)
	w := rand16(rng, op.kind, k*n, off)
	wf := widenAll(op.kind, w)
	const g = 19
	buf := gemmRand(rng, m*n+2*g, 0)
	guardVals := append([]float32(nil), buf...)
	dst := buf[g : g+m*n]
	dst0 := append([]float32(nil), dst...)
	like := op.like
	like.name = op.name
	for _, accumulate := range []bool{false, true} {
		copy(dst, dst0)
		op.fast(dst, x, w, m, n, k, accumulate)
		for i := 0; i < g; i++ {
			if buf[i] != guardVals[i] || buf[g+m*n+i] != guardVals[g+m*n+i] {
				t.Fatalf("%s m=%d n=%d k=%d: write outside dst (guard %d)", op.name, m, n, k, i)
			}
		}
		checkGEMM(t, like, dst, dst0, x, wf, m, n, k, accumulate)
		ref := append([]float32(nil), dst0...)
		op.ref(ref, x, w, m, n, k, accumulate)
		like.name = op.name + "Ref"
		checkGEMM(t, like, ref, dst0, x, wf, m, n, k, accumulate)
		like.name = op.name
	}
}

func TestMatMul16AgainstRef(t *testing.T) {
	with16Paths(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(16, 17))
		ms := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 17, 33, 65}
		ns := []int{0, 1, 2, 3, 4, 5, 7, 13, 16, 17, 31, 32, 33, 47, 67}
		ks := []int{0, 1, 3, 15, 16, 17, 31, 33, 64, 101}
		if testing.Short() {
			ms, ns, ks = []int{0, 1, 3, 8, 9, 33}, []int{0, 1, 5, 17, 47}, []int{0, 1, 17, 101}
		}
		for _, op := range ops16 {
			for _, m := range ms {
				for _, n := range ns {
					for _, k := range ks {
						run16Case(t, rng, op, m, n, k, (m+n+k)%3)
					}
				}
			}
		}
	})
}

// TestMatMul16Large uses shapes past the real blocks, with odd edges.
func TestMatMul16Large(t *testing.T) {
	rng := rand.New(rand.NewPCG(18, 19))
	shapes := [][3]int{{300, 700, 600}, {129, 37, 1100}, {4, 1030, 577}, {1, 4099, 1536}, {8, 61, 2053}}
	if testing.Short() {
		shapes = shapes[1:]
	}
	for _, op := range ops16 {
		for _, s := range shapes {
			run16Case(t, rng, op, s[0], s[1], s[2], 1)
		}
	}
}

// TestMatMul16EqualsWidened: the 16-bit products are the float32 products of
// the widened weight. The small-m assembly kernels sum in the same order as
// the float32 ones, so MatMulT's results are bit-identical; the packed GEMM
// packs the same panels, so MatMul's and large-m MatMulT's are too.
func TestMatMul16EqualsWidened(t *testing.T) {
	with16Paths(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(20, 21))
		for _, op := range ops16 {
			for _, s := range [][3]int{{1, 67, 131}, {3, 33, 16}, {8, 9, 47}, {9, 70, 99}, {40, 31, 257}} {
				m, n, k := s[0], s[1], s[2]
				x, w := gemmRand(rng, m*k, 0), rand16(rng, op.kind, n*k, 0)
				got, want := make([]float32, m*n), make([]float32, m*n)
				op.fast(got, x, w, m, n, k, false)
				op.like.fast(want, x, widenAll(op.kind, w), m, n, k, false)
				if m <= gemvMaxM && op.like.name == "MatMulT" && use16Asm && !strings.HasPrefix(impl.name, "avx512") {
					continue // 16-lane kernels against another variant's float32 ones
				}
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%s %v: [%d] = %v, float32 product %v", op.name, s, i, got[i], want[i])
					}
				}
			}
		}
	})
}

func TestMatMul16NaNAndInf(t *testing.T) {
	with16Paths(t, func(t *testing.T) {
		for _, op := range ops16 {
			for _, s := range [][3]int{{1, 5, 7}, {3, 5, 40}, {29, 70, 97}} {
				m, n, k := s[0], s[1], s[2]
				x := make([]float32, m*k)
				w := make([]uint16, k*n)
				for i := range x {
					x[i] = 1
				}
				for i := range w {
					w[i] = to16(op.kind, 1)
				}
				ni, ij, p := m-1, n-3, k/2
				x[ni*k+p] = float32(math.NaN())
				at := op.like.bAt(m, n, k, 0, ij, p+1)
				w[at] = to16(op.kind, float32(math.Inf(1)))
				dst := make([]float32, m*n)
				op.fast(dst, x, w, m, n, k, false)
				checkNaNInfRowCol(t, fmt.Sprintf("%s %v", op.name, s), dst, m, n, k, ni, ij)
				// A NaN weight poisons its column.
				w[at] = 0x7fc1
				if op.kind == halfF16 {
					w[at] = 0x7e01
				}
				x[ni*k+p] = 1
				op.fast(dst, x, w, m, n, k, false)
				for i := 0; i < m; i++ {
					if v := dst[i*n+ij]; !math.IsNaN(float64(v)) {
						t.Fatalf("%s %v: [%d,%d] = %v with a NaN weight, want NaN", op.name, s, i, ij, v)
					}
				}
			}
		}
	})
}

// special16 lists values of each format the kernels must widen exactly:
// zeros, subnormals, the extremes, infinities and NaNs.
var special16 = map[half16][]uint16{
	halfBF16: {0x0000, 0x8000, 0x0001, 0x8001, 0x007f, 0x0080, 0x3f80, 0xbf80, 0x7f7f, 0xff7f, 0x7f80, 0xff80, 0x7fc0, 0xffc1, 0x7f81},
	halfF16:  {0x0000, 0x8000, 0x0001, 0x8001, 0x03ff, 0x0400, 0x3c00, 0xbc00, 0x7bff, 0xfbff, 0x7c00, 0xfc00, 0x7e00, 0xfe01, 0x7c01},
}

// TestMatMul16SpecialValues multiplies each special weight by powers of two
// chosen so that every finite product is exact, one product per dot.
func TestMatMul16SpecialValues(t *testing.T) {
	with16Paths(t, func(t *testing.T) {
		for _, op := range ops16 {
			vals := special16[op.kind]
			for _, m := range []int{1, 2, 5, 8, 11} {
				n, k := len(vals), 21
				x := make([]float32, m*k)
				scale := []float32{1, 0.5, 1024, float32(math.Ldexp(1, 100)), -2}
				for i := 0; i < m; i++ {
					x[i*k+7] = scale[i%len(scale)]
				}
				w := make([]uint16, k*n)
				for j, v := range vals {
					w[op.like.bAt(m, n, k, 0, j, 7)] = v
				}
				dst := make([]float32, m*n)
				op.fast(dst, x, w, m, n, k, false)
				for i := 0; i < m; i++ {
					for j, v := range vals {
						want := float64(x[i*k+7]) * float64(from16(op.kind, v))
						got := float64(dst[i*n+j])
						if math.IsNaN(want) {
							if !math.IsNaN(got) {
								t.Fatalf("%s m=%d: %#04x·%v = %v, want NaN", op.name, m, v, x[i*k+7], got)
							}
							continue
						}
						// The other products are +0, so a -0 product sums to +0.
						if want == 0 {
							want = 0
						}
						if got != float64(float32(want)) || math.Signbit(got) != math.Signbit(float64(float32(want))) {
							t.Fatalf("%s m=%d: %#04x·%v = %v, want %v", op.name, m, v, x[i*k+7], got, float32(want))
						}
					}
				}
			}
		}
	})
}

// TestWiden16 widens every 16-bit value with each path, at every alignment
// of length and offset, against the scalar conversions of package tensor
// (NaNs need only stay NaNs: VCVTPH2PS quiets signalling ones).
func TestWiden16(t *testing.T) {
	saved := use16Asm
	defer func() { use16Asm = saved }()
	all := make([]uint16, 1<<16)
	for i := range all {
		all[i] = uint16(i)
	}
	for _, kind := range []half16{halfBF16, halfF16} {
		for _, asm := range []bool{true, false} {
			use16Asm = asm
			for _, s := range [][2]int{{0, 1 << 16}, {3, 1<<16 - 3}, {5, 0}, {1, 1}, {7, 15}, {9, 16}, {11, 17}, {2, 63}, {13, 64}, {17, 65}, {1, 100}} {
				off, n := s[0], s[1]
				buf, dst := guarded(n)
				src := all[off : off+n]
				widen16(kind, dst, src)
				checkGuards(t, buf, n)
				for i, h := range src {
					want := from16(kind, h)
					got := dst[i]
					if math.IsNaN(float64(want)) {
						if !math.IsNaN(float64(got)) || math.Signbit(float64(got)) != math.Signbit(float64(want)) {
							t.Fatalf("kind %d asm %v: widen(%#04x) = %v, want NaN", kind, asm, h, got)
						}
						continue
					}
					if math.Float32bits(got) != math.Float32bits(want) {
						t.Fatalf("kind %d asm %v: widen(%#04x) = %v, want %v", kind, asm, h, got, want)
					}
				}
			}
		}
	}
}

// TestGEMV16PartitionInvariant: any split of the rows of w gives the
// bit-identical result of the public function.
func TestGEMV16PartitionInvariant(t *testing.T) {
	with16Paths(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(22, 23))
		n, k := 171, 333
		for _, kind := range []half16{halfBF16, halfF16} {
			for mm := 1; mm <= gemvMaxM; mm++ {
				x, w := gemmRand(rng, mm*k, 0), rand16(rng, kind, n*k, 0)
				want := make([]float32, mm*n)
				matMulT16(kind, want, x, w, mm, n, k, false)
				for _, step := range []int{1, 3, 8, 64} {
					got := make([]float32, mm*n)
					for j := 0; j < n; j += step * dotStep {
						gemv16Range(kind, got, x, w, mm, n, k, 0, j, min(n, j+step*dotStep))
					}
					for i := range want {
						if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
							t.Fatalf("kind %d m=%d step %d: [%d] = %v, want %v", kind, mm, step, i, got[i], want[i])
						}
					}
				}
			}
		}
	})
}

func TestMatMul16PanicsOnShortBuffers(t *testing.T) {
	for _, op := range ops16 {
		for _, f := range []func(dst, x []float32, w []uint16, m, n, k int, accumulate bool){op.fast, op.ref} {
			func() {
				defer func() {
					if _, ok := recover().(ShapeError); !ok {
						t.Fatalf("%s: want a ShapeError panic", op.name)
					}
				}()
				f(make([]float32, 6), make([]float32, 6), make([]uint16, 5), 2, 3, 2, false)
			}()
		}
	}
}

// TestMatMul16NoAllocs: repeated calls allocate nothing beyond Parallel's own.
func TestMatMul16NoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	rng := rand.New(rand.NewPCG(24, 25))
	noop := func(lo, hi int) {}
	Parallel(2, 1, noop)
	parallelAllocs := testing.AllocsPerRun(20, func() { Parallel(2, 1, noop) })
	for _, op := range ops16 {
		for _, s := range [][3]int{{1, 64, 64}, {3, 100, 70}, {1, 4096, 256}, {20, 30, 40}, {256, 256, 256}} {
			m, n, k := s[0], s[1], s[2]
			x, w, dst := gemmRand(rng, m*k, 0), rand16(rng, op.kind, k*n, 0), make([]float32, m*n)
			op.fast(dst, x, w, m, n, k, false)
			const runs = 20
			calls := gemmParallelCalls.Load()
			allocs := testing.AllocsPerRun(runs, func() { op.fast(dst, x, w, m, n, k, true) })
			perCall := float64(gemmParallelCalls.Load()-calls) / (runs + 1)
			if want := perCall * parallelAllocs; allocs > want {
				t.Errorf("%s %dx%dx%d: %v allocations per call, want ≤ %v", op.name, m, n, k, allocs, want)
			}
		}
	}
}

// BenchmarkGEMVStream16 is BenchmarkGEMVStream with the weights in BF16 and
// F16: SmolLM2-135M's projections and tied head, m = 1, every weight from
// memory. GB/s counts the 16-bit bytes read.
func BenchmarkGEMVStream16(b *testing.B) {
	for _, kind := range []half16{halfBF16, halfF16} {
		type mat struct {
			w    []uint16
			n, k int
		}
		rng := rand.New(rand.NewPCG(1, 2))
		var mats []mat
		shapes := [][2]int{{576, 576}, {192, 576}, {192, 576}, {576, 576}, {1536, 576}, {1536, 576}, {576, 1536}}
		bytes := 0
		for l := 0; l < 30; l++ {
			for _, s := range shapes {
				mats = append(mats, mat{rand16(rng, kind, s[0]*s[1], 0), s[0], s[1]})
				bytes += 2 * s[0] * s[1]
			}
		}
		mats = append(mats, mat{rand16(rng, kind, 49152*576, 0), 49152, 576})
		bytes += 2 * 49152 * 576
		x := randSlice(rng, 1536)
		dst := make([]float32, 49152)
		name := map[half16]string{halfBF16: "BF16", halfF16: "F16"}[kind]
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				for _, m := range mats {
					matMulT16(kind, dst[:m.n], x[:m.k], m.w, 1, m.n, m.k, false)
				}
			}
			b.ReportMetric(float64(bytes)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tok/s")
		})
	}
}

// BenchmarkMatMul16 times prefill-sized products (m = 128 tokens) and the
// backward dX = dY·W against their float32 counterparts.
func BenchmarkMatMul16(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, s := range [][3]int{{128, 1536, 576}, {128, 576, 1536}, {4, 1536, 576}} {
		m, n, k := s[0], s[1], s[2]
		x, dst := gemmRand(rng, m*k, 0), make([]float32, m*n)
		wf := gemmRand(rng, n*k, 0)
		w16 := make([]uint16, n*k)
		for i, v := range wf {
			w16[i] = tensor.F32ToBF16(v)
		}
		flops := 2 * float64(m) * float64(n) * float64(k)
		for _, c := range []struct {
			name string
			f    func()
		}{
			{"MatMulT/F32", func() { MatMulT(dst, x, wf, m, n, k, false) }},
			{"MatMulT/BF16", func() { MatMulTBF16(dst, x, w16, m, n, k, false) }},
			{"MatMulT/F16", func() { MatMulTF16(dst, x, w16, m, n, k, false) }},
			{"MatMul/F32", func() { MatMul(dst, x, wf, m, n, k, false) }},
			{"MatMul/BF16", func() { MatMulBF16(dst, x, w16, m, n, k, false) }},
		} {
			b.Run(fmt.Sprintf("%s/%dx%dx%d", c.name, m, n, k), func(b *testing.B) {
				for b.Loop() {
					c.f()
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
			})
		}
	}
}
