package engine

// fairQueue holds waiting sequences in one FIFO per adapter and hands them
// out round-robin across adapters: a burst of requests for one adapter
// cannot starve the others, and within an adapter order is kept.
type fairQueue struct {
	fifos map[string][]*sequence
	ring  []string // adapters with waiting sequences, in turn order
	next  int      // ring index of the adapter whose turn it is
	n     int
}

func newFairQueue() *fairQueue { return &fairQueue{fifos: map[string][]*sequence{}} }

func (q *fairQueue) len() int { return q.n }

func (q *fairQueue) push(s *sequence) {
	k := s.req.Adapter
	if len(q.fifos[k]) == 0 {
		// A newly waiting adapter goes last in the current round.
		q.ring = append(q.ring, "")
		copy(q.ring[q.next+1:], q.ring[q.next:])
		q.ring[q.next] = k
		q.next++
		if q.next >= len(q.ring) {
			q.next = 0
		}
	}
	q.fifos[k] = append(q.fifos[k], s)
	q.n++
}

// peek returns the sequence whose turn it is, or nil.
func (q *fairQueue) peek() *sequence {
	if q.n == 0 {
		return nil
	}
	return q.fifos[q.ring[q.next]][0]
}

// pop removes and returns the sequence whose turn it is, and passes the turn on.
func (q *fairQueue) pop() *sequence {
	if q.n == 0 {
		return nil
	}
	k := q.ring[q.next]
	f := q.fifos[k]
	s := f[0]
	f[0] = nil
	f = f[1:]
	q.n--
	if len(f) == 0 {
		delete(q.fifos, k)
		q.ring = append(q.ring[:q.next], q.ring[q.next+1:]...)
	} else {
		q.fifos[k] = f
		q.next++
	}
	if q.next >= len(q.ring) {
		q.next = 0
	}
	return s
}

// removeIf drops the sequences for which drop is true and returns them.
func (q *fairQueue) removeIf(drop func(*sequence) bool) []*sequence {
	var out []*sequence
	for i := 0; i < len(q.ring); {
		k := q.ring[i]
		f := q.fifos[k]
		kept := f[:0]
		for _, s := range f {
			if drop(s) {
				out = append(out, s)
			} else {
				kept = append(kept, s)
			}
		}
		clear(f[len(kept):])
		q.n -= len(f) - len(kept)
		if len(kept) > 0 {
			q.fifos[k] = kept
			i++
			continue
		}
		delete(q.fifos, k)
		q.ring = append(q.ring[:i], q.ring[i+1:]...)
		if q.next > i {
			q.next--
		}
	}
	if q.next >= len(q.ring) {
		q.next = 0
	}
	return out
}
