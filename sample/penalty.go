package sample

// applyPenalty is HF's RepetitionPenaltyLogitsProcessor: it gathers the
// scores of the history ids and scatters back score/penalty (score > 0) or
// score*penalty (otherwise), so an id repeated in the history is penalised
// once. The seen stamps make that de-duplication allocation-free: seen[id] ==
// gen means id was already penalised in this call.
//
// Ids outside [0, len(logits)) are ignored (HF would raise on the gather);
// a prompt may legitimately hold ids the output head does not cover.
func (s *Sampler) applyPenalty(logits []float32, history []int) {
	if !s.p.penaltyOn() || len(history) == 0 {
		return
	}
	if len(s.seen) < len(logits) {
		s.seen = make([]uint32, len(logits))
		s.gen = 0
	}
	s.gen++
	if s.gen == 0 { // wrapped after 2^32 calls: old stamps could collide
		clear(s.seen)
		s.gen = 1
	}
	pen := s.p.RepetitionPenalty
	for _, id := range history {
		if id < 0 || id >= len(logits) || s.seen[id] == s.gen {
			continue
		}
		s.seen[id] = s.gen
		if v := logits[id]; v > 0 {
			logits[id] = v / pen
		} else {
			logits[id] = v * pen
		}
	}
}
