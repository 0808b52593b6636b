package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// SentencePiece encoding: normalization (normalizer.cc) and the BPE model
// (bpe_model.cc, plus the byte-fallback and unknown-merging rules of
// SentencePieceProcessor::PopulateSentencePieceText).

// spmNormalizer is SentencePiece's Normalizer without a character map:
// optional removal of leading, trailing and repeated spaces, the dummy "▁"
// prefix, and spaces escaped as "▁".
type spmNormalizer struct {
	addDummyPrefix, removeExtraWS, escapeWS bool
}

func (n *spmNormalizer) normalize(s string) string {
	if n.removeExtraWS {
		s = strings.TrimLeft(s, " ")
	}
	if s == "" {
		return ""
	}
	ws := "\u2581"
	if !n.escapeWS {
		ws = " "
	}
	var b strings.Builder
	b.Grow(len(s) + len(s)/4 + 3)
	if n.addDummyPrefix {
		b.WriteString(ws)
	}
	prevSpace := n.removeExtraWS
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' {
			if prevSpace {
				continue
			}
			b.WriteString(ws)
			prevSpace = n.removeExtraWS
			continue
		}
		b.WriteByte(s[i])
		prevSpace = false
	}
	out := b.String()
	if n.removeExtraWS {
		for strings.HasSuffix(out, ws) {
			out = out[:len(out)-len(ws)]
		}
	}
	return out
}

// spmModel is SentencePiece's BPE model: starting from characters (and whole
// user-defined pieces), repeatedly merge the adjacent pair whose concatenation
// is the highest-scoring piece (leftmost on ties).
type spmModel struct {
	pieces       map[string]int // NORMAL, USER_DEFINED, UNUSED: what merges may produce
	reserved     map[string]int // UNKNOWN, CONTROL, BYTE
	all          map[string]int
	scores       []float32
	types        []int8
	unkID        int
	byteFallback bool
	byteID       [256]int32
	userDefined  *tokenMatcher
	splitMeta    bool
	cache        wordCache
}

func (m *spmModel) vocab() map[string]int { return m.all }

// pieceToID is SentencePiece's PieceToId: reserved pieces first, unk if absent.
func (m *spmModel) pieceToID(s string) int {
	if id, ok := m.reserved[s]; ok {
		return id
	}
	if id, ok := m.pieces[s]; ok {
		return id
	}
	return m.unkID
}

type spmSymbol struct {
	start, end int
	prev, next int
	freeze     bool
}

type spmPair struct {
	score       float32
	left, right int
	size        int
}

// before orders the agenda: higher score first, then the leftmost pair.
func (a spmPair) before(b spmPair) bool {
	return a.score > b.score || (a.score == b.score && a.left < b.left)
}

// tokenize encodes the whole normalized text. When no piece can span a "▁"
// that follows another character (canSplitAtMeta's argument, applied to the
// mergeable pieces), the text is encoded piece by piece between those points:
// same result, much smaller heaps.
func (m *spmModel) tokenize(st *encState, word []byte, out []int) []int {
	prevUnk := false
	if m.splitMeta {
		start := 0
		for i := len(metaSymbol); i+len(metaSymbol) <= len(word); i++ {
			if word[i] == metaSymbol[0] && string(word[i:i+len(metaSymbol)]) == metaSymbol &&
				string(word[i-len(metaSymbol):i]) != metaSymbol {
				out = m.tokenizeSegment(st, word[start:i], out, &prevUnk)
				start = i
			}
		}
		word = word[start:]
	}
	return m.tokenizeSegment(st, word, out, &prevUnk)
}

// tokenizeSegment encodes one segment through the cache. The result depends on
// whether the previous segment ended with an unknown piece only when that
// flag is set, so only segments entered with it clear are cached (with the
// flag they leave behind as a last element).
func (m *spmModel) tokenizeSegment(st *encState, word []byte, out []int, unkState *bool) []int {
	cacheable := !*unkState && len(word) < maxCachedWord
	if cacheable {
		if ids, ok := m.cache.get(word); ok {
			for _, id := range ids[:len(ids)-1] {
				out = append(out, int(id))
			}
			*unkState = ids[len(ids)-1] != 0
			return out
		}
	}
	n := len(out)
	out = m.encodeSegment(st, word, out, unkState)
	if cacheable {
		ids := st.syms[:0]
		for _, id := range out[n:] {
			ids = append(ids, int32(id))
		}
		flag := int32(0)
		if *unkState {
			flag = 1
		}
		m.cache.put(word, append(ids, flag))
		st.syms = ids[:0]
	}
	return out
}

