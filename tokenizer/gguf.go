package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// GGUF vocabularies (tokenizer.ggml.* metadata of llama.cpp model files).
//
// The tokenizer package does not read GGUF files itself (format/gguf is a
// package of the same layer); model/llama fills a GGUFVocab from a file's
// metadata and FromGGUFVocab builds the tokenizer:
//
//   - tokenizer.ggml.model "llama": SentencePiece BPE (Llama 1/2, Mistral 7B,
//     TinyLlama): pieces merged by score, <0xXX> byte fallback, the dummy
//     "▁" prefix. It runs on the same code as SentencePiece .model files.
//   - tokenizer.ggml.model "gpt2": byte-level BPE with ranked merges; the
//     pre-tokenizer (split regex) is named by tokenizer.ggml.pre and mapped to
//     the components the model's Hugging Face tokenizer.json uses (ggufPres).
//
// Control tokens (and the unknown token) are recognised when their text
// appears in the input, as tokenizer.json's special added tokens are and as
// llama.cpp does with parse_special (what its server uses for prompts), unless
// GGUFVocab.LiteralSpecial asks for SentencePiece's literal reading.
// User-defined tokens are always recognised.

// Token types of tokenizer.ggml.token_type (llama.cpp's llama_token_type,
// the same numbers as SentencePiece piece types).
const (
	GGUFTokenUndefined   = 0 // treated as normal
	GGUFTokenNormal      = 1
	GGUFTokenUnknown     = 2
	GGUFTokenControl     = 3 // special tokens (<s>, <|im_end|>, ...)
	GGUFTokenUserDefined = 4 // added tokens that are not special
	GGUFTokenUnused      = 5
	GGUFTokenByte        = 6 // <0xXX> byte-fallback pieces
)

// GGUFVocab is a vocabulary as a GGUF file stores it, in plain values.
// Ids absent from the file are -1.
type GGUFVocab struct {
	// Name says where the vocabulary comes from (e.g. the file path), for
	// messages and Tokenizer.String.
	Name string
	// Model is tokenizer.ggml.model: "llama" or "gpt2".
	Model string
	// Pre is tokenizer.ggml.pre, the pre-tokenizer of a "gpt2" vocabulary
	// ("gpt-2", "llama-bpe", "qwen2", "smollm", "tekken", ...).
	Pre    string
	Tokens []string  // tokenizer.ggml.tokens: the token of every id
	Scores []float32 // tokenizer.ggml.scores (needed by "llama"); nil or one per token
	Types  []int32   // tokenizer.ggml.token_type (GGUFToken*); nil (all normal) or one per token
	// Merges is tokenizer.ggml.merges ("a b", by rank; needed by "gpt2").
	Merges []string
	// BOS, EOS and UNK are tokenizer.ggml.{bos,eos,unknown}_token_id, -1 when absent.
	BOS, EOS, UNK int
	// AddBOS and AddEOS are tokenizer.ggml.add_{bos,eos}_token: whether
	// Encode(text, true) starts with BOS / ends with EOS. (When the keys are
	// absent llama.cpp adds BOS for "llama" vocabularies and for the Llama 3
	// and Tekken pre-tokenizers; the caller applies that default.)
	AddBOS, AddEOS bool
	// NoSpacePrefix is tokenizer.ggml.add_space_prefix = false: a "llama"
	// vocabulary then gets no dummy "▁" in front of the text.
	NoSpacePrefix bool
	// LiteralSpecial reads control-token text in the input literally, as
	// SentencePiece (and llama.cpp with parse_special = false) do, instead of
	// encoding "<s>" as the BOS id.
	LiteralSpecial bool
	// ChatTemplate is tokenizer.chat_template.
	ChatTemplate string
}

// ggufPre is what a tokenizer.ggml.pre value stands for: the normalizer and
// pre-tokenizer of the Hugging Face tokenizer.json the vocabulary was
// converted from, and its BPE ignore_merges flag.
type ggufPre struct {
	normalizer   any // a tokenizer.json "normalizer" (nil: none)
	pre          any // a tokenizer.json "pre_tokenizer"
	ignoreMerges bool
	addBOS       bool // llama.cpp's add_bos default for this pre-tokenizer
}

func splitThenByteLevel(regex string) any {
	return map[string]any{"type": "Sequence", "pretokenizers": []any{
		map[string]any{"type": "Split", "pattern": map[string]any{"Regex": regex}, "behavior": "Isolated", "invert": false},
		map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
	}}
}

