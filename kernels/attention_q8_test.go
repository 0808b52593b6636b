package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/lorakit/lorakit/kvcache"
	"github.com/lorakit/lorakit/tensor"
)

// q8Shapes cover the decode path (NQ < attentionGEMMRows) and the GEMM
// path, head dims of one to six blocks (64-column chunks and a 32-column
// tail in the value kernel; four-row groups and single rows in the score
// kernel), GQA, sliding windows and long caches.
var q8Shapes = []AttentionShape{
	{NQ: 1, Pos0: 0, Heads: 1, KVHeads: 1, HeadDim: 32},
	{NQ: 1, Pos0: 143, Heads: 9, KVHeads: 3, HeadDim: 64},
	{NQ: 1, Pos0: 6, Heads: 9, KVHeads: 3, HeadDim: 64},
	{NQ: 1, Pos0: 77, Heads: 6, KVHeads: 2, HeadDim: 128},
	{NQ: 1, Pos0: 18, Heads: 3, KVHeads: 1, HeadDim: 96},
	{NQ: 1, Pos0: 200, Heads: 9, KVHeads: 3, HeadDim: 64, Window: 50},
	{NQ: 3, Pos0: 40, Heads: 4, KVHeads: 2, HeadDim: 32},
	{NQ: 2, Pos0: 300, Heads: 8, KVHeads: 2, HeadDim: 128, Window: 37},
	{NQ: 5, Pos0: 9, Heads: 2, KVHeads: 1, HeadDim: 192, Window: 4},
	{NQ: 12, Pos0: 5, Heads: 6, KVHeads: 2, HeadDim: 64},
	{NQ: 17, Pos0: 0, Heads: 6, KVHeads: 3, HeadDim: 32, Window: 5},
	{NQ: 9, Pos0: 30, Heads: 9, KVHeads: 3, HeadDim: 128},
	{NQ: 8, Pos0: 100, Heads: 3, KVHeads: 3, HeadDim: 64, Window: 20},
}

// q8Cache is x quantized to Q8_0 (bytes and scales) and the values it
// stands for.
func q8Cache(x []float32) (q []int8, scales []uint16, deq []float32) {
	q, scales = make([]int8, len(x)), make([]uint16, len(x)/32)
	kvcache.QuantizeQ8(q, scales, x)
	deq = make([]float32, len(x))
	kvcache.DequantizeQ8(deq, q, scales)
	return q, scales, deq
}

// randKV is n random keys or values with a different magnitude per block
// (so the scales differ), some blocks all zero.
func randKV(rng *rand.Rand, n int) []float32 {
	x := randSlice(rng, n)
	for b := 0; b < n/32; b++ {
		m := float32(math.Exp(rng.NormFloat64()))
		if rng.IntN(20) == 0 {
			m = 0
		}
		for j := b * 32; j < b*32+32; j++ {
			x[j] *= m
		}
	}
	return x
}

// TestAttentionQ8MatchesDequantized: attention over Q8_0 keys and values
// equals the float32 reference over the values they stand for (only the
// order of summation differs, so within 1e-5 as for 16-bit caches), on
// the assembly and the portable paths, in one batch and alone, with guard
// slots around every output and probabilities for each shape.
func TestAttentionQ8MatchesDequantized(t *testing.T) {
	with16Paths(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(31, 32))
		var seqs []AttentionSeq
		var wants [][]float32
		var bufs [][]float32
		for _, s := range q8Shapes {
			nk := s.Pos0 + s.NQ
			kw := s.KVHeads * s.HeadDim
			q := randSlice(rng, s.NQ*s.Heads*s.HeadDim)
			for i := range q {
				q[i] *= 3 // peaked distributions as well as flat ones
			}
			k8, ks, kf := q8Cache(randKV(rng, nk*kw))
			v8, vs, vf := q8Cache(randKV(rng, nk*kw))
			want := make([]float32, len(q))
			wantP := make([]float32, s.Heads*s.NQ*nk)
			AttentionRef(want, q, kf, vf, s, wantP)
			ob, out := guarded(len(q))
			pb, probs := guarded(len(wantP))
			AttentionBatch([]AttentionSeq{{Out: out, Q: q, K8: k8, V8: v8, KS: ks, VS: vs, Shape: s, Probs: probs}})
			what := fmt.Sprintf("%+v", s)
			checkGuards(t, ob, len(q))
			checkGuards(t, pb, len(wantP))
			checkClose(t, what+" out", out, want, 1e-5)
			checkClose(t, what+" probs", probs, wantP, 1e-5)
			ob, out = guarded(len(q))
			seqs = append(seqs, AttentionSeq{Out: out, Q: q, K8: k8, V8: v8, KS: ks, VS: vs, Shape: s})
			wants = append(wants, want)
			bufs = append(bufs, ob)
		}
		AttentionBatch(seqs) // decoding and prefilling sequences in one call, no probs
		for i, s := range seqs {
			checkGuards(t, bufs[i], len(s.Out))
			checkClose(t, fmt.Sprintf("batch %+v", s.Shape), s.Out, wants[i], 1e-5)
		}
	})
}

