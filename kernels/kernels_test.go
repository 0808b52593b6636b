package kernels

import (
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
)

func randSlice(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

const guard = 7 // guard slots on each side of an output

// guarded returns a buffer of n+2·guard with sentinels around the middle n.
func guarded(n int) (buf, mid []float32) {
	buf = make([]float32, n+2*guard)
	for i := range buf {
		buf[i] = 12345
	}
	return buf, buf[guard : guard+n]
}

func checkGuards(t *testing.T, buf []float32, n int) {
	t.Helper()
	for i := 0; i < guard; i++ {
		if buf[i] != 12345 || buf[guard+n+i] != 12345 {
			t.Fatalf("write outside the output (guard slot %d)", i)
		}
	}
}

func close32(a, b float32, tol float64) bool {
	if math.IsNaN(float64(a)) || math.IsNaN(float64(b)) {
		return math.IsNaN(float64(a)) && math.IsNaN(float64(b))
	}
	return math.Abs(float64(a-b)) <= tol*(1+math.Abs(float64(b)))
}

// TestMatMulTAgainstRef compares the blocked parallel kernel with the
// reference over sizes 0..9 and a few odd and prime sizes, with unaligned
// offsets of the inputs and guard slots around the output.
func TestMatMulTAgainstRef(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{0, 1, 2, 3, 4, 5, 7, 8, 9, 13, 17, 31, 64, 67}
	for _, m := range sizes {
		for _, n := range sizes {
			for _, k := range []int{0, 1, 3, 16, 29, 70} {
				for _, off := range []int{0, 1, 3} {
					x := randSlice(rng, m*k+off)[off:]
					w := randSlice(rng, n*k+off)[off:]
					want := make([]float32, m*n)
					MatMulTRef(want, x, w, m, n, k, false)
					buf, got := guarded(m * n)
					MatMulT(got, x, w, m, n, k, false)
					checkGuards(t, buf, m*n)
					for i := range want {
						if !close32(got[i], want[i], 1e-5*float64(k+1)) {
							t.Fatalf("m=%d n=%d k=%d off=%d: [%d] = %v, want %v", m, n, k, off, i, got[i], want[i])
						}
					}
					// Accumulate adds onto what is there.
					MatMulT(got, x, w, m, n, k, true)
					for i := range want {
						if !close32(got[i], 2*want[i], 1e-5*float64(k+1)) {
							t.Fatalf("accumulate m=%d n=%d k=%d: [%d] = %v, want %v", m, n, k, i, got[i], 2*want[i])
						}
					}
				}
			}
		}
	}
}

func TestMatMulTPropagatesNaNAndInf(t *testing.T) {
	m, n, k := 5, 6, 7
	x := make([]float32, m*k)
	w := make([]float32, n*k)
	for i := range x {
		x[i] = 1
	}
	for i := range w {
		w[i] = 1
	}
	x[2*k+3] = float32(math.NaN())
	w[4*k+1] = float32(math.Inf(1))
	got := make([]float32, m*n)
	MatMulT(got, x, w, m, n, k, false)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			v := got[i*n+j]
			switch {
			case i == 2:
				if !math.IsNaN(float64(v)) {
					t.Fatalf("[%d,%d] = %v, want NaN", i, j, v)
				}
			case j == 4:
				if !math.IsInf(float64(v), 1) {
					t.Fatalf("[%d,%d] = %v, want +Inf", i, j, v)
				}
			default:
				if v != float32(k) {
					t.Fatalf("[%d,%d] = %v, want %d", i, j, v, k)
				}
			}
		}
	}
}

func TestMatMulTPanicsOnShortBuffers(t *testing.T) {
	defer func() {
		if _, ok := recover().(ShapeError); !ok {
			t.Fatal("want a ShapeError panic")
		}
	}()
	MatMulT(make([]float32, 3), make([]float32, 4), make([]float32, 4), 2, 2, 2, false)
}

// TestRMSNorm checks against the definition in float64.
func TestRMSNorm(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	rows, d := 3, 37
	x, g := randSlice(rng, rows*d), randSlice(rng, d)
	buf, dst := guarded(rows * d)
	rstd := make([]float32, rows)
	RMSNorm(dst, rstd, x, g, rows, d, 1e-5)
	checkGuards(t, buf, rows*d)
	for r := 0; r < rows; r++ {
		var ss float64
		for i := 0; i < d; i++ {
			ss += float64(x[r*d+i]) * float64(x[r*d+i])
		}
		s := 1 / math.Sqrt(ss/float64(d)+1e-5)
		if !close32(rstd[r], float32(s), 1e-6) {
			t.Fatalf("rstd[%d] = %v, want %v", r, rstd[r], s)
		}
		for i := 0; i < d; i++ {
			want := float64(g[i]) * float64(x[r*d+i]) * s
			if !close32(dst[r*d+i], float32(want), 1e-6) {
				t.Fatalf("[%d,%d] = %v, want %v", r, i, dst[r*d+i], want)
			}
		}
	}
}

