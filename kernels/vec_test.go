package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The vector element-wise kernels against their scalar loops, over lengths
// that exercise the 16-lane body and the tails, and the special values.
func TestVecKernelsMatchScalar(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	specials := []float32{0, float32(math.Copysign(0, -1)), 1e-30, -1e-30, 88.7, 88.73, 89, 100, -87.3, -87.4, -103, -104, -200,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), math.MaxFloat32, -math.MaxFloat32}
	for _, n := range []int{0, 1, 15, 16, 17, 31, 32, 33, 100, 257} {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64() * 20)
			if i < len(specials) && n > 20 {
				x[i] = specials[i]
			}
		}
		// expScaleSum against Exp32: about 1 ulp apart (FMA vs separate
		// rounding); the flush-to-zero region of Exp32 may give subnormals.
		got := append([]float32(nil), x...)
		sum := expScaleSum(got, 0.5, -1)
		var want float64
		for i, v := range x {
			w := Exp32(v*0.5 + 1)
			want += float64(w)
			if !closeULP(got[i], w, 4) {
				t.Fatalf("n=%d exp(%g·0.5+1) = %g, want %g", n, v, got[i], w)
			}
		}
		if !closeRel(float64(sum), want, 1e-5) {
			t.Fatalf("n=%d sum %g, want %g", n, sum, want)
		}
		// swiGLU against SiLU(g)·u.
		up := make([]float32, n)
		for i := range up {
			up[i] = float32(rng.NormFloat64())
		}
		dst := make([]float32, n+2)
		dst[n], dst[n+1] = 7, 7 // guard slots
		swiGLU(dst[:n], x, up)
		for i := range x {
			if w := SiLU(x[i]) * up[i]; !closeULP(dst[i], w, 4) {
				t.Fatalf("n=%d swiglu(%g, %g) = %g, want %g", n, x[i], up[i], dst[i], w)
			}
		}
		if dst[n] != 7 || dst[n+1] != 7 {
			t.Fatalf("n=%d: swiGLU wrote past its end", n)
		}
	}
	for _, d := range []int{1, 15, 16, 17, 64, 80, 96, 128, 130} {
		for _, nt := range []int{0, 1, 5, 33} {
			ldv := d + 3
			p, v := randSlice(rng, nt), randSlice(rng, nt*ldv+1)
			out := make([]float32, d+1)
			out[d] = 7
			weightedRows(out[:d], p, v, ldv)
			for j := 0; j < d; j++ {
				var w float32
				for t := 0; t < nt; t++ {
					w += p[t] * v[t*ldv+j]
				}
				if !closeRel(float64(out[j]), float64(w), 1e-5) && math.Abs(float64(out[j]-w)) > 1e-5 {
					t.Fatalf("d=%d nt=%d out[%d] = %g, want %g", d, nt, j, out[j], w)
				}
			}
			if out[d] != 7 {
				t.Fatalf("d=%d nt=%d: wrote past the end", d, nt)
			}
		}
	}
}

// closeULP: equal, both NaN, or within ulps units in the last place (values
// below the smallest normal count as 0).
func closeULP(a, b float32, ulps int) bool {
	if a != a || b != b {
		return a != a && b != b
	}
	const tiny = 1.1754944e-38
	if math.Abs(float64(a)) < tiny && math.Abs(float64(b)) < tiny {
		return true
	}
	if a == b {
		return true
	}
	if (a < 0) != (b < 0) {
		return false
	}
	d := int64(math.Float32bits(a)) - int64(math.Float32bits(b))
	return d <= int64(ulps) && d >= -int64(ulps)
}

func closeRel(a, b, tol float64) bool {
	if a == b || (a != a && b != b) {
		return true
	}
	return math.Abs(a-b) <= tol*math.Max(math.Abs(a), math.Abs(b))
}

// The decode path (short query blocks) and the batched form against the
// one-key-at-a-time reference: head dims on and off the vector width, GQA,
// sliding windows, long caches, probabilities for the backward.
func TestAttentionDecodeMatchesRef(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	shapes := []AttentionShape{
		{NQ: 1, Pos0: 0, Heads: 1, KVHeads: 1, HeadDim: 4},
		{NQ: 1, Pos0: 191, Heads: 9, KVHeads: 3, HeadDim: 64},
		{NQ: 3, Pos0: 40, Heads: 4, KVHeads: 2, HeadDim: 17},
		{NQ: 7, Pos0: 0, Heads: 6, KVHeads: 6, HeadDim: 80},
		{NQ: 2, Pos0: 300, Heads: 8, KVHeads: 2, HeadDim: 128, Window: 37},
		{NQ: 5, Pos0: 9, Heads: 2, KVHeads: 1, HeadDim: 33, Window: 4},
		{NQ: 12, Pos0: 5, Heads: 4, KVHeads: 2, HeadDim: 16}, // the GEMM path, inside a batch
	}
	var seqs []AttentionSeq
	var wants [][2][]float32
	for _, s := range shapes {
		nk := s.Pos0 + s.NQ
		q := randSlice(rng, s.NQ*s.Heads*s.HeadDim)
		k := randSlice(rng, nk*s.KVHeads*s.HeadDim)
		v := randSlice(rng, nk*s.KVHeads*s.HeadDim)
		for i := range q {
			q[i] *= 3 // peaked distributions as well as flat ones
		}
		want := make([]float32, len(q))
		wantP := make([]float32, s.Heads*s.NQ*nk)
		AttentionRef(want, q, k, v, s, wantP)
		got := make([]float32, len(q))
		gotP := make([]float32, len(wantP))
		Attention(got, q, k, v, s, gotP)
		checkClose(t, "Attention", got, want, 1e-5)
		checkClose(t, "Attention probs", gotP, wantP, 1e-5)
		seqs = append(seqs, AttentionSeq{Out: make([]float32, len(q)), Q: q, K: k, V: v, Shape: s, Probs: make([]float32, len(wantP))})
		wants = append(wants, [2][]float32{want, wantP})
	}
	AttentionBatch(seqs)
	for i, s := range seqs {
		checkClose(t, "AttentionBatch", s.Out, wants[i][0], 1e-5)
		checkClose(t, "AttentionBatch probs", s.Probs, wants[i][1], 1e-5)
	}
	// A NaN in one key poisons its query rows as in the reference.
	s := AttentionShape{NQ: 1, Pos0: 20, Heads: 2, KVHeads: 1, HeadDim: 16}
	q, k, v := randSlice(rng, 32), randSlice(rng, 21*16), randSlice(rng, 21*16)
	k[5*16+3] = float32(math.NaN())
	got := make([]float32, 32)
	Attention(got, q, k, v, s, nil)
	for i, x := range got {
		if x == x {
			t.Fatalf("out[%d] = %g, want NaN", i, x)
		}
	}
}

func checkClose(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > tol*(1+math.Abs(float64(want[i]))) {
			t.Fatalf("%s[%d] = %g, want %g", what, i, got[i], want[i])
		}
	}
}

func TestAxpyRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for _, n := range []int{1, 15, 16, 17, 64, 100, 192, 576} {
		for _, nt := range []int{0, 1, 16} {
			a, x := randSlice(rng, nt), randSlice(rng, nt*n)
			y := randSlice(rng, n+1)
			want := append([]float32(nil), y...)
			for t := 0; t < nt; t++ {
				for j := 0; j < n; j++ {
					want[j] += a[t] * x[t*n+j]
				}
			}
			axpyRows(y[:n], a, x)
			checkClose(t, "axpyRows", y, want, 1e-5)
		}
	}
}