// TestAttentionQ8NonFinite: a key or value block that held a NaN or an
// infinity is stored as NaN, so every output that reads it is NaN (never
// a finite number made up), and the others are unaffected, on both paths.
func TestAttentionQ8NonFinite(t *testing.T) {
	with16Paths(t, func(t *testing.T) {
		for _, s := range []AttentionShape{
			{NQ: 1, Pos0: 20, Heads: 3, KVHeads: 1, HeadDim: 64},
			{NQ: 2, Pos0: 40, Heads: 6, KVHeads: 2, HeadDim: 96},
			{NQ: 9, Pos0: 12, Heads: 4, KVHeads: 2, HeadDim: 32},
		} {
			rng := rand.New(rand.NewPCG(3, 4))
			nk := s.Pos0 + s.NQ
			kw := s.KVHeads * s.HeadDim
			q := randSlice(rng, s.NQ*s.Heads*s.HeadDim)
			for _, special := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
				for _, inK := range []bool{true, false} {
					kx, vx := randKV(rng, nk*kw), randKV(rng, nk*kw)
					// Position 5, kv head 0, the last block of the head.
					at := 5*kw + s.HeadDim - 1
					if inK {
						kx[at] = special
					} else {
						vx[at] = special
					}
					k8, ks, kf := q8Cache(kx)
					v8, vs, vf := q8Cache(vx)
					if !math.IsNaN(float64(kf[at])) && !math.IsNaN(float64(vf[at])) {
						t.Fatalf("%v was not stored as NaN", special)
					}
					want := make([]float32, len(q))
					AttentionRef(want, q, kf, vf, s, nil)
					got := make([]float32, len(q))
					AttentionBatch([]AttentionSeq{{Out: got, Q: q, K8: k8, V8: v8, KS: ks, VS: vs, Shape: s}})
					nans := 0
					for i := range want {
						w, g := float64(want[i]), float64(got[i])
						switch {
						case math.IsNaN(w):
							nans++
							if !math.IsNaN(g) {
								t.Fatalf("%+v %v in K %v: out[%d] = %v, want NaN", s, special, inK, i, g)
							}
						case math.IsNaN(g) || math.Abs(g-w) > 1e-5*(1+math.Abs(w)):
							t.Fatalf("%+v %v in K %v: out[%d] = %v, want %v", s, special, inK, i, g, w)
						}
					}
					// Query rows see position 5, and kv head 0 serves
					// Heads/KVHeads heads: all of their outputs (a NaN key)
					// or their last block (a NaN value) are NaN.
					perHead := s.HeadDim
					if !inK {
						perHead = 32
					}
					if want := s.NQ * (s.Heads / s.KVHeads) * perHead; nans != want {
						t.Fatalf("%+v %v in K %v: %d NaN outputs, want %d", s, special, inK, nans, want)
					}
				}
			}
		}
	})
}