// TestRopeRoundTrip: the backward rotation undoes the forward one, and
// position 0 is the identity.
func TestRopeRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	heads, d := 3, 8
	inv := []float32{1, 0.1, 0.01, 0.001}
	tab := NewRopeTable(inv, 10)
	pos := []int{0, 3, 9}
	x := randSlice(rng, len(pos)*heads*d)
	y := append([]float32(nil), x...)
	RopeForward(y, pos, heads, d, tab)
	for i := 0; i < heads*d; i++ {
		if y[i] != x[i] {
			t.Fatalf("position 0 changed element %d", i)
		}
	}
	RopeBackward(y, pos, heads, d, tab)
	for i := range x {
		if !close32(y[i], x[i], 1e-6) {
			t.Fatalf("[%d] = %v, want %v", i, y[i], x[i])
		}
	}
}

// TestAttentionAgainstNaive compares with a direct float64 evaluation of
// causal GQA attention, including a cached prefix (pos0 > 0) and a window.
func TestAttentionAgainstNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, s := range []AttentionShape{
		{NQ: 5, Pos0: 0, Heads: 4, KVHeads: 2, HeadDim: 6},
		{NQ: 1, Pos0: 9, Heads: 4, KVHeads: 1, HeadDim: 4},
		{NQ: 3, Pos0: 4, Heads: 2, KVHeads: 2, HeadDim: 8, Window: 3},
	} {
		nk := s.Pos0 + s.NQ
		q := randSlice(rng, s.NQ*s.Heads*s.HeadDim)
		k := randSlice(rng, nk*s.KVHeads*s.HeadDim)
		v := randSlice(rng, nk*s.KVHeads*s.HeadDim)
		out := make([]float32, len(q))
		probs := make([]float32, s.Heads*s.NQ*nk)
		Attention(out, q, k, v, s, probs)
		d := s.HeadDim
		for h := 0; h < s.Heads; h++ {
			g := h / (s.Heads / s.KVHeads)
			for i := 0; i < s.NQ; i++ {
				p := s.Pos0 + i
				w := make([]float64, nk)
				var sum float64
				for t2 := 0; t2 <= p; t2++ {
					if s.Window > 0 && p-t2 >= s.Window {
						continue
					}
					var dot float64
					for j := 0; j < d; j++ {
						dot += float64(q[(i*s.Heads+h)*d+j]) * float64(k[(t2*s.KVHeads+g)*d+j])
					}
					w[t2] = math.Exp(dot / math.Sqrt(float64(d)))
					sum += w[t2]
				}
				for j := 0; j < d; j++ {
					var o float64
					for t2 := range w {
						o += w[t2] / sum * float64(v[(t2*s.KVHeads+g)*d+j])
					}
					if !close32(out[(i*s.Heads+h)*d+j], float32(o), 1e-5) {
						t.Fatalf("%+v h=%d i=%d j=%d: %v, want %v", s, h, i, j, out[(i*s.Heads+h)*d+j], o)
					}
				}
				for t2 := range w {
					if !close32(probs[(h*s.NQ+i)*nk+t2], float32(w[t2]/sum), 1e-5) {
						t.Fatalf("%+v probs h=%d i=%d t=%d", s, h, i, t2)
					}
				}
			}
		}
	}
}

func TestSoftmaxAllMasked(t *testing.T) {
	x := []float32{float32(math.Inf(-1)), float32(math.Inf(-1))}
	Softmax(x)
	if x[0] != 0 || x[1] != 0 {
		t.Fatalf("%v", x)
	}
}

func BenchmarkMatMulT(b *testing.B) {
	for _, sz := range []struct{ m, n, k int }{{1, 768, 256}, {128, 768, 256}, {256, 1024, 1024}} {
		rng := rand.New(rand.NewPCG(1, 1))
		x, w := randSlice(rng, sz.m*sz.k), randSlice(rng, sz.n*sz.k)
		dst := make([]float32, sz.m*sz.n)
		b.Run("", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				MatMulT(dst, x, w, sz.m, sz.n, sz.k, false)
			}
			b.ReportMetric(float64(2*sz.m*sz.n*sz.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
		})
	}
}

