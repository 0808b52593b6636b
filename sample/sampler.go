package sample

import (
	"math"
	"math/rand/v2"
)

// Sampler draws tokens with fixed Params. It keeps its scratch buffers
// between calls, so after the first call at a given vocabulary size Sample
// does not allocate. A Sampler is not safe for concurrent use; give each
// sequence its own.
type Sampler struct {
	p     Params
	rng   *rand.Rand
	cands []cand   // surviving tokens, reused
	seen  []uint32 // repetition-penalty de-dup stamps, reused
	gen   uint32
}

// New returns a Sampler whose draws are a pure function of p.Seed and the
// inputs. It panics if p.Validate fails: validate user-supplied Params first.
func New(p Params) *Sampler {
	if err := p.Validate(); err != nil {
		panic(err)
	}
	// PCG wants two words of seed; the second is derived from the first
	// so that a single uint64 still selects the whole stream.
	return &Sampler{p: p, rng: rand.New(rand.NewPCG(p.Seed, p.Seed^0x9e3779b97f4a7c15))}
}

// Params returns the parameters s was built with.
func (s *Sampler) Params() Params { return s.p }

// Sample returns the next token id.
//
// It modifies logits in place: the repetition penalty is applied to the
// entries of the history ids (as HF's processor does to its scores tensor).
// Nothing else is written. Pass a copy if the raw logits are still needed.
//
// Non-finite logits: NaN is treated as -Inf (never drawn). If no logit is
// finite or +Inf, Sample returns 0, the id Greedy returns then. If some logit
// is +Inf the softmax is undefined (Inf-Inf); Sample returns the lowest id
// holding +Inf, as Greedy does. Empty logits return -1.
func (s *Sampler) Sample(logits []float32, history []int) int {
	if len(logits) == 0 {
		return -1
	}
	s.applyPenalty(logits, history)
	if s.p.Temperature == 0 {
		return Greedy(logits)
	}
	c, ok := s.survivors(logits)
	if !ok {
		return Greedy(logits)
	}
	return s.draw(c)
}

// survivors applies temperature, top-k, top-p and min-p and returns the
// tokens left with their unnormalised weights w = exp((logit-max)/T). ok is
// false when the softmax is undefined (no finite logit, or a +Inf one).
//
// Temperature (HF TemperatureLogitsWarper: scores / T) is fused into the
// weights. Working in float64 on (logit-max)/T keeps a tiny T from
// overflowing and gives the max token weight exactly 1, which turns min-p
// into a plain comparison.
func (s *Sampler) survivors(logits []float32) (c []cand, ok bool) {
	invT := 1 / float64(s.p.Temperature)
	if k := s.p.TopK; k > 0 && k < len(logits) {
		s.reserve(k)
		c = selectTopK(s.cands, logits, k)
		s.cands = c
		if len(c) == 0 || math.IsInf(float64(c[0].logit), 1) {
			return nil, false
		}
		sum := weigh(c, float64(c[0].logit), invT)
		if s.p.topPOn() {
			c = nucleus(c, float64(s.p.TopP)*sum)
		}
	} else {
		maxL, found := maxLogit(logits)
		if !found || math.IsInf(maxL, 1) {
			return nil, false
		}
		s.reserve(len(logits))
		if s.p.topPOn() {
			c = s.topMass(logits, maxL, invT)
		} else {
			c = s.gather(logits, maxL, invT)
		}
	}
	if s.p.MinP > 0 {
		c = minP(c, float64(s.p.MinP))
	}
	return c, true
}

// reserve sizes the candidate buffer once, so later calls never grow it.
func (s *Sampler) reserve(n int) {
	if cap(s.cands) < n {
		s.cands = make([]cand, 0, n)
	}
}

// maxLogit is the largest non-NaN logit; found is false if all are -Inf/NaN.
func maxLogit(logits []float32) (m float64, found bool) {
	best := negInf
	for _, v := range logits {
		if v > best {
			best = v
		}
	}
	return float64(best), best > negInf
}

// weigh fills c[i].w and returns their sum.
func weigh(c []cand, maxL, invT float64) float64 {
	var sum float64
	for i := range c {
		w := math.Exp((float64(c[i].logit) - maxL) * invT)
		c[i].w = w
		sum += w
	}
	return sum
}

// nucleus is HF's TopPLogitsWarper on a best-first list: token j survives iff
// the mass ranked above it is < target (TopP times the total mass of the
// distribution top-k left). That is the smallest prefix reaching the target,
// and never empty.
func nucleus(c []cand, target float64) []cand {
	var cum float64
	for i := range c {
		cum += c[i].w
		if cum >= target {
			return c[:i+1]
		}
	}
	return c // rounding kept the sum just under target: keep everything
}

// topMass is top-p without top-k. Instead of sorting the whole vocabulary it
// selects the best m tokens for growing m until their mass reaches the
// target: a peaked distribution (the usual case) costs a few partial
// selections, and only a flat one falls through to the full sort.
func (s *Sampler) topMass(logits []float32, maxL, invT float64) []cand {
	var total float64
	for _, v := range logits {
		if v > negInf {
			total += math.Exp((float64(v) - maxL) * invT)
		}
	}
	target := float64(s.p.TopP) * total
	for m := 64; 4*m < len(logits); m *= 4 {
		c := selectTopK(s.cands, logits, m)
		s.cands = c
		weigh(c, maxL, invT)
		if n := nucleus(c, target); len(n) < len(c) || len(c) < m {
			return n
		}
	}
	c := s.gather(logits, maxL, invT)
	sortByRank(c)
	return nucleus(c, target)
}

// gather collects every drawable token with its weight. With min-p on, tokens
// clearly below the threshold are skipped before the exp (log(MinP) with
// slack for rounding); minP applies the exact test afterwards.
func (s *Sampler) gather(logits []float32, maxL, invT float64) []cand {
	lo := math.Inf(-1)
	if s.p.MinP > 0 && !s.p.topPOn() {
		lo = math.Log(float64(s.p.MinP)) - 1e-6
	}
	c := s.cands[:0]
	for i, v := range logits {
		if !(v > negInf) {
			continue
		}
		x := (float64(v) - maxL) * invT
		if x < lo {
			continue
		}
		c = append(c, cand{id: int32(i), logit: v, w: math.Exp(x)})
	}
	s.cands = c
	return c
}

// minP is HF's MinPLogitsWarper: drop p < MinP * p_max. Since the max token
// has w == 1, p/p_max == w whatever the normalisation, and the max token
// always survives. The order of c is kept.
func minP(c []cand, minW float64) []cand {
	k := 0
	for _, x := range c {
		if x.w >= minW {
			c[k] = x
			k++
		}
	}
	return c[:k]
}

// draw is the multinomial draw: inverse CDF on one uniform variate.
func (s *Sampler) draw(c []cand) int {
	var total float64
	for i := range c {
		total += c[i].w
	}
	r := s.rng.Float64() * total
	var acc float64
	last := int(c[0].id)
	for i := range c {
		if c[i].w == 0 {
			continue
		}
		acc += c[i].w
		last = int(c[i].id)
		if r < acc {
			return last
		}
	}
	// r can round up to total; the answer is then the last token with
	// non-zero weight.
	return last
}
