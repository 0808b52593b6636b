// Package kvcache holds the keys and values of the positions a sequence has
// already processed, per layer, so decoding a token costs one position's work.
package kvcache

// Seq is one sequence's cache: for each layer, K and V rows [Len, kvDim] in
// position order. Rows beyond Len are scratch being filled by the current step.
type Seq struct {
	KVDim  int
	Len    int // positions committed so far
	Layers []Layer
}

// Layer is one layer's keys and values, [capacity, kvDim] each.
type Layer struct{ K, V []float32 }

// New makes an empty cache for a model with the given layer count and kv width.
func New(layers, kvDim int) *Seq {
	return &Seq{KVDim: kvDim, Layers: make([]Layer, layers)}
}

// Reserve makes room for n positions in every layer, keeping what is there.
func (s *Seq) Reserve(n int) {
	need := n * s.KVDim
	for i := range s.Layers {
		l := &s.Layers[i]
		if cap(l.K) < need {
			c := max(need, 2*cap(l.K))
			k := make([]float32, need, c)
			v := make([]float32, need, c)
			copy(k, l.K)
			copy(v, l.V)
			l.K, l.V = k, v
		}
		l.K, l.V = l.K[:need], l.V[:need]
	}
}

// Truncate forgets positions from n on (used to roll back or reuse a prefix).
func (s *Seq) Truncate(n int) {
	if n < s.Len {
		s.Len = n
	}
}

// Bytes is the memory the cache holds.
func (s *Seq) Bytes() int {
	b := 0
	for _, l := range s.Layers {
		b += 4 * (cap(l.K) + cap(l.V))
	}
	return b
}
