package tokenizer

import (
	"errors"
	"fmt"
	"os"
	"unicode/utf8"
)

// SentencePiece .model files (Llama 1/2, Mistral 7B, ...): a ModelProto
// protobuf holding the pieces with their scores and types, the trainer spec
// (model type, byte_fallback, special ids) and the normalizer spec. Only the
// BPE model type with the identity normalization is supported; the encoding
// and decoding rules follow sentencepiece's bpe_model.cc and
// sentencepiece_processor.cc (the reference for testdata/tokenizers/llama2/cases_spm.jsonl).

// Piece types (ModelProto.SentencePiece.Type).
const (
	spmNormal      = 1
	spmUnknown     = 2
	spmControl     = 3
	spmUserDefined = 4
	spmUnused      = 5
	spmByte        = 6
)

type spmPiece struct {
	piece string
	score float32
	typ   int
}

// spmProto is the decoded subset of ModelProto.
type spmProto struct {
	pieces []spmPiece
	// trainer_spec
	modelType       int
	byteFallback    bool
	treatWSAsSuffix bool
	unkID, bosID    int
	eosID           int
	unkSurface      string
	// normalizer_spec
	normName       string
	charsmap       []byte
	addDummyPrefix bool
	removeExtraWS  bool
	escapeWS       bool
}

// LoadSentencePieceModel loads a SentencePiece tokenizer.model file.
func LoadSentencePieceModel(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	t, err := parseSentencePiece(data, path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	return t, nil
}

// ParseSentencePieceModel builds a tokenizer from the bytes of a SentencePiece .model file.
func ParseSentencePieceModel(data []byte) (*Tokenizer, error) {
	t, err := parseSentencePiece(data, "tokenizer.model")
	if err != nil {
		return nil, fmt.Errorf("tokenizer tokenizer.model: %w", err)
	}
	return t, nil
}

func parseSentencePiece(data []byte, name string) (*Tokenizer, error) {
	p, err := decodeModelProto(data)
	if err != nil {
		return nil, err
	}
	return newSentencePiece(p, name)
}

// newSentencePiece builds a tokenizer from a decoded model (a .model file or
// a GGUF llama vocabulary, gguf.go).
func newSentencePiece(p *spmProto, name string) (*Tokenizer, error) {
	if p.modelType != 2 {
		return nil, fmt.Errorf("unsupported SentencePiece model_type %d (only BPE = 2)", p.modelType)
	}
	if len(p.charsmap) > 0 {
		return nil, fmt.Errorf("unsupported SentencePiece normalizer %q (precompiled_charsmap)", p.normName)
	}
	if p.treatWSAsSuffix {
		return nil, errors.New("unsupported SentencePiece option treat_whitespace_as_suffix")
	}
	if len(p.pieces) == 0 {
		return nil, errors.New("model has no pieces")
	}
	if len(p.pieces) >= maxID {
		return nil, fmt.Errorf("model has %d pieces", len(p.pieces))
	}
	m := &spmModel{
		pieces:       make(map[string]int, len(p.pieces)),
		reserved:     make(map[string]int),
		all:          make(map[string]int, len(p.pieces)),
		scores:       make([]float32, len(p.pieces)),
		types:        make([]int8, len(p.pieces)),
		unkID:        -1,
		byteFallback: p.byteFallback,
		userDefined:  newTokenMatcher(),
	}
	t := &Tokenizer{
		name:      name,
		fromSPM:   true,
		model:     m,
		bos:       -1,
		eos:       -1,
		added:     map[string]int{},
		idToToken: make([]string, len(p.pieces)),
		hasID:     make([]bool, len(p.pieces)),
		special:   make([]bool, len(p.pieces)),
	}
	for i := range m.byteID {
		m.byteID[i] = -1
	}
	for id, sp := range p.pieces {
		if sp.piece == "" {
			return nil, fmt.Errorf("pieces[%d]: empty piece", id)
		}
		if !utf8.ValidString(sp.piece) {
			return nil, fmt.Errorf("pieces[%d]: piece is not valid UTF-8", id)
		}
		if _, dup := m.all[sp.piece]; dup {
			return nil, fmt.Errorf("pieces[%d]: duplicate piece %q", id, sp.piece)
		}
		m.all[sp.piece] = id
		m.scores[id] = sp.score
		m.types[id] = int8(sp.typ)
		t.idToToken[id] = sp.piece
		t.hasID[id] = true
		switch sp.typ {
		case spmNormal, spmUserDefined, spmUnused:
			m.pieces[sp.piece] = id
			if sp.typ == spmUserDefined {
				m.userDefined.add(sp.piece, &addedToken{ID: id, Content: sp.piece})
			}
		case spmUnknown, spmControl, spmByte:
			m.reserved[sp.piece] = id
			if sp.typ == spmUnknown {
				if m.unkID >= 0 {
					return nil, fmt.Errorf("pieces[%d]: second unknown piece", id)
				}
				m.unkID = id
			}
			if sp.typ == spmByte {
				b, ok := byteToken(sp.piece)
				if !ok {
					return nil, fmt.Errorf("pieces[%d]: byte piece %q is not <0xXX>", id, sp.piece)
				}
				m.byteID[b] = int32(id)
			}
			t.special[id] = sp.typ != spmByte
		default:
			return nil, fmt.Errorf("pieces[%d]: unknown piece type %d", id, sp.typ)
		}
	}
	if m.unkID < 0 {
		return nil, errors.New("model has no unknown piece")
	}
	m.splitMeta = p.escapeWS && canSplitAtMetaVocab(m.pieces)
	m.cache.init(50000)
	if m.byteFallback {
		for b, id := range m.byteID {
			if id < 0 {
				return nil, fmt.Errorf("byte_fallback is set but piece <0x%02X> is missing", b)
			}
		}
	}
	isCtl := func(id int) bool { return id >= 0 && id < len(p.pieces) && p.pieces[id].typ == spmControl }
	if isCtl(p.bosID) {
		t.bos = p.bosID
		t.post.prefix = []int{p.bosID}
	}
	if isCtl(p.eosID) {
		t.eos = p.eosID
	}
	t.normalizer = &spmNormalizer{addDummyPrefix: p.addDummyPrefix, removeExtraWS: p.removeExtraWS, escapeWS: p.escapeWS}
	unkSurface := " \u2047 "
	if p.unkSurface != "" {
		unkSurface = p.unkSurface
	}
	t.decoder = []decoderStep{&spmDecodeStep{
		types:      m.types,
		unkSurface: unkSurface,
		stripBOSWS: p.addDummyPrefix || p.removeExtraWS,
		removeWS:   p.removeExtraWS,
	}}
	return t, nil
}
