package nf4

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/lorakit/lorakit/kernels"
)

func randNormal(rng *rand.Rand, n int, sigma float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * sigma)
	}
	return v
}

// closeTo checks got against want (float64 sums) with an error budget
// proportional to Σ|x·w| for each element: float32 rounding of a k-term sum.
func closeTo(t *testing.T, tag string, got []float32, want, mag []float64) {
	t.Helper()
	for i := range want {
		tol := 1e-5*mag[i] + 1e-30
		if d := math.Abs(float64(got[i]) - want[i]); !(d <= tol) {
			t.Fatalf("%s: [%d] = %v, want %v (|diff| %.3g > %.3g)", tag, i, got[i], want[i], d, tol)
		}
	}
}

// productRef is the float64 product with W dequantized: dst[m, n] =
// Σ_p a(i, p)·b(p, j) over k, and Σ|a·b| for the tolerance.
func productRef(m, n, k int, a, b func(i, p int) float64) (val, mag []float64) {
	val, mag = make([]float64, m*n), make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s, sa float64
			for p := 0; p < k; p++ {
				v := a(i, p) * b(p, j)
				s += v
				sa += math.Abs(v)
			}
			val[i*n+j], mag[i*n+j] = s, sa
		}
	}
	return val, mag
}

// TestMatMulKernels: the fused (m ≤ 8), tiled (larger m) and generic (rows
// not a multiple of 64) paths of every kernel variant, and the references,
// against Dequantize and a float64 product, with and without accumulation,
// writing nothing outside dst.
func TestMatMulKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	shapes := [][2]int{{1, 64}, {3, 64}, {17, 128}, {64, 192}, {5, 576}, {130, 256}, {300, 320}, {7, 63}, {9, 65}, {4, 1}, {1, 130}, {33, 100}}
	ms := []int{1, 2, 3, 4, 5, 8, 9, 17, 64}
	for si, sh := range shapes {
		rows, cols := sh[0], sh[1]
		// Every other shape without double quantization (the plain-absmax
		// kernels).
		q, err := QuantizeWith(randNormal(rng, rows*cols, 0.05), rows, cols, Options{NoDoubleQuant: si%2 == 1})
		if err != nil {
			t.Fatal(err)
		}
		wd := make([]float32, rows*cols)
		q.Dequantize(wd)
		for _, m := range ms {
			if m > 17 && rows*cols > 64*192 {
				continue
			}
			// Inputs one float past an allocation's start, so the vector
			// kernels see unaligned addresses.
			x := append([]float32{0}, randNormal(rng, m*cols, 1)...)[1:]
			dy := append([]float32{0}, randNormal(rng, m*rows, 1)...)[1:]
			x0, dy0, packed0 := append([]float32(nil), x...), append([]float32(nil), dy...), append([]byte(nil), q.Packed...)
			fwd, fmag := productRef(m, rows, cols, func(i, p int) float64 { return float64(x[i*cols+p]) }, func(p, j int) float64 { return float64(wd[j*cols+p]) })
			bwd, bmag := productRef(m, cols, rows, func(i, p int) float64 { return float64(dy[i*rows+p]) }, func(p, j int) float64 { return float64(wd[p*cols+j]) })
			init := randNormal(rng, m*max(rows, cols), 1)
			for _, acc := range []bool{false, true} {
				type variant struct {
					name string
					fwd  func(dst []float32)
					bwd  func(dst []float32)
				}
				vs := []variant{{"ref",
					func(d []float32) { MatMulTRef(d, x, q, m, acc) },
					func(d []float32) { MatMulRef(d, dy, q, m, acc) }}}
				for _, ks := range kernelSets() {
					vs = append(vs, variant{ks.name,
						func(d []float32) { matMulT(ks, d, x, q, m, acc, false) },
						func(d []float32) { matMul(ks, d, dy, q, m, acc, false) }})
				}
				for _, v := range vs {
					for _, dir := range []struct {
						name string
						n    int
						run  func([]float32)
						want []float64
						mag  []float64
					}{{"MatMulT", rows, v.fwd, fwd, fmag}, {"MatMul", cols, v.bwd, bwd, bmag}} {
						tag := fmt.Sprintf("%s %s W[%d,%d] dq=%v m=%d acc=%v", v.name, dir.name, rows, cols, q.DoubleQuant(), m, acc)
						n := m * dir.n
						dst := make([]float32, n+6)[1:]
						copy(dst, init[:n])
						for i := n; i < len(dst); i++ {
							dst[i] = 12345
						}
						dir.run(dst)
						want := dir.want
						if acc {
							want = make([]float64, n)
							for i := range want {
								want[i] = dir.want[i] + float64(init[i])
							}
						}
						mag := make([]float64, n)
						for i := range mag {
							mag[i] = dir.mag[i] + math.Abs(float64(init[i]))
						}
						closeTo(t, tag, dst[:n], want, mag)
						for i := n; i < len(dst); i++ {
							if dst[i] != 12345 {
								t.Fatalf("%s: wrote dst[%d] past the result", tag, i)
							}
						}
						for i := range x {
							if math.Float32bits(x[i]) != math.Float32bits(x0[i]) {
								t.Fatalf("%s: changed x[%d]", tag, i)
							}
						}
						for i := range dy {
							if math.Float32bits(dy[i]) != math.Float32bits(dy0[i]) {
								t.Fatalf("%s: changed dy[%d]", tag, i)
							}
						}
						if string(q.Packed) != string(packed0) {
							t.Fatalf("%s: changed the packed codes", tag)
						}
					}
				}
			}
		}
	}
}

