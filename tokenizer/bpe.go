package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"unicode/utf8"
)

// model turns one pre-tokenized piece into ids.
type model interface {
	tokenize(st *encState, word []byte, out []int) []int
	// vocab is the model's token -> id table (added tokens not included).
	vocab() map[string]int
}

// bpeModel is HF tokenizers' BPE model: a word starts as its characters and
// the adjacent pair with the lowest merge rank is merged (leftmost first on
// ties) until no pair has a merge.
type bpeModel struct {
	vocabMap map[string]int
	// merges maps (left id << 32 | right id) to (rank << 32 | merged id).
	merges       map[uint64]uint64
	unkID        int // -1 when there is no unk token (unknown characters are dropped)
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool
	prefix       string // continuing_subword_prefix
	suffix       string // end_of_word_suffix
	// charID[r] is the id of the single-character token r (r < len), or -1.
	// Only used when there is no prefix/suffix.
	charID [0x800]int32
	// byteID[b] is the id of "<0xXX>" (byte fallback), or -1.
	byteID [256]int32
	cache  wordCache
}

const noMerge = math.MaxInt32

type bpeJSON struct {
	Type                    string            `json:"type"`
	Dropout                 *float64          `json:"dropout"`
	UnkToken                *string           `json:"unk_token"`
	ContinuingSubwordPrefix *string           `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string           `json:"end_of_word_suffix"`
	FuseUnk                 bool              `json:"fuse_unk"`
	ByteFallback            bool              `json:"byte_fallback"`
	IgnoreMerges            bool              `json:"ignore_merges"`
	Vocab                   map[string]int    `json:"vocab"`
	Merges                  []json.RawMessage `json:"merges"`
}

func parseModel(raw json.RawMessage) (model, error) {
	if isNull(raw) {
		return nil, errors.New("model is missing")
	}
	var v bpeJSON
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	switch v.Type {
	case "BPE":
	case "":
		// Old files omit the type; HF then tries the models in turn, and a
		// merges list means BPE.
		if v.Merges == nil {
			return nil, errors.New("model without a type (only BPE is supported)")
		}
	default:
		return nil, fmt.Errorf("unsupported model type %q (only BPE is supported)", v.Type)
	}
	return newBPE(&v)
}

func newBPE(v *bpeJSON) (*bpeModel, error) {
	if v.Vocab == nil {
		return nil, errors.New("model.vocab is missing")
	}
	m := &bpeModel{
		vocabMap:     v.Vocab,
		merges:       make(map[uint64]uint64, len(v.Merges)),
		unkID:        -1,
		fuseUnk:      v.FuseUnk,
		byteFallback: v.ByteFallback,
		ignoreMerges: v.IgnoreMerges,
	}
	for tok, id := range v.Vocab {
		if id < 0 || id > math.MaxInt32-1 {
			return nil, fmt.Errorf("model.vocab[%q]: id %d out of range", tok, id)
		}
	}
	if v.ContinuingSubwordPrefix != nil {
		m.prefix = *v.ContinuingSubwordPrefix
	}
	if v.EndOfWordSuffix != nil {
		m.suffix = *v.EndOfWordSuffix
	}
	if v.UnkToken != nil {
		// HF only fails when an unknown character actually shows up; we drop
		// such characters instead when the unk token is not in the vocab.
		if id, ok := v.Vocab[*v.UnkToken]; ok {
			m.unkID = id
		}
	}
	for i := range m.charID {
		m.charID[i] = -1
	}
	for tok, id := range v.Vocab {
		if r, n := utf8.DecodeRuneInString(tok); n == len(tok) && r < 0x800 && r != utf8.RuneError {
			m.charID[r] = int32(id)
		}
	}
	for b := range m.byteID {
		m.byteID[b] = -1
		if id, ok := v.Vocab[fmt.Sprintf("<0x%02X>", b)]; ok {
			m.byteID[b] = int32(id)
		}
	}
	for i, raw := range v.Merges {
		a, b, err := parseMerge(raw)
		if err != nil {
			return nil, fmt.Errorf("model.merges[%d]: %w", i, err)
		}
		aID, ok := v.Vocab[a]
		if !ok {
			return nil, fmt.Errorf("model.merges[%d]: token %q not in vocab", i, a)
		}
		bID, ok := v.Vocab[b]
		if !ok {
			return nil, fmt.Errorf("model.merges[%d]: token %q not in vocab", i, b)
		}
		// With a continuing_subword_prefix the right part loses its prefix
		// when merged (HF: format!("{a}{}", &b[prefix_len..])).
		merged := a + strings.TrimPrefix(b, m.prefix)
		newID, ok := v.Vocab[merged]
		if !ok {
			return nil, fmt.Errorf("model.merges[%d]: merged token %q not in vocab", i, merged)
		}
		// A repeated pair keeps its last rank, as HF's HashMap collect does.
		m.merges[pairKey(int32(aID), int32(bID))] = uint64(i)<<32 | uint64(uint32(newID))
	}
	m.cache.init(50000)
	return m, nil
}

// parseMerge accepts both serializations: "a b" and ["a", "b"].
func parseMerge(raw json.RawMessage) (string, string, error) {
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		// Fast path for the common case without escapes.
		if len(raw) >= 2 && raw[len(raw)-1] == '"' && !containsByte(raw[1:len(raw)-1], '\\') && utf8.Valid(raw[1:len(raw)-1]) {
			s = string(raw[1 : len(raw)-1])
		} else if err := json.Unmarshal(raw, &s); err != nil {
			return "", "", err
		}
		a, b, ok := strings.Cut(s, " ")
		if !ok || strings.Contains(b, " ") {
			return "", "", fmt.Errorf("merge %q is not two tokens separated by one space", s)
		}
		return a, b, nil
	}
	var pair []string
	if err := json.Unmarshal(raw, &pair); err != nil {
		return "", "", err
	}
	if len(pair) != 2 {
		return "", "", fmt.Errorf("merge has %d parts, want 2", len(pair))
	}
	return pair[0], pair[1], nil
}

func containsByte(b []byte, c byte) bool {
	for _, x := range b {
		if x == c {
			return true
		}
	}
	return false
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

func (m *bpeModel) vocab() map[string]int { return m.vocabMap }

// lookup returns the rank and result of merging a and b (noMerge if none).
func (m *bpeModel) lookup(a, b int32) (int32, int32) {
	v, ok := m.merges[pairKey(a, b)]
	if !ok {
		return noMerge, -1
	}
	return int32(v >> 32), int32(uint32(v))
}

// maxCachedWord mirrors HF's BPE cache, which skips words of 256+ bytes.
const maxCachedWord = 256

func (m *bpeModel) tokenize(st *encState, word []byte, out []int) []int {
	if len(word) == 0 {
		return out
	}
	// ignore_merges (Llama 3, NeMo): a piece that is itself a token is emitted
	// whole, even if the merges would have produced something else.
	if m.ignoreMerges {
		if id, ok := m.vocabMap[string(word)]; ok {
			return append(out, id)
		}
	}
	cacheable := len(word) < maxCachedWord
	if cacheable {
		if ids, ok := m.cache.get(word); ok {
			for _, id := range ids {
				out = append(out, int(id))
			}
			return out
		}
	}
	syms := m.initialSymbols(st, word)
	if len(syms) > 1 {
		if len(syms) <= 48 {
			syms = m.mergeSmall(st, syms)
		} else {
			syms = m.mergeHeap(st, syms)
		}
	}
	st.syms = syms[:0]
	for _, id := range syms {
		out = append(out, int(id))
	}
	if cacheable {
		m.cache.put(word, syms)
	}
	return out
}

// initialSymbols splits word into character tokens, following HF
// BPE::merge_word: characters missing from the vocabulary become their
// "<0xXX>" byte tokens (byte_fallback), else the unk token (consecutive ones
// fused with fuse_unk), else they are dropped.
func (m *bpeModel) initialSymbols(st *encState, word []byte) []int32 {
	syms := st.syms[:0]
	plain := m.prefix == "" && m.suffix == ""
	unk, unkPending := int32(-1), false
	for i := 0; i < len(word); {
		r, n := runeAt(word, i)
		id := int32(-1)
		var s string
		if plain {
			if r < 0x800 {
				id = m.charID[r]
			} else if v, ok := m.vocabMap[string(word[i:i+n])]; ok {
				id = int32(v)
			}
		} else {
			s = string(word[i : i+n])
			if i > 0 {
				s = m.prefix + s
			}
			if i+n == len(word) {
				s += m.suffix
			}
			if v, ok := m.vocabMap[s]; ok {
				id = int32(v)
			}
		}
		if id >= 0 {
			if unkPending {
				syms = append(syms, unk)
				unkPending = false
			}
			syms = append(syms, id)
			i += n
			continue
		}
		if m.byteFallback {
			if plain {
				s = string(word[i : i+n])
			}
			ok := true
			for k := 0; k < len(s); k++ {
				if m.byteID[s[k]] < 0 {
					ok = false
					break
				}
			}
			if ok {
				// As in HF, a pending unk is not flushed before byte tokens.
				for k := 0; k < len(s); k++ {
					syms = append(syms, m.byteID[s[k]])
				}
				i += n
				continue
			}
		}
		if m.unkID >= 0 {
			if unkPending && !m.fuseUnk {
				syms = append(syms, unk)
			}
			unk, unkPending = int32(m.unkID), true
		}
		i += n
	}
	if unkPending {
		syms = append(syms, unk)
	}
	return syms
}

// mergeSmall is the merge loop for short words: pair ranks in an array,
// linear search for the lowest (leftmost on ties), neighbours recomputed after
// each merge. Same result as HF's priority queue keyed by (rank, position).
func (m *bpeModel) mergeSmall(st *encState, syms []int32) []int32 {
	ranks, news := st.ranks[:0], st.news[:0]
	for i := 0; i+1 < len(syms); i++ {
		r, nid := m.lookup(syms[i], syms[i+1])
		ranks = append(ranks, r)
		news = append(news, nid)
	}
	for {
		best, bestRank := -1, int32(noMerge)
		for i, r := range ranks {
			if r < bestRank {
				best, bestRank = i, r
			}
		}
		if best < 0 {
			break
		}
		syms[best] = news[best]
		syms = append(syms[:best+1], syms[best+2:]...)
		ranks = append(ranks[:best], ranks[best+1:]...)
		news = append(news[:best], news[best+1:]...)
		if best > 0 {
			ranks[best-1], news[best-1] = m.lookup(syms[best-1], syms[best])
		}
		if best < len(syms)-1 {
			ranks[best], news[best] = m.lookup(syms[best], syms[best+1])
		}
	}
	st.ranks, st.news = ranks, news
	return syms
}

// mergeHeap is the merge loop for long words (e.g. a whole paragraph when
// there is no pre-tokenizer): a linked list of symbols and a min-heap of
// (rank, position) with lazy invalidation, as in HF's Word::merge_all.
func (m *bpeModel) mergeHeap(st *encState, syms []int32) []int32 {
	n := len(syms)
	prev := growInt32(st.prev, n)
	next := growInt32(st.next, n)
	for i := range n {
		prev[i] = int32(i - 1)
		next[i] = int32(i + 1)
	}
	next[n-1] = -1
	h := minHeap(st.heap[:0])
	for i := 0; i+1 < n; i++ {
		if r, _ := m.lookup(syms[i], syms[i+1]); r != noMerge {
			h.push(uint64(r)<<32 | uint64(i))
		}
	}
	for len(h) > 0 {
		top := h.pop()
		rank, pos := int32(top>>32), int32(uint32(top))
		if syms[pos] < 0 {
			continue // merged into its left neighbour
		}
		nx := next[pos]
		if nx < 0 {
			continue
		}
		r, nid := m.lookup(syms[pos], syms[nx])
		if r != rank {
			continue // stale: the pair at pos changed since it was queued
		}
		syms[pos] = nid
		syms[nx] = -1
		nn := next[nx]
		next[pos] = nn
		if nn >= 0 {
			prev[nn] = pos
		}
		if p := prev[pos]; p >= 0 {
			if r, _ := m.lookup(syms[p], syms[pos]); r != noMerge {
				h.push(uint64(r)<<32 | uint64(p))
			}
		}
		if nn >= 0 {
			if r, _ := m.lookup(syms[pos], syms[nn]); r != noMerge {
				h.push(uint64(r)<<32 | uint64(pos))
			}
		}
	}
	st.heap, st.prev, st.next = h[:0], prev, next
	k := 0
	for _, id := range syms {
		if id >= 0 {
			syms[k] = id
			k++
		}
	}
	return syms[:k]
}

func growInt32(b []int32, n int) []int32 {
	if cap(b) < n {
		return make([]int32, n)
	}
	return b[:n]
}

// minHeap is a binary min-heap of packed (priority << 32 | position) keys.
type minHeap []uint64

func (h *minHeap) push(x uint64) {
	a := append(*h, x)
	i := len(a) - 1
	for i > 0 {
		p := (i - 1) / 2
		if a[p] <= a[i] {
			break
		}
		a[p], a[i] = a[i], a[p]
		i = p
	}
	*h = a
}

func (h *minHeap) pop() uint64 {
	a := *h
	top := a[0]
	last := len(a) - 1
	a[0] = a[last]
	a = a[:last]
	i := 0
	for {
		l := 2*i + 1
		if l >= len(a) {
			break
		}
		c := l
		if r := l + 1; r < len(a) && a[r] < a[l] {
			c = r
		}
		if a[i] <= a[c] {
			break
		}
		a[i], a[c] = a[c], a[i]
		i = c
	}
	*h = a
	return top
}

// wordCache memoizes word -> ids. Safe for concurrent use; it is simply
// cleared when full, which keeps memory bounded and the hot words hot.
type wordCache struct {
	mu  sync.RWMutex
	m   map[string][]int32
	max int
}

func (c *wordCache) init(max int) {
	c.m = make(map[string][]int32)
	c.max = max
}

func (c *wordCache) get(word []byte) ([]int32, bool) {
	c.mu.RLock()
	ids, ok := c.m[string(word)]
	c.mu.RUnlock()
	return ids, ok
}

func (c *wordCache) put(word []byte, ids []int32) {
	cp := make([]int32, len(ids))
	copy(cp, ids)
	c.mu.Lock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[string(word)] = cp
	c.mu.Unlock()
}