var byteLevelGPT2 = map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}

// ggufPres maps the tokenizer.ggml.pre values of llama.cpp's llama-vocab.cpp
// whose models lorakit runs to their tokenizer.json components; the regexes
// are the ones pattern.go matches natively.
var ggufPres = map[string]ggufPre{
	// GPT-2 and models that reuse its tokenizer (tiny-brown, Phi-2).
	"gpt-2": {pre: byteLevelGPT2},
	"phi-2": {pre: byteLevelGPT2},
	// Llama 3.x.
	"llama-bpe": {pre: splitThenByteLevel(reLlama3), ignoreMerges: true, addBOS: true},
	"llama3":    {pre: splitThenByteLevel(reLlama3), ignoreMerges: true, addBOS: true},
	"llama-v3":  {pre: splitThenByteLevel(reLlama3), ignoreMerges: true, addBOS: true},
	// Qwen2, Qwen2.5, Qwen3 (NFC-normalized, single digits).
	"qwen2":            {normalizer: map[string]any{"type": "NFC"}, pre: splitThenByteLevel(reQwen)},
	"deepseek-r1-qwen": {normalizer: map[string]any{"type": "NFC"}, pre: splitThenByteLevel(reQwen)},
	// SmolLM / SmolLM2: single digits, then GPT-2's ByteLevel.
	"smollm": {pre: map[string]any{"type": "Sequence", "pretokenizers": []any{
		map[string]any{"type": "Digits", "individual_digits": true}, byteLevelGPT2,
	}}},
	// Mistral NeMo "Tekken".
	"tekken": {pre: splitThenByteLevel(reNemo), ignoreMerges: true, addBOS: true},
}

// GGUFDefaultAddBOS is llama.cpp's add_bos default for a vocabulary whose
// file has no tokenizer.ggml.add_bos_token: true for SentencePiece ("llama")
// vocabularies and for the Llama 3 and Tekken pre-tokenizers.
func GGUFDefaultAddBOS(model, pre string) bool {
	if model == "llama" {
		return true
	}
	return model == "gpt2" && ggufPres[pre].addBOS
}