// TestAttentionGEMMMatchesRef: the head-by-head matrix-product paths against
// the one-key-at-a-time references, forward and backward.
func TestAttentionGEMMMatchesRef(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, s := range []AttentionShape{
		{NQ: 13, Pos0: 0, Heads: 4, KVHeads: 2, HeadDim: 8},
		{NQ: 9, Pos0: 6, Heads: 6, KVHeads: 3, HeadDim: 4},
		{NQ: 17, Pos0: 0, Heads: 2, KVHeads: 1, HeadDim: 6, Window: 5},
	} {
		nk := s.Pos0 + s.NQ
		q := randSlice(rng, s.NQ*s.Heads*s.HeadDim)
		k := randSlice(rng, nk*s.KVHeads*s.HeadDim)
		v := randSlice(rng, nk*s.KVHeads*s.HeadDim)
		want, got := make([]float32, len(q)), make([]float32, len(q))
		pw, pg := make([]float32, s.Heads*s.NQ*nk), make([]float32, s.Heads*s.NQ*nk)
		AttentionRef(want, q, k, v, s, pw)
		Attention(got, q, k, v, s, pg)
		for i := range want {
			if !close32(got[i], want[i], 1e-5) {
				t.Fatalf("%+v forward [%d]: %v, want %v", s, i, got[i], want[i])
			}
		}
		for i := range pw {
			if !close32(pg[i], pw[i], 1e-5) {
				t.Fatalf("%+v probs [%d]: %v, want %v", s, i, pg[i], pw[i])
			}
		}
		if s.Pos0 != 0 {
			continue // the backward is for training shapes
		}
		dout := randSlice(rng, len(q))
		dqW, dqG := make([]float32, len(q)), make([]float32, len(q))
		dkW, dkG := make([]float32, len(k)), make([]float32, len(k))
		dvW, dvG := make([]float32, len(v)), make([]float32, len(v))
		AttentionBackwardRef(dqW, dkW, dvW, dout, q, k, v, pw, s)
		AttentionBackward(dqG, dkG, dvG, dout, q, k, v, pw, s)
		for _, c := range []struct {
			name      string
			got, want []float32
		}{{"dq", dqG, dqW}, {"dk", dkG, dkW}, {"dv", dvG, dvW}} {
			for i := range c.want {
				if !close32(c.got[i], c.want[i], 1e-4) {
					t.Fatalf("%+v %s[%d]: %v, want %v", s, c.name, i, c.got[i], c.want[i])
				}
			}
		}
	}
}

// TestExp32 compares with math.Exp over the whole float32 range that does not
// overflow or underflow, plus the edges.
func TestExp32(t *testing.T) {
	worst := 0.0
	for x := float32(-87); x < 88.7; x += 0.0037 {
		want := math.Exp(float64(x))
		got := float64(Exp32(x))
		if rel := math.Abs(got-want) / want; rel > worst {
			worst = rel
		}
	}
	if worst > 3e-7 {
		t.Fatalf("max relative error %.3g", worst)
	}
	if Exp32(-100) != 0 || !math.IsInf(float64(Exp32(100)), 1) || !math.IsNaN(float64(Exp32(float32(math.NaN())))) || Exp32(0) != 1 {
		t.Fatal("edge cases")
	}
	if Exp32(float32(math.Inf(-1))) != 0 {
		t.Fatal("exp(-Inf) must be 0")
	}
}

func BenchmarkExp32(b *testing.B) {
	x := make([]float32, 4096)
	for i := range x {
		x[i] = float32(i%200) - 100
	}
	var s float32
	for i := 0; i < b.N; i++ {
		for _, v := range x {
			s += Exp32(v)
		}
	}
	_ = s
}

func BenchmarkMathExp(b *testing.B) {
	x := make([]float32, 4096)
	for i := range x {
		x[i] = float32(i%200) - 100
	}
	var s float32
	for i := 0; i < b.N; i++ {
		for _, v := range x {
			s += float32(math.Exp(float64(v)))
		}
	}
	_ = s
}

// TestParallelNested: Parallel calls nested inside each other's chunks, many
// levels deep and from several goroutines at once, finish and cover every
// index exactly once (a waiting caller helps instead of blocking the pool).
func TestParallelNested(t *testing.T) {
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var count [64]atomic.Int32
			Parallel(8, 1, func(lo, hi int) {
				for i := lo; i < hi; i++ {
					Parallel(8, 1, func(lo2, hi2 int) {
						for j := lo2; j < hi2; j++ {
							count[i*8+j].Add(1)
						}
					})
				}
			})
			for i := range count {
				if count[i].Load() != 1 {
					t.Errorf("index %d ran %d times", i, count[i].Load())
				}
			}
		}()
	}
	wg.Wait()
}