// TestRowsQ8Kernels: the score and value kernels against float64 sums
// over the dequantized rows, for head dims of one to six blocks, row
// counts around the four-row groups, row and scale strides wider than a
// head, guard slots; the assembly and portable paths agree closely.
func TestRowsQ8Kernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	saved := use16Asm
	defer func() { use16Asm = saved }()
	for _, d := range []int{32, 64, 96, 128, 192} {
		for _, nt := range []int{0, 1, 2, 3, 4, 5, 7, 8, 33} {
			ld := d + 32*rng.IntN(3)
			x := randKV(rng, max(nt*ld, 32))
			x8, xs, xf := q8Cache(x)
			sf := make([]float32, len(xs))
			for i, h := range xs {
				sf[i] = tensor.F16ToF32(h)
			}
			q := randSlice(rng, d)
			p := randSlice(rng, nt)
			var got [2][2][]float32 // [asm][scores, out]
			var mags [2][]float64   // Σ|terms| of each score and output
			for ai, asm := range []bool{false, true} {
				if asm && !vec512 {
					continue
				}
				use16Asm = asm
				sb, scores := guarded(nt)
				dotRowsQ8(scores, q, x8, ld, sf, ld/32)
				checkGuards(t, sb, nt)
				ob, out := guarded(d)
				weightedRowsQ8(out, p, x8, ld, sf, ld/32)
				checkGuards(t, ob, d)
				got[ai] = [2][]float32{scores, out}
				mags = [2][]float64{make([]float64, nt), make([]float64, d)}
				for tt := 0; tt < nt; tt++ {
					var want, mag float64
					for j := 0; j < d; j++ {
						v := float64(q[j]) * float64(xf[tt*ld+j])
						want += v
						mag += math.Abs(v)
					}
					mags[0][tt] = mag
					if math.Abs(float64(scores[tt])-want) > 1e-6*(1+mag) {
						t.Fatalf("asm=%v d=%d nt=%d: score %d = %v, want %v", asm, d, nt, tt, scores[tt], want)
					}
				}
				for j := 0; j < d; j++ {
					var want, mag float64
					for tt := 0; tt < nt; tt++ {
						v := float64(p[tt]) * float64(xf[tt*ld+j])
						want += v
						mag += math.Abs(v)
					}
					mags[1][j] = mag
					if math.Abs(float64(out[j])-want) > 1e-6*(1+mag) {
						t.Fatalf("asm=%v d=%d nt=%d: out[%d] = %v, want %v", asm, d, nt, j, out[j], want)
					}
				}
			}
			if got[1][0] == nil {
				continue
			}
			// The two paths sum in different orders: within a few float32
			// roundings of the terms' magnitude of each other.
			for w := range got[0] {
				for i, g := range got[1][w] {
					if e := math.Abs(float64(g - got[0][w][i])); e > 2e-6*(1+mags[w][i]) {
						t.Fatalf("d=%d nt=%d: %s %d: asm %v, Go %v", d, nt, [2]string{"score", "out"}[w], i, g, got[0][w][i])
					}
				}
			}
		}
	}
}

// BenchmarkAttentionDecodeQ8: one serving step's decode attention (64
// sequences at position 143, SmolLM2-135M heads) over float32, BF16 and
// Q8_0 caches: 4, 2 and 1.0625 bytes a value.
func BenchmarkAttentionDecodeQ8(b *testing.B) {
	s := AttentionShape{NQ: 1, Pos0: 143, Heads: 9, KVHeads: 3, HeadDim: 64}
	rng := rand.New(rand.NewPCG(1, 2))
	const seqs = 64
	nk, kw := s.Pos0+1, s.KVHeads*s.HeadDim
	for _, ty := range []tensor.DType{tensor.F32, tensor.BF16, kvcache.Q8_0} {
		batch := make([]AttentionSeq, seqs)
		for i := range batch {
			a := AttentionSeq{Out: make([]float32, s.Heads*s.HeadDim), Q: randSlice(rng, s.Heads*s.HeadDim), Shape: s}
			switch ty {
			case tensor.F32:
				a.K, a.V = randSlice(rng, nk*kw), randSlice(rng, nk*kw)
			case tensor.BF16:
				a.K16, a.V16, a.KVType = rand16(rng, halfBF16, nk*kw, 0), rand16(rng, halfBF16, nk*kw, 0), ty
			default:
				a.K8, a.KS, _ = q8Cache(randSlice(rng, nk*kw))
				a.V8, a.VS, _ = q8Cache(randSlice(rng, nk*kw))
			}
			batch[i] = a
		}
		b.Run(string(ty), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				AttentionBatch(batch)
			}
		})
	}
}

// TestAttentionPrefillReusesScratch: the prefill (GEMM) path takes its
// panels and scores from a pool, so that steady-state prefill allocates
// nothing, over float32 and Q8_0 caches alike. (A collection during the
// runs may empty the pool: fewer than one allocation a call on average.)
func TestAttentionPrefillReusesScratch(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	s := AttentionShape{NQ: 64, Pos0: 16, Heads: 9, KVHeads: 3, HeadDim: 64}
	nk, kw, qw := s.Pos0+s.NQ, s.KVHeads*s.HeadDim, s.Heads*s.HeadDim
	k8, ks, _ := q8Cache(randSlice(rng, nk*kw))
	v8, vs, _ := q8Cache(randSlice(rng, nk*kw))
	for _, a := range []AttentionSeq{
		{Out: make([]float32, s.NQ*qw), Q: randSlice(rng, s.NQ*qw), K: randSlice(rng, nk*kw), V: randSlice(rng, nk*kw), Shape: s},
		{Out: make([]float32, s.NQ*qw), Q: randSlice(rng, s.NQ*qw), K8: k8, V8: v8, KS: ks, VS: vs, Shape: s},
	} {
		one := []AttentionSeq{a}
		if n := testing.AllocsPerRun(20, func() { AttentionBatch(one) }); n >= 1 {
			t.Errorf("Q8_0 %v: %.1f allocations per prefill call, want none", a.K8 != nil, n)
		}
	}
}
