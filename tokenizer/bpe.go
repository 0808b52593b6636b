package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
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
	merges       *mergeTable
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
	// splitMeta: a long word may be cut before each "▁" that follows another
	// character, because no merge can cross that point (see canSplitAtMeta).
	splitMeta bool
}

const metaSymbol = "\u2581" // ▁, SentencePiece's escaped space

const noMerge = math.MaxInt32

// modelJSON is tokenizer.json's "model". Vocab and merges stay raw until the
// type is known (they are decoded by the fast scanners in jsonfast.go).
type modelJSON struct {
	Type                    string          `json:"type"`
	Dropout                 *float64        `json:"dropout"` // ignored: inference never drops merges
	UnkToken                *string         `json:"unk_token"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
	FuseUnk                 bool            `json:"fuse_unk"`
	ByteFallback            bool            `json:"byte_fallback"`
	IgnoreMerges            bool            `json:"ignore_merges"`
	Vocab                   json.RawMessage `json:"vocab"`
	Merges                  json.RawMessage `json:"merges"`
}

func parseModel(v *modelJSON) (model, error) {
	if v == nil {
		return nil, errors.New("model: missing")
	}
	switch v.Type {
	case "BPE":
	case "":
		// Old files omit the type; HF then tries the models in turn, and a
		// merges list means BPE.
		if isNull(v.Merges) {
			return nil, errors.New("model: no type (only BPE is supported)")
		}
	default:
		return nil, fmt.Errorf("model: unsupported model type %q (only BPE is supported)", v.Type)
	}
	var vocab vocabJSON
	if err := vocab.UnmarshalJSON(v.Vocab); err != nil {
		return nil, err
	}
	var merges mergesJSON
	if err := merges.UnmarshalJSON(v.Merges); err != nil {
		return nil, err
	}
	return newBPE(v, vocab, merges)
}

func newBPE(v *modelJSON, vocab map[string]int, merges [][2]string) (*bpeModel, error) {
	if vocab == nil {
		return nil, errors.New("model.vocab: missing")
	}
	m := &bpeModel{
		vocabMap:     vocab,
		merges:       newMergeTable(len(merges)),
		unkID:        -1,
		fuseUnk:      v.FuseUnk,
		byteFallback: v.ByteFallback,
		ignoreMerges: v.IgnoreMerges,
	}
	for tok, id := range vocab {
		if id < 0 || id >= maxID {
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
		if id, ok := vocab[*v.UnkToken]; ok {
			m.unkID = id
		}
	}
	for i := range m.charID {
		m.charID[i] = -1
	}
	for tok, id := range vocab {
		if r, n := utf8.DecodeRuneInString(tok); n == len(tok) && r < 0x800 && r != utf8.RuneError {
			m.charID[r] = int32(id)
		}
	}
	for b := range m.byteID {
		m.byteID[b] = -1
		if id, ok := vocab[fmt.Sprintf("<0x%02X>", b)]; ok {
			m.byteID[b] = int32(id)
		}
	}
	for i, mg := range merges {
		a, b := mg[0], mg[1]
		aID, ok := vocab[a]
		if !ok {
			return nil, fmt.Errorf("model.merges[%d]: token %q not in vocab", i, a)
		}
		bID, ok := vocab[b]
		if !ok {
			return nil, fmt.Errorf("model.merges[%d]: token %q not in vocab", i, b)
		}
		// With a continuing_subword_prefix the right part loses its prefix
		// when merged (HF: format!("{a}{}", &b[prefix_len..])).
		merged := a + strings.TrimPrefix(b, m.prefix)
		newID, ok := vocab[merged]
		if !ok {
			return nil, fmt.Errorf("model.merges[%d]: merged token %q not in vocab", i, merged)
		}
		// A repeated pair keeps its last rank, as HF's HashMap collect does.
		m.merges.put(pairKey(int32(aID), int32(bID)), uint64(i)<<32|uint64(uint32(newID)))
	}
	m.cache.init(50000)
	m.splitMeta = canSplitAtMeta(m)
	return m, nil
}

// canSplitAtMeta reports whether BPE over a whole "▁"-escaped text (Llama 2 /
// Mistral layouts have no pre-tokenizer, so a paragraph is one word) gives the
// same ids as BPE over its pieces cut before every "▁" that follows a
// character other than "▁". Merges only ever produce vocabulary tokens, so if
// no token contains such an "x▁" no merge can join the two sides; "▁" must be
// a token itself so that unknown-character runs cannot span the cut either.
// ignore_merges and subword prefixes/suffixes change the per-word rules, so
// they rule the shortcut out. Splitting lets the word cache work and avoids a
// heap over thousands of symbols.
func canSplitAtMeta(m *bpeModel) bool {
	if m.ignoreMerges || m.prefix != "" || m.suffix != "" {
		return false
	}
	return canSplitAtMetaVocab(m.vocabMap)
}

// canSplitAtMetaVocab is the vocabulary condition of canSplitAtMeta.
func canSplitAtMetaVocab(vocab map[string]int) bool {
	if _, ok := vocab[metaSymbol]; !ok {
		return false
	}
	for tok := range vocab {
		for i := strings.Index(tok, metaSymbol); i >= 0 && i < len(tok); {
			if i > 0 && !strings.HasSuffix(tok[:i], metaSymbol) {
				return false
			}
			k := strings.Index(tok[i+len(metaSymbol):], metaSymbol)
			if k < 0 {
				break
			}
			i += len(metaSymbol) + k
		}
	}
	return true
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

func (m *bpeModel) vocab() map[string]int { return m.vocabMap }

// lookup returns the rank and result of merging a and b (noMerge if none).
func (m *bpeModel) lookup(a, b int32) (int32, int32) {
	v, ok := m.merges.get(pairKey(a, b))
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
	if m.splitMeta && len(word) >= maxCachedWord {
		start := 0
		for i := len(metaSymbol); i+len(metaSymbol) <= len(word); i++ {
			if word[i] == metaSymbol[0] && string(word[i:i+len(metaSymbol)]) == metaSymbol &&
				string(word[i-len(metaSymbol):i]) != metaSymbol {
				out = m.tokenizeWord(st, word[start:i], out)
				start = i
			}
		}
		return m.tokenizeWord(st, word[start:], out)
	}
	return m.tokenizeWord(st, word, out)
}

// tokenizeWord runs BPE on one word, through the cache.
func (m *bpeModel) tokenizeWord(st *encState, word []byte, out []int) []int {
	if len(word) == 0 {
		return out
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
			h = append(h, uint64(r)<<32|uint64(i))
		}
	}
	h.heapify()
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
