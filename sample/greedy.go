package sample

import "math"

var negInf = float32(math.Inf(-1))

// Greedy returns the index of the largest logit, the lowest index on ties.
// NaN never wins (every comparison with it is false, so it acts as -Inf). If
// every logit is NaN or -Inf they all tie at -Inf and Greedy returns 0. It
// returns -1 only for empty logits.
func Greedy(logits []float32) int {
	if len(logits) == 0 {
		return -1
	}
	best, bv := 0, negInf
	for i, v := range logits {
		if v > bv {
			best, bv = i, v
		}
	}
	return best
}
