// Package tokenizer is a pure-Go implementation of Hugging Face tokenizers
// (tokenizer.json: byte-level and SentencePiece-style BPE with their
// normalizers, pre-tokenizers, post-processors, decoders and added tokens) and
// of SentencePiece BPE .model files, written to reproduce the reference
// implementations id for id (see testdata/tokenizers).
//
// The encode pipeline follows HF tokenizers:
//
//	text -> added tokens found in the raw text -> normalizer (each stretch
//	between added tokens) -> added tokens with normalized=true -> pre-tokenizer
//	-> model (BPE) per piece -> post-processor (when addSpecial)
//
// and decoding maps ids to tokens and runs the decoder chain (decode.go).
// A Tokenizer is immutable after loading and safe for concurrent use.
//
// Supported tokenizer.json components (anything else is a load error):
//
//   - model: BPE (vocab; merges as "a b" or ["a", "b"]; ignore_merges,
//     byte_fallback, unk_token, fuse_unk, continuing_subword_prefix,
//     end_of_word_suffix; dropout is ignored)
//   - normalizer: NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents,
//     Prepend, Replace, ByteLevel, BertNormalizer, Sequence
//   - pre_tokenizer: ByteLevel, Split (String or Regex, every behavior,
//     invert), Metaspace, Whitespace, WhitespaceSplit, Digits, Punctuation,
//     CharDelimiterSplit, Sequence
//   - post_processor: TemplateProcessing (single), ByteLevel, BertProcessing,
//     RobertaProcessing, Sequence
//   - decoder: ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace,
//     WordPiece, BPEDecoder, Sequence
//
// Split regexes of GPT-2, Llama 3, Qwen2/3 and Mistral NeMo run on hand-written
// matchers (pattern.go); other regexes on regexp2 (regexp2.go).
// SentencePiece .model files are supported for the BPE model type with the
// identity normalization (spm*.go).
package tokenizer

import (
	"sync"
)

// Tokenizer encodes text to ids and decodes ids to text.
type Tokenizer struct {
	name       string // where it was loaded from, for messages
	normalizer normalizer
	pre        preTokenizer
	model      model
	post       postProcessor
	decoder    []decoderStep
	// joinDecode: no decoder in tokenizer.json; HF joins tokens with " ".
	joinDecode bool

	rawAdded  *tokenMatcher // added tokens matched in the raw text
	normAdded *tokenMatcher // added tokens matched after normalization
	added     map[string]int

	idToToken []string
	hasID     []bool
	special   []bool

	cleanUp      bool
	bos, eos     int // -1 when unknown
	chatTemplate string
	// fromSPM: loaded from a .model, whose special tokens come from
	// tokenizer_config.json's add_bos_token/add_eos_token (as transformers'
	// LlamaTokenizer does) rather than from a post-processor.
	fromSPM bool
}

// DecodeOptions controls Decode.
type DecodeOptions struct {
	// SkipSpecial drops special tokens (transformers' skip_special_tokens).
	SkipSpecial bool
	// CleanUp applies transformers' clean_up_tokenization (" ." -> "." etc.)
	// to the decoded text; pass t.CleanUpSpaces() to decode as transformers does.
	CleanUp bool
}

// encState is the per-call scratch space of Encode (pooled).
type encState struct {
	arena  []byte
	pieces []piece
	ranges [][2]int
	parts  []part
	parts2 []part
	segs   []segment
	segs2  []segment
	// BPE
	syms, ranks, news, prev, next []int32
	heap                          []uint64
	// SentencePiece
	spmSyms   []spmSymbol
	spmAgenda []spmPair
}

var statePool = sync.Pool{New: func() any { return new(encState) }}

// Encode returns the ids of text. With addSpecial the post-processor's special
// tokens are added (e.g. BOS for Llama 2), as transformers' add_special_tokens.
// Special-token text inside text (e.g. "<|im_start|>") is always recognised.
// Invalid UTF-8 in text is first replaced by U+FFFD.
func (t *Tokenizer) Encode(text string, addSpecial bool) []int {
	text = toValidUTF8(text)
	st := statePool.Get().(*encState)
	defer statePool.Put(st)
	ids := make([]int, 0, len(text)/3+4)
	if addSpecial {
		ids = append(ids, t.post.prefix...)
	}
	if t.rawAdded.empty() {
		ids = t.encodeNormalized(st, text, true, ids)
	} else {
		segs := t.rawAdded.split(text, st.segs[:0])
		st.segs = segs[:0]
		for _, sg := range segs {
			if sg.token != nil {
				ids = append(ids, sg.token.ID)
				continue
			}
			ids = t.encodeNormalized(st, text[sg.start:sg.end], sg.start == 0, ids)
		}
	}
	if addSpecial {
		ids = append(ids, t.post.suffix...)
	}
	return ids
}