func ggufPreNames() string {
	names := make([]string, 0, len(ggufPres))
	for n := range ggufPres {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// FromGGUFVocab builds a tokenizer from a GGUF vocabulary.
func FromGGUFVocab(v GGUFVocab) (*Tokenizer, error) {
	name := v.Name
	if name == "" {
		name = "GGUF vocabulary"
	}
	t, err := fromGGUFVocab(v, name)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", name, err)
	}
	return t, nil
}

func fromGGUFVocab(v GGUFVocab, name string) (*Tokenizer, error) {
	n := len(v.Tokens)
	if n == 0 {
		return nil, errors.New("tokenizer.ggml.tokens is empty")
	}
	if n >= maxID {
		return nil, fmt.Errorf("tokenizer.ggml.tokens has %d tokens", n)
	}
	if v.Scores != nil && len(v.Scores) != n {
		return nil, fmt.Errorf("tokenizer.ggml.scores has %d entries for %d tokens", len(v.Scores), n)
	}
	if v.Types != nil && len(v.Types) != n {
		return nil, fmt.Errorf("tokenizer.ggml.token_type has %d entries for %d tokens", len(v.Types), n)
	}
	for i, typ := range v.Types {
		if typ < GGUFTokenUndefined || typ > GGUFTokenByte {
			return nil, fmt.Errorf("tokenizer.ggml.token_type[%d] = %d is not a token type (0-6)", i, typ)
		}
	}
	for _, id := range []struct {
		key string
		id  int
	}{{"tokenizer.ggml.bos_token_id", v.BOS}, {"tokenizer.ggml.eos_token_id", v.EOS}, {"tokenizer.ggml.unknown_token_id", v.UNK}} {
		if id.id < -1 || id.id >= n {
			return nil, fmt.Errorf("%s = %d is outside the %d tokens", id.key, id.id, n)
		}
	}
	if v.AddBOS && v.BOS < 0 {
		return nil, errors.New("tokenizer.ggml.add_bos_token is set but there is no tokenizer.ggml.bos_token_id")
	}
	if v.AddEOS && v.EOS < 0 {
		return nil, errors.New("tokenizer.ggml.add_eos_token is set but there is no tokenizer.ggml.eos_token_id")
	}
	var t *Tokenizer
	var err error
	switch v.Model {
	case "llama":
		t, err = ggufSentencePiece(v, name)
	case "gpt2":
		t, err = ggufByteLevel(v, name)
	case "":
		return nil, errors.New("tokenizer.ggml.model is missing")
	default:
		return nil, fmt.Errorf("tokenizer.ggml.model %q is not supported (llama = SentencePiece BPE and gpt2 = byte-level BPE are)", v.Model)
	}
	if err != nil {
		return nil, err
	}
	t.bos, t.eos = v.BOS, v.EOS
	t.post = postProcessor{}
	if v.AddBOS {
		t.post.prefix = []int{v.BOS}
	}
	if v.AddEOS {
		t.post.suffix = []int{v.EOS}
	}
	t.chatTemplate = v.ChatTemplate
	return t, nil
}

func (v *GGUFVocab) tokenType(id int) int32 {
	if v.Types == nil || v.Types[id] == GGUFTokenUndefined {
		return GGUFTokenNormal
	}
	return v.Types[id]
}

// ggufSentencePiece builds a SentencePiece BPE tokenizer with llama.cpp's
// normalization (no whitespace collapsing; spaces escaped as "▁"; the dummy
// prefix unless add_space_prefix is false). Byte fallback is on when all 256
// <0xXX> byte tokens exist, as llama.cpp falls back to them whenever it can.
func ggufSentencePiece(v GGUFVocab, name string) (*Tokenizer, error) {
	if v.Scores == nil {
		return nil, errors.New("tokenizer.ggml.scores is missing (a llama vocabulary merges pieces by score)")
	}
	p := &spmProto{
		pieces:         make([]spmPiece, len(v.Tokens)),
		modelType:      2,
		unkID:          v.UNK,
		bosID:          v.BOS,
		eosID:          v.EOS,
		addDummyPrefix: !v.NoSpacePrefix,
		escapeWS:       true,
	}
	hasUnk := false
	var bytes [256]bool
	for id, tok := range v.Tokens {
		typ := v.tokenType(id)
		p.pieces[id] = spmPiece{piece: tok, score: v.Scores[id], typ: int(typ)}
		hasUnk = hasUnk || typ == GGUFTokenUnknown
		if b, ok := byteToken(tok); ok && typ == GGUFTokenByte {
			bytes[b] = true
		}
	}
	if !hasUnk && v.UNK >= 0 {
		p.pieces[v.UNK].typ = spmUnknown
	}
	p.byteFallback = true
	for _, ok := range bytes {
		p.byteFallback = p.byteFallback && ok
	}
	t, err := newSentencePiece(p, name)
	if err != nil {
		return nil, fmt.Errorf("tokenizer.ggml.tokens: %w", err)
	}
	if !v.LiteralSpecial {
		t.rawAdded = newTokenMatcher()
		for id, tok := range v.Tokens {
			if typ := v.tokenType(id); typ == GGUFTokenControl || typ == GGUFTokenUnknown {
				t.rawAdded.add(tok, &addedToken{ID: id, Content: tok, Special: true})
				t.added[tok] = id
			}
		}
	}
	return t, nil
}

// ggufByteLevel builds a byte-level BPE tokenizer: ranked merges, the
// pre-tokenizer tokenizer.ggml.pre names, control and user-defined tokens
// matched in the raw text, the ByteLevel decoder.
func ggufByteLevel(v GGUFVocab, name string) (*Tokenizer, error) {
	spec, ok := ggufPres[v.Pre]
	if !ok {
		if v.Pre == "" {
			return nil, fmt.Errorf("tokenizer.ggml.pre is missing, so the pre-tokenizer is unknown (supported: %s)", ggufPreNames())
		}
		return nil, fmt.Errorf("tokenizer.ggml.pre %q is not supported (supported: %s)", v.Pre, ggufPreNames())
	}
	if v.Merges == nil {
		return nil, errors.New("tokenizer.ggml.merges is missing (a gpt2 vocabulary needs its merges)")
	}
	vocab := make(map[string]int, len(v.Tokens))
	for id, tok := range v.Tokens {
		vocab[tok] = id // a repeated token keeps its last id, as in llama.cpp
	}
	merges := make([][2]string, len(v.Merges))
	for i, m := range v.Merges {
		// llama.cpp splits at the first space after the first byte.
		k := -1
		if len(m) > 1 {
			k = strings.IndexByte(m[1:], ' ')
		}
		if k < 0 {
			return nil, fmt.Errorf("tokenizer.ggml.merges[%d] = %q is not two tokens separated by a space", i, m)
		}
		a, b := m[:k+1], m[k+2:]
		for _, part := range []string{a, b, a + b} {
			if _, ok := vocab[part]; !ok {
				return nil, fmt.Errorf("tokenizer.ggml.merges[%d] = %q: %q is not a token", i, m, part)
			}
		}
		merges[i] = [2]string{a, b}
	}
	bpe, err := newBPE(&modelJSON{Type: "BPE", IgnoreMerges: spec.ignoreMerges}, vocab, merges)
	if err != nil {
		return nil, err
	}
	t := &Tokenizer{
		name:      name,
		model:     bpe,
		decoder:   []decoderStep{byteLevelStep{}},
		bos:       -1,
		eos:       -1,
		idToToken: append([]string(nil), v.Tokens...),
		hasID:     make([]bool, len(v.Tokens)),
		special:   make([]bool, len(v.Tokens)),
		added:     map[string]int{},
		rawAdded:  newTokenMatcher(),
		normAdded: newTokenMatcher(),
	}
	if spec.normalizer != nil {
		if t.normalizer, err = parseNormalizer(mustJSON(spec.normalizer)); err != nil {
			return nil, err
		}
	}
	if t.pre, err = parsePreTokenizer(mustJSON(spec.pre)); err != nil {
		return nil, err
	}
	for id, tok := range v.Tokens {
		t.hasID[id] = true
		typ := v.tokenType(id)
		if typ != GGUFTokenControl && typ != GGUFTokenUserDefined {
			continue
		}
		special := typ == GGUFTokenControl
		t.special[id] = special
		t.added[tok] = id
		if tok != "" && !(special && v.LiteralSpecial) {
			t.rawAdded.add(tok, &addedToken{ID: id, Content: tok, Special: special})
		}
	}
	return t, nil
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// SentencePieceVocab reads a SentencePiece BPE .model file as the GGUF
// vocabulary llama.cpp's converter makes of it (tokens, scores and types by
// id, the special ids, BOS added). Models whose normalization a GGUF llama
// vocabulary cannot express (a character map, whitespace collapsing or
// suffix whitespace) are refused.
func SentencePieceVocab(data []byte) (GGUFVocab, error) {
	p, err := decodeModelProto(data)
	if err != nil {
		return GGUFVocab{}, fmt.Errorf("tokenizer tokenizer.model: %w", err)
	}
	switch {
	case p.modelType != 2:
		err = fmt.Errorf("unsupported SentencePiece model_type %d (only BPE = 2)", p.modelType)
	case len(p.charsmap) > 0:
		err = fmt.Errorf("SentencePiece normalizer %q (precompiled_charsmap) has no GGUF equivalent", p.normName)
	case p.removeExtraWS:
		err = errors.New("SentencePiece remove_extra_whitespaces has no GGUF llama equivalent")
	case !p.escapeWS || p.treatWSAsSuffix:
		err = errors.New("SentencePiece whitespace options have no GGUF llama equivalent")
	case len(p.pieces) == 0 || len(p.pieces) >= maxID:
		err = fmt.Errorf("model has %d pieces", len(p.pieces))
	}
	if err != nil {
		return GGUFVocab{}, fmt.Errorf("tokenizer tokenizer.model: %w", err)
	}
	v := GGUFVocab{
		Name:          "tokenizer.model",
		Model:         "llama",
		Tokens:        make([]string, len(p.pieces)),
		Scores:        make([]float32, len(p.pieces)),
		Types:         make([]int32, len(p.pieces)),
		BOS:           -1,
		EOS:           -1,
		UNK:           -1,
		NoSpacePrefix: !p.addDummyPrefix,
	}
	for i, sp := range p.pieces {
		v.Tokens[i], v.Scores[i], v.Types[i] = sp.piece, sp.score, int32(sp.typ)
	}
	inRange := func(id int) int {
		if id >= 0 && id < len(p.pieces) {
			return id
		}
		return -1
	}
	v.BOS, v.EOS, v.UNK = inRange(p.bosID), inRange(p.eosID), inRange(p.unkID)
	v.AddBOS = v.BOS >= 0
	return v, nil
}
