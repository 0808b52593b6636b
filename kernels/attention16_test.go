package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/lorakit/lorakit/tensor"
)

var kv16Types = []struct {
	dt   tensor.DType
	kind half16
}{{tensor.BF16, halfBF16}, {tensor.F16, halfF16}}

// kv16Shapes cover the decode path (NQ < attentionGEMMRows) and the GEMM
// path, head dims on and off the vector width (tails of the 16-lane
// kernels), GQA, sliding windows and long caches.
var kv16Shapes = []AttentionShape{
	{NQ: 1, Pos0: 0, Heads: 1, KVHeads: 1, HeadDim: 4},
	{NQ: 1, Pos0: 143, Heads: 9, KVHeads: 3, HeadDim: 64},
	{NQ: 3, Pos0: 40, Heads: 4, KVHeads: 2, HeadDim: 17},
	{NQ: 2, Pos0: 300, Heads: 8, KVHeads: 2, HeadDim: 128, Window: 37},
	{NQ: 5, Pos0: 9, Heads: 2, KVHeads: 1, HeadDim: 33, Window: 4},
	{NQ: 1, Pos0: 70, Heads: 2, KVHeads: 2, HeadDim: 80},
	{NQ: 12, Pos0: 5, Heads: 4, KVHeads: 2, HeadDim: 16},
	{NQ: 17, Pos0: 0, Heads: 6, KVHeads: 3, HeadDim: 24, Window: 5},
	{NQ: 9, Pos0: 30, Heads: 9, KVHeads: 3, HeadDim: 64},
}

// TestAttention16MatchesWidened: attention over 16-bit keys and values
// equals the float32 reference over the widened cache (the same values, so
// only the order of summation differs), on the assembly and the portable
// paths, in one batch and alone, with guard slots around every output and
// probabilities for each shape.
func TestAttention16MatchesWidened(t *testing.T) {
	with16Paths(t, func(t *testing.T) {
		for _, ty := range kv16Types {
			rng := rand.New(rand.NewPCG(21, 22))
			var seqs []AttentionSeq
			var wants [][2][]float32
			var bufs [][2][]float32
			for _, s := range kv16Shapes {
				nk := s.Pos0 + s.NQ
				kw := s.KVHeads * s.HeadDim
				q := randSlice(rng, s.NQ*s.Heads*s.HeadDim)
				for i := range q {
					q[i] *= 3 // peaked distributions as well as flat ones
				}
				k16 := rand16(rng, ty.kind, nk*kw, 3)
				v16 := rand16(rng, ty.kind, nk*kw, 5)
				want := make([]float32, len(q))
				wantP := make([]float32, s.Heads*s.NQ*nk)
				AttentionRef(want, q, widenAll(ty.kind, k16), widenAll(ty.kind, v16), s, wantP)
				ob, out := guarded(len(q))
				pb, probs := guarded(len(wantP))
				AttentionBatch([]AttentionSeq{{Out: out, Q: q, K16: k16, V16: v16, KVType: ty.dt, Shape: s, Probs: probs}})
				what := fmt.Sprintf("%s %+v", ty.dt, s)
				checkGuards(t, ob, len(q))
				checkGuards(t, pb, len(wantP))
				checkClose(t, what+" out", out, want, 1e-5)
				checkClose(t, what+" probs", probs, wantP, 1e-5)
				ob, out = guarded(len(q))
				seqs = append(seqs, AttentionSeq{Out: out, Q: q, K16: k16, V16: v16, KVType: ty.dt, Shape: s})
				wants = append(wants, [2][]float32{want, wantP})
				bufs = append(bufs, [2][]float32{ob})
			}
			AttentionBatch(seqs) // decoding and prefilling sequences in one call, no probs
			for i, s := range seqs {
				checkGuards(t, bufs[i][0], len(s.Out))
				checkClose(t, fmt.Sprintf("%s batch %+v", ty.dt, s.Shape), s.Out, wants[i][0], 1e-5)
			}
		}
	})
}