// TestMatMulRepeatable: repeated calls give bit-identical results (the
// threads split outputs only, so the order of every sum is fixed).
func TestMatMulRepeatable(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	rows, cols := 512, 256
	q, _ := Quantize(randNormal(rng, rows*cols, 0.05), rows, cols)
	for _, m := range []int{1, 3, 64} {
		x := randNormal(rng, m*cols, 1)
		dy := randNormal(rng, m*rows, 1)
		a, b := make([]float32, m*rows), make([]float32, m*rows)
		c, d := make([]float32, m*cols), make([]float32, m*cols)
		MatMulT(a, x, q, m, false)
		MatMul(c, dy, q, m, false)
		threads := kernels.Threads()
		for i := 0; i < 3; i++ {
			MatMulT(b, x, q, m, false)
			MatMul(d, dy, q, m, false)
			for j := range a {
				if a[j] != b[j] {
					t.Fatalf("MatMulT m=%d (threads %d) differs between runs at %d", m, threads, j)
				}
			}
			for j := range c {
				if c[j] != d[j] {
					t.Fatalf("MatMul m=%d differs between runs at %d", m, j)
				}
			}
		}
	}
}

func TestMatMulShapePanics(t *testing.T) {
	q, _ := Quantize(make([]float32, 128), 2, 64)
	defer func() {
		if r := recover(); r == nil {
			t.Fatal("short dst did not panic")
		} else if _, ok := r.(kernels.ShapeError); !ok {
			t.Fatalf("panic %v is not a kernels.ShapeError", r)
		}
	}()
	MatMulT(make([]float32, 1), make([]float32, 64), q, 1, false)
}

// TestMatMulTMany: several weights sharing x give bit for bit what MatMulT
// gives each, in the one-loop decode path and in the fallbacks (more rows
// than fusedMaxM, rows not a multiple of 64), writing nothing outside dst.
func TestMatMulTMany(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	for _, c := range []struct {
		rows []int
		cols int
	}{{[]int{576, 192, 192}, 576}, {[]int{17, 100, 1}, 128}, {[]int{33}, 64}, {[]int{40, 8}, 100}} {
		var ws []*Tensor
		for _, r := range c.rows {
			q, err := QuantizeWith(randNormal(rng, r*c.cols, 0.05), r, c.cols, Options{NoDoubleQuant: r%2 == 1})
			if err != nil {
				t.Fatal(err)
			}
			ws = append(ws, q)
		}
		for _, m := range []int{1, 2, 4, 5, 8, 9} {
			x := randNormal(rng, m*c.cols, 1)
			var dsts [][]float32
			for _, w := range ws {
				d := make([]float32, m*w.Rows+2)
				d[m*w.Rows], d[m*w.Rows+1] = 777, 777
				dsts = append(dsts, d)
			}
			views := make([][]float32, len(dsts))
			for i, d := range dsts {
				views[i] = d[:m*ws[i].Rows]
			}
			MatMulTMany(views, x, ws, m)
			for i, w := range ws {
				want := make([]float32, m*w.Rows)
				MatMulT(want, x, w, m, false)
				for j := range want {
					if math.Float32bits(want[j]) != math.Float32bits(dsts[i][j]) {
						t.Fatalf("rows %v cols %d m=%d: weight %d [%d] = %v, MatMulT gives %v", c.rows, c.cols, m, i, j, dsts[i][j], want[j])
					}
				}
				if dsts[i][m*w.Rows] != 777 || dsts[i][m*w.Rows+1] != 777 {
					t.Fatalf("rows %v m=%d: weight %d written past dst", c.rows, m, i)
				}
			}
		}
	}
}