// encodeNormalized normalizes one stretch of text between raw added tokens
// and encodes it.
func (t *Tokenizer) encodeNormalized(st *encState, s string, atStart bool, ids []int) []int {
	if t.normalizer != nil {
		s = t.normalizer.normalize(s)
	}
	if t.normAdded.empty() {
		return t.encodePieces(st, s, atStart, ids)
	}
	segs := t.normAdded.split(s, st.segs2[:0])
	st.segs2 = segs[:0]
	for _, sg := range segs {
		if sg.token != nil {
			ids = append(ids, sg.token.ID)
			continue
		}
		ids = t.encodePieces(st, s[sg.start:sg.end], atStart && sg.start == 0, ids)
	}
	return ids
}

// encodePieces pre-tokenizes normalized text and runs the model on each piece.
func (t *Tokenizer) encodePieces(st *encState, s string, atStart bool, ids []int) []int {
	if s == "" {
		return ids
	}
	st.arena = append(st.arena[:0], s...)
	p := piece{b: st.arena[:len(s):len(s)], atStart: atStart}
	pieces := st.pieces[:0]
	if t.pre != nil {
		pieces = t.pre.split(st, p, pieces)
	} else {
		pieces = append(pieces, p)
	}
	for _, pc := range pieces {
		ids = t.model.tokenize(st, pc.b, ids)
	}
	clear(pieces) // drop references into the arena
	st.pieces = pieces[:0]
	return ids
}

// Decode turns ids into text with the tokenizer's decoder. Unknown ids are skipped.
func (t *Tokenizer) Decode(ids []int, opts DecodeOptions) string {
	k := &sink{joinSpace: t.joinDecode}
	ch := t.newChain(k, false)
	for _, id := range ids {
		if tok, ok := t.decodable(id, opts.SkipSpecial); ok {
			ch.tok(id, tok)
		}
	}
	ch.end()
	s := string(k.buf)
	if opts.CleanUp {
		s = cleanUpTokenization(s)
	}
	return s
}

// newChain instantiates the decoder stages in front of k. Without stream the
// output is only read at the end, which lets ByteLevel convert all bytes at
// once (same result: the lossy UTF-8 conversion is applied left to right).
func (t *Tokenizer) newChain(k *sink, stream bool) stage {
	var s stage = k
	for i := len(t.decoder) - 1; i >= 0; i-- {
		s = t.decoder[i].newStage(s)
		if bl, ok := s.(*byteLevelStage); ok && !stream {
			bl.batch = true
		}
	}
	return s
}

// decodable returns the token text of id unless it is unknown or a skipped special token.
func (t *Tokenizer) decodable(id int, skipSpecial bool) (string, bool) {
	if id < 0 || id >= len(t.idToToken) || !t.hasID[id] {
		return "", false
	}
	if skipSpecial && t.special[id] {
		return "", false
	}
	return t.idToToken[id], true
}

// CleanUpSpaces reports tokenizer_config.json's clean_up_tokenization_spaces
// (false when absent): whether transformers would apply DecodeOptions.CleanUp.
func (t *Tokenizer) CleanUpSpaces() bool { return t.cleanUp }

// VocabSize is the largest id of the vocabulary or the added tokens, plus one.
func (t *Tokenizer) VocabSize() int { return len(t.idToToken) }

// TokenToID looks a token up, added tokens first (as HF does).
func (t *Tokenizer) TokenToID(tok string) (int, bool) {
	if id, ok := t.added[tok]; ok {
		return id, true
	}
	id, ok := t.model.vocab()[tok]
	return id, ok
}

// IDToToken returns the token string of id (added tokens first).
func (t *Tokenizer) IDToToken(id int) (string, bool) {
	if id < 0 || id >= len(t.idToToken) || !t.hasID[id] {
		return "", false
	}
	return t.idToToken[id], true
}

// IsSpecial reports whether id is a special token (skipped by DecodeOptions.SkipSpecial).
func (t *Tokenizer) IsSpecial(id int) bool {
	return id >= 0 && id < len(t.special) && t.special[id]
}

// BOS is the beginning-of-sequence id: tokenizer_config.json's bos_token, else
// the first token the post-processor prepends; for a SentencePiece model its
// bos piece.
func (t *Tokenizer) BOS() (int, bool) { return t.bos, t.bos >= 0 }

// EOS is the end-of-sequence id (tokenizer_config.json eos_token; SentencePiece eos piece).
func (t *Tokenizer) EOS() (int, bool) { return t.eos, t.eos >= 0 }

// AddsBOS reports whether Encode(text, true) starts with BOS.
func (t *Tokenizer) AddsBOS() bool {
	return t.bos >= 0 && len(t.post.prefix) > 0 && t.post.prefix[0] == t.bos
}

// ChatTemplate is tokenizer_config.json's chat_template ("" when absent; the
// "default" entry when it is a list of named templates).
func (t *Tokenizer) ChatTemplate() string { return t.chatTemplate }

// String names the tokenizer's source.
func (t *Tokenizer) String() string { return "tokenizer " + t.name }