// TestAttention16NaNAndInf: a NaN key poisons every query row of its kv
// head that sees it, an infinite value makes the outputs that weigh it
// infinite or NaN as in the float32 reference over the widened cache, on
// both paths.
func TestAttention16NaNAndInf(t *testing.T) {
	with16Paths(t, func(t *testing.T) {
		for _, ty := range kv16Types {
			for _, s := range []AttentionShape{
				{NQ: 1, Pos0: 20, Heads: 2, KVHeads: 1, HeadDim: 16},
				{NQ: 2, Pos0: 40, Heads: 4, KVHeads: 2, HeadDim: 72},
				{NQ: 9, Pos0: 12, Heads: 2, KVHeads: 1, HeadDim: 20},
			} {
				rng := rand.New(rand.NewPCG(3, 4))
				nk := s.Pos0 + s.NQ
				kw := s.KVHeads * s.HeadDim
				q := randSlice(rng, s.NQ*s.Heads*s.HeadDim)
				for _, special := range []float32{float32(math.NaN()), float32(math.Inf(1))} {
					k16 := rand16(rng, ty.kind, nk*kw, 0)
					v16 := rand16(rng, ty.kind, nk*kw, 0)
					// Position 5, kv head 0, the last column (in the tail
					// of the vector loop when d is not a multiple of 16).
					at := 5*kw + s.HeadDim - 1
					if special != special {
						k16[at] = to16(ty.kind, special)
					} else {
						v16[at] = to16(ty.kind, special)
					}
					want := make([]float32, len(q))
					AttentionRef(want, q, widenAll(ty.kind, k16), widenAll(ty.kind, v16), s, nil)
					got := make([]float32, len(q))
					AttentionBatch([]AttentionSeq{{Out: got, Q: q, K16: k16, V16: v16, KVType: ty.dt, Shape: s}})
					specials := 0
					for i := range want {
						w, g := float64(want[i]), float64(got[i])
						switch {
						case math.IsNaN(w):
							specials++
							if !math.IsNaN(g) {
								t.Fatalf("%s %+v %v: out[%d] = %v, want NaN", ty.dt, s, special, i, g)
							}
						case math.IsInf(w, 0):
							specials++
							if g != w {
								t.Fatalf("%s %+v %v: out[%d] = %v, want %v", ty.dt, s, special, i, g, w)
							}
						case math.Abs(g-w) > 1e-5*(1+math.Abs(w)):
							t.Fatalf("%s %+v %v: out[%d] = %v, want %v", ty.dt, s, special, i, g, w)
						}
					}
					if specials == 0 {
						t.Fatalf("%s %+v %v: the reference has no NaN or Inf output; the test is broken", ty.dt, s, special)
					}
				}
			}
		}
	})
}

// TestWeightedRows16: the value-row kernel against a float64 sum over the
// widened rows, for widths on and off the 16 and 64 blocks, row strides
// wider than the output, and guard slots; special values widen exactly.
func TestWeightedRows16(t *testing.T) {
	with16Paths(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(11, 12))
		for _, ty := range kv16Types {
			for _, d := range []int{1, 15, 16, 17, 48, 64, 65, 100, 192} {
				for _, nt := range []int{0, 1, 2, 7, 33} {
					ldv := d + rng.IntN(20)
					p := randSlice(rng, nt)
					v := rand16(rng, ty.kind, max(nt*ldv, 1), 1)
					buf, out := guarded(d)
					weightedRows16(ty.kind, out, p, v, ldv)
					checkGuards(t, buf, d)
					for j := 0; j < d; j++ {
						var want, mag float64
						for tt := 0; tt < nt; tt++ {
							x := float64(p[tt]) * float64(from16(ty.kind, v[tt*ldv+j]))
							want += x
							mag += math.Abs(x)
						}
						if math.Abs(float64(out[j])-want) > 1e-6*(1+mag) {
							t.Fatalf("%s d=%d nt=%d: out[%d] = %v, want %v", ty.dt, d, nt, j, out[j], want)
						}
					}
				}
			}
			// Special values, one per column, weighted by 2 (exact products).
			vals := special16[ty.kind]
			v := make([]uint16, 2*len(vals))
			copy(v[len(vals):], vals) // row 0 zeros, row 1 the specials
			out := make([]float32, len(vals))
			weightedRows16(ty.kind, out, []float32{1, 2}, v, len(vals))
			for j, h := range vals {
				want := 0 + 2*from16(ty.kind, h)
				if math.IsNaN(float64(want)) {
					if !math.IsNaN(float64(out[j])) {
						t.Fatalf("%s special %#04x: %v, want NaN", ty.dt, h, out[j])
					}
					continue
				}
				if out[j] != want {
					t.Fatalf("%s special %#04x: %v, want %v", ty.dt, h, out[j], want)
				}
			}
		}
	})
}

// BenchmarkAttentionDecode16: one serving step's decode attention (64
// sequences at position 143, SmolLM2-135M heads) over float32 and BF16
// caches; the BF16 one reads half the bytes.
func BenchmarkAttentionDecode16(b *testing.B) {
	s := AttentionShape{NQ: 1, Pos0: 143, Heads: 9, KVHeads: 3, HeadDim: 64}
	rng := rand.New(rand.NewPCG(1, 2))
	const seqs = 64
	nk, kw := s.Pos0+1, s.KVHeads*s.HeadDim
	for _, ty := range []tensor.DType{tensor.F32, tensor.BF16} {
		batch := make([]AttentionSeq, seqs)
		for i := range batch {
			a := AttentionSeq{Out: make([]float32, s.Heads*s.HeadDim), Q: randSlice(rng, s.Heads*s.HeadDim), Shape: s}
			if ty == tensor.F32 {
				a.K, a.V = randSlice(rng, nk*kw), randSlice(rng, nk*kw)
			} else {
				a.K16, a.V16, a.KVType = rand16(rng, halfBF16, nk*kw, 0), rand16(rng, halfBF16, nk*kw, 0), ty
			}
			batch[i] = a
		}
		b.Run(string(ty), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				AttentionBatch(batch)
			}
		})
	}
}
