package sample

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestSurvivorsMatchReference compares the surviving set and its normalised
// weights with refDist over vocabularies large enough to exercise the
// partial-selection paths (top-k heap, top-p growing selection, min-p
// pre-filter), on peaked and flat distributions.
func TestSurvivorsMatchReference(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	params := []Params{
		{Temperature: 1},
		{Temperature: 0.7, TopK: 40},
		{Temperature: 0.7, TopP: 0.9},
		{Temperature: 1.3, TopP: 0.5},
		{Temperature: 0.8, TopK: 40, TopP: 0.95},
		{Temperature: 1, MinP: 0.05},
		{Temperature: 0.6, TopP: 0.99, MinP: 0.01},
		{Temperature: 1, TopK: 500, TopP: 0.8, MinP: 0.001, RepetitionPenalty: 1.2},
	}
	for _, n := range []int{3, 100, 1000, 5000, 49152} {
		for _, scale := range []float64{0.3, 3, 12} {
			logits := randLogits(r, n, scale)
			history := []int{0, n / 2, n - 1, 0}
			for _, p := range params {
				want := refDist(logits, history, p)
				s := New(p)
				l := append([]float32(nil), logits...)
				s.applyPenalty(l, history)
				c, ok := s.survivors(l)
				if !ok {
					t.Fatalf("n=%d scale=%v %+v: survivors not ok", n, scale, p)
				}
				var total float64
				for _, x := range c {
					total += x.w
				}
				got := make(map[int]float64, len(c))
				for _, x := range c {
					got[int(x.id)] = x.w / total
				}
				for id, pw := range want {
					g, in := got[id]
					if (pw > 0) != in {
						t.Fatalf("n=%d scale=%v %+v: token %d kept=%v, reference p=%g (kept %d tokens)",
							n, scale, p, id, in, pw, len(c))
					}
					if in && math.Abs(g-pw) > 1e-9+1e-6*pw {
						t.Fatalf("n=%d scale=%v %+v: token %d p=%g, reference %g", n, scale, p, id, g, pw)
					}
				}
			}
		}
	}
}
