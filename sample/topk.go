package sample

import "slices"

// cand is one surviving token: its id, its (penalised, unscaled) logit and,
// once computed, its unnormalised probability w = exp((logit-max)/T).
type cand struct {
	id    int32
	logit float32
	w     float64
}

// worse orders tokens by logit and then by id, lower id first, so that every
// selection below is deterministic and top-k=1 agrees with Greedy.
func worse(a, b cand) bool {
	return a.logit < b.logit || (a.logit == b.logit && a.id > b.id)
}

// byRank sorts best first.
func byRank(a, b cand) int {
	switch {
	case worse(b, a):
		return -1
	case worse(a, b):
		return 1
	}
	return 0
}

// selectTopK keeps the k best finite-or-+Inf logits in h (reused storage)
// with a size-k min-heap whose root is the worst kept token: O(n log k) and,
// since most logits lose to the root at one comparison, close to one pass
// over the vocabulary (~50µs for 49152 logits, k=40, where a full sort
// measured ~6ms).
//
// It keeps exactly k tokens. HF's TopKLogitsWarper keeps every token whose
// score equals the k-th largest (it masks scores < kth); the two differ only
// on exact ties at the boundary, where this keeps the lower ids (llama.cpp
// likewise keeps exactly k).
func selectTopK(h []cand, logits []float32, k int) []cand {
	h = h[:0]
	for i, v := range logits {
		if !(v > negInf) { // -Inf and NaN can never be drawn
			continue
		}
		c := cand{id: int32(i), logit: v}
		if len(h) < k {
			h = append(h, c)
			siftUp(h, len(h)-1)
			continue
		}
		// Ties with the root lose: the root has the lower id.
		if v <= h[0].logit {
			continue
		}
		h[0] = c
		siftDown(h, 0)
	}
	sortByRank(h)
	return h
}

func sortByRank(c []cand) { slices.SortFunc(c, byRank) }

func siftUp(h []cand, i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !worse(h[i], h[p]) {
			return
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func siftDown(h []cand, i int) {
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && worse(h[r], h[l]) {
			m = r
		}
		if !worse(h[m], h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}