// encodeSegment is SentencePiece's BPE on one segment.
func (m *spmModel) encodeSegment(st *encState, word []byte, out []int, unkState *bool) []int {
	syms := st.spmSyms[:0]
	for i := 0; i < len(word); {
		n, freeze := 0, false
		if !m.userDefined.empty() {
			if t, end := longestMatch(m.userDefined, word, i); t != nil {
				n, freeze = end-i, true
			}
		}
		if n == 0 {
			_, n = utf8.DecodeRune(word[i:])
		}
		syms = append(syms, spmSymbol{start: i, end: i + n, prev: len(syms) - 1, next: len(syms) + 1, freeze: freeze})
		i += n
	}
	if len(syms) == 0 {
		return out
	}
	syms[len(syms)-1].next = -1

	agenda := st.spmAgenda[:0]
	var revMerge map[string][2]string
	push := func(left, right int) {
		if left < 0 || right < 0 || syms[left].freeze || syms[right].freeze {
			return
		}
		piece := word[syms[left].start:syms[right].end]
		id, ok := m.pieces[string(piece)]
		if !ok {
			return
		}
		agenda = heapPush(agenda, spmPair{score: m.scores[id], left: left, right: right, size: len(piece)})
		if m.types[id] == spmUnused {
			if revMerge == nil {
				revMerge = make(map[string][2]string)
			}
			revMerge[string(piece)] = [2]string{string(word[syms[left].start:syms[left].end]), string(word[syms[right].start:syms[right].end])}
		}
	}
	for i := 1; i < len(syms); i++ {
		push(i-1, i)
	}
	for len(agenda) > 0 {
		var top spmPair
		agenda, top = heapPop(agenda)
		l, r := &syms[top.left], &syms[top.right]
		if l.end == l.start || r.end == r.start || (l.end-l.start)+(r.end-r.start) != top.size {
			continue // stale
		}
		l.end = r.end
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = top.left
		}
		r.start = r.end // empty
		push(l.prev, top.left)
		push(top.left, l.next)
	}
	st.spmSyms, st.spmAgenda = syms[:0], agenda[:0]

	// Resegment UNUSED pieces into their parts, then apply byte fallback /
	// unknown-run merging as SentencePieceProcessor::PopulateSentencePieceText does.
	prevUnk := *unkState
	defer func() { *unkState = prevUnk }()
	var emit func(w string, id int)
	emit = func(w string, id int) {
		if m.types[id] == spmUnused {
			if parts, ok := revMerge[w]; ok {
				emit(parts[0], m.pieceToID(parts[0]))
				emit(parts[1], m.pieceToID(parts[1]))
				return
			}
		}
		isUnk := id == m.unkID
		switch {
		case isUnk && m.byteFallback:
			for k := 0; k < len(w); k++ {
				out = append(out, int(m.byteID[w[k]]))
			}
		case isUnk && prevUnk:
			// merged into the previous unknown piece
		default:
			out = append(out, id)
		}
		prevUnk = isUnk
	}
	for i := 0; i >= 0; i = syms[i].next {
		w := word[syms[i].start:syms[i].end]
		id := m.pieceToIDBytes(w)
		if m.types[id] == spmUnused || (id == m.unkID && m.byteFallback) {
			emit(string(w), id)
			continue
		}
		isUnk := id == m.unkID
		if !(isUnk && prevUnk) {
			out = append(out, id)
		}
		prevUnk = isUnk
	}
	return out
}

// pieceToIDBytes is pieceToID without converting w to a string.
func (m *spmModel) pieceToIDBytes(w []byte) int {
	if id, ok := m.reserved[string(w)]; ok {
		return id
	}
	if id, ok := m.pieces[string(w)]; ok {
		return id
	}
	return m.unkID
}

func heapPush(h []spmPair, x spmPair) []spmPair {
	h = append(h, x)
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if !h[i].before(h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	return h
}

func heapPop(h []spmPair) ([]spmPair, spmPair) {
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	for i := 0; ; {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		c := l
		if r := l + 1; r < len(h) && h[r].before(h[l]) {
			c = r
		}
		if !h[c].before(h[i]) {
			break
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
	return h, top
}
