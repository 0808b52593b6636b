package kernels

import (
	"math/rand/v2"
	"testing"
)

// AddLowRank against the reference products, segment by segment: one-row
// decode segments, long prefill segments, rows outside every segment (left
// alone), ranks 1..16, and guard slots after y.
func TestAddLowRankMatchesRef(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, dims := range [][2]int{{24, 40}, {576, 192}, {33, 17}, {2048, 32}} { // the last: more rows than columns
		in, out := dims[0], dims[1]
		var segs []LowRank
		rows := 0
		for i, n := range []int{1, 1, 3, 0, 12, 1, 8, 9, 2} {
			if i == 4 {
				rows += 2 // rows with no adapter
			}
			r := 1 + i*15/8
			a, b := randSlice(rng, r*in), randSlice(rng, out*r)
			for j := range a {
				a[j] *= 0.05 // realistic magnitudes: u = x·Aᵀ about 1
			}
			for j := range b {
				b[j] *= 0.1 // and a low-rank term of a few units at most
			}
			seg := LowRank{Lo: rows, Hi: rows + n, A: a, B: b, R: r, Scale: 0.5 + float32(i)}
			if i%2 == 1 { // half the segments carry Bᵀ as well
				seg.BT = make([]float32, r*out)
				for o := 0; o < out; o++ {
					for k := 0; k < r; k++ {
						seg.BT[k*out+o] = b[o*r+k]
					}
				}
			}
			segs = append(segs, seg)
			rows += n
		}
		x := randSlice(rng, rows*in)
		y := randSlice(rng, rows*out+3)
		want := append([]float32(nil), y...)
		for _, s := range segs {
			n := s.Hi - s.Lo
			u := make([]float32, n*s.R)
			MatMulTRef(u, x[s.Lo*in:s.Hi*in], s.A, n, s.R, in, false)
			for j := range u {
				u[j] *= s.Scale
			}
			MatMulTRef(want[s.Lo*out:s.Hi*out], u, s.B, n, out, s.R, true)
		}
		// The fused product: y = x·wᵀ, then the same terms.
		w := randSlice(rng, out*in)
		for j := range w {
			w[j] *= 0.05 // x·wᵀ about 1 even for k = 2048, as in a model
		}
		yf := append([]float32(nil), y...)
		wantF := append([]float32(nil), y...)
		MatMulTRef(wantF[:rows*out], x, w, rows, out, in, false)
		for i := range want[:rows*out] {
			wantF[i] += want[i] - y[i]
		}
		MatMulTLowRank(yf[:rows*out], x, w, rows, out, in, segs)
		checkClose(t, "MatMulTLowRank", yf, wantF, 1e-4)

		AddLowRank(y[:rows*out], x, in, out, segs)
		checkClose(t, "AddLowRank", y, want, 1e-4) // float32 sums of ~600 terms, scaled by up to 9
	}
}

// MatMulTMany against MatMulT for each matrix, decode row counts and a
// prefill one (the fallback), odd sizes included.
func TestMatMulTMany(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, m := range []int{1, 3, 8, 9} {
		k := 577
		ns := []int{576, 193, 1}
		x := randSlice(rng, m*k)
		var ws, dsts [][]float32
		for _, n := range ns {
			ws = append(ws, randSlice(rng, n*k))
			dsts = append(dsts, make([]float32, m*n))
		}
		MatMulTMany(x, m, k, dsts, ws, ns)
		for i, n := range ns {
			want := make([]float32, m*n)
			MatMulT(want, x, ws[i], m, n, k, false)
			for j := range want {
				if dsts[i][j] != want[j] {
					t.Fatalf("m=%d matrix %d [%d] = %g, want %g (MatMulT)", m, i, j, dsts[i][j], want[j])
				}
			}
		}
	}
}
