package tokenizer

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
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

// ---- protobuf

// pbReader decodes the protobuf wire format (just what ModelProto needs).
type pbReader struct {
	b []byte
}

func (r *pbReader) varint() (uint64, error) {
	var x uint64
	for i := 0; i < 10; i++ {
		if len(r.b) == 0 {
			return 0, errors.New("protobuf: truncated varint")
		}
		c := r.b[0]
		r.b = r.b[1:]
		x |= uint64(c&0x7F) << (7 * i)
		if c < 0x80 {
			return x, nil
		}
	}
	return 0, errors.New("protobuf: varint too long")
}

// field reads the next key and returns the field number, wire type and, for
// length-delimited and fixed fields, the payload (varints are returned in v).
func (r *pbReader) field() (num int, wire int, v uint64, payload []byte, err error) {
	key, err := r.varint()
	if err != nil {
		return 0, 0, 0, nil, err
	}
	num, wire = int(key>>3), int(key&7)
	if num == 0 {
		return 0, 0, 0, nil, errors.New("protobuf: field number 0")
	}
	switch wire {
	case 0:
		v, err = r.varint()
	case 1:
		if len(r.b) < 8 {
			return 0, 0, 0, nil, errors.New("protobuf: truncated fixed64")
		}
		payload, r.b = r.b[:8], r.b[8:]
	case 2:
		var n uint64
		if n, err = r.varint(); err != nil {
			return
		}
		if n > uint64(len(r.b)) {
			return 0, 0, 0, nil, errors.New("protobuf: truncated bytes field")
		}
		payload, r.b = r.b[:n], r.b[n:]
	case 5:
		if len(r.b) < 4 {
			return 0, 0, 0, nil, errors.New("protobuf: truncated fixed32")
		}
		payload, r.b = r.b[:4], r.b[4:]
	default:
		return 0, 0, 0, nil, fmt.Errorf("protobuf: unsupported wire type %d", wire)
	}
	return
}

func decodeModelProto(data []byte) (*spmProto, error) {
	p := &spmProto{
		modelType: 1, unkID: 0, bosID: 1, eosID: 2,
		addDummyPrefix: true, removeExtraWS: true, escapeWS: true,
	}
	r := pbReader{data}
	for len(r.b) > 0 {
		num, wire, _, payload, err := r.field()
		if err != nil {
			return nil, err
		}
		switch {
		case num == 1 && wire == 2:
			sp, err := decodePiece(payload)
			if err != nil {
				return nil, fmt.Errorf("pieces[%d]: %w", len(p.pieces), err)
			}
			p.pieces = append(p.pieces, sp)
		case num == 2 && wire == 2:
			if err := p.decodeTrainerSpec(payload); err != nil {
				return nil, fmt.Errorf("trainer_spec: %w", err)
			}
		case num == 3 && wire == 2:
			if err := p.decodeNormalizerSpec(payload); err != nil {
				return nil, fmt.Errorf("normalizer_spec: %w", err)
			}
		}
	}
	return p, nil
}

func decodePiece(b []byte) (spmPiece, error) {
	sp := spmPiece{typ: spmNormal}
	r := pbReader{b}
	for len(r.b) > 0 {
		num, wire, v, payload, err := r.field()
		if err != nil {
			return sp, err
		}
		switch {
		case num == 1 && wire == 2:
			sp.piece = string(payload)
		case num == 2 && wire == 5:
			sp.score = math.Float32frombits(uint32(payload[0]) | uint32(payload[1])<<8 | uint32(payload[2])<<16 | uint32(payload[3])<<24)
		case num == 3 && wire == 0:
			sp.typ = int(int32(v))
		}
	}
	return sp, nil
}

func (p *spmProto) decodeTrainerSpec(b []byte) error {
	r := pbReader{b}
	for len(r.b) > 0 {
		num, wire, v, payload, err := r.field()
		if err != nil {
			return err
		}
		if wire == 0 {
			switch num {
			case 3:
				p.modelType = int(int32(v))
			case 24:
				p.treatWSAsSuffix = v != 0
			case 35:
				p.byteFallback = v != 0
			case 40:
				p.unkID = int(int32(v))
			case 41:
				p.bosID = int(int32(v))
			case 42:
				p.eosID = int(int32(v))
			}
		} else if wire == 2 && num == 44 {
			p.unkSurface = string(payload)
		}
	}
	return nil
}

func (p *spmProto) decodeNormalizerSpec(b []byte) error {
	r := pbReader{b}
	for len(r.b) > 0 {
		num, wire, v, payload, err := r.field()
		if err != nil {
			return err
		}
		switch {
		case num == 1 && wire == 2:
			p.normName = string(payload)
		case num == 2 && wire == 2:
			p.charsmap = payload
		case num == 3 && wire == 0:
			p.addDummyPrefix = v != 0
		case num == 4 && wire == 0:
			p.removeExtraWS = v != 0
		case num == 5 && wire == 0:
			p.escapeWS = v != 0
		}
	}
	return nil
}

// ---- normalization

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

// ---- encoding

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

func (m *spmModel) tokenize(_ *encState, word []byte, out []int) []int {
	text := string(word)
	var syms []spmSymbol
	for i := 0; i < len(text); {
		n, freeze := 0, false
		if !m.userDefined.empty() {
			if t, end := m.userDefined.longestAt(text, i); t != nil {
				n, freeze = end-i, true
			}
		}
		if n == 0 {
			_, n = utf8.DecodeRuneInString(text[i:])
		}
		syms = append(syms, spmSymbol{start: i, end: i + n, prev: len(syms) - 1, next: len(syms) + 1, freeze: freeze})
		i += n
	}
	if len(syms) == 0 {
		return out
	}
	syms[len(syms)-1].next = -1

	var agenda []spmPair
	var revMerge map[string][2]string
	push := func(left, right int) {
		if left < 0 || right < 0 || syms[left].freeze || syms[right].freeze {
			return
		}
		piece := text[syms[left].start:syms[right].end]
		id, ok := m.pieces[piece]
		if !ok {
			return
		}
		agenda = heapPush(agenda, spmPair{score: m.scores[id], left: left, right: right, size: len(piece)})
		if m.types[id] == spmUnused {
			if revMerge == nil {
				revMerge = make(map[string][2]string)
			}
			revMerge[piece] = [2]string{text[syms[left].start:syms[left].end], text[syms[right].start:syms[right].end]}
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

	// Resegment UNUSED pieces into their parts, then apply byte fallback /
	// unknown-run merging as SentencePieceProcessor::PopulateSentencePieceText does.
	prevUnk := false
	var emit func(w string)
	emit = func(w string) {
		id := m.pieceToID(w)
		if m.types[id] == spmUnused {
			if parts, ok := revMerge[w]; ok {
				emit(parts[0])
				emit(parts[1])
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
		emit(text[syms[i].start:syms[i].end])
	}
	return out
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

// ---- decoding

// spmDecodeStep is SentencePiece's Decode: control pieces vanish, the unknown
// piece becomes unk_surface (" ⁇ "), runs of byte pieces become UTF-8 text
// (each invalid byte U+FFFD), "▁" becomes " ", and the "▁" of the first
// piece is dropped (it was the dummy prefix).
type spmDecodeStep struct {
	types      []int8
	unkSurface string
	stripBOSWS bool // add_dummy_prefix || remove_extra_whitespaces
	removeWS   bool
}

func (s *spmDecodeStep) newStage(next stage) stage {
	return &spmDecodeStage{spmDecodeStep: s, next: next, bosWS: true}
}

type spmDecodeStage struct {
	*spmDecodeStep
	next      stage
	pending   []byte // byte pieces of the current run not yet emitted
	bosWS     bool   // still expecting the leading "▁" to consume
	bosWSSeen bool
	emitted   bool // any text produced yet
}

func (s *spmDecodeStage) out(text string) {
	if text != "" {
		s.emitted = true
		s.next.chunk(text)
	}
}

// bytes emits the complete characters of the pending byte run; with final,
// the rest too (each leftover byte as U+FFFD).
func (s *spmDecodeStage) bytes(final bool) {
	var buf []byte
	p := s.pending
	for len(p) > 0 {
		if !utf8.FullRune(p) && !final {
			break
		}
		r, n := utf8.DecodeRune(p)
		if r == utf8.RuneError && n <= 1 {
			buf = append(buf, "\uFFFD"...)
			p = p[1:]
			continue
		}
		buf = append(buf, p[:n]...)
		p = p[n:]
	}
	s.pending = append(s.pending[:0], p...)
	s.out(string(buf))
}

func (s *spmDecodeStage) tok(id int, t string) {
	typ := int8(spmNormal)
	if id >= 0 && id < len(s.types) {
		typ = s.types[id]
	}
	if typ == spmByte {
		if b, ok := byteToken(t); ok {
			s.pending = append(s.pending, b)
			s.bytes(false)
			return
		}
	}
	s.bytes(true)
	if s.bosWSSeen || s.emitted {
		s.bosWS = false
	}
	s.bosWSSeen = false
	switch typ {
	case spmControl:
		return
	case spmUnknown:
		s.out(s.unkSurface)
		return
	}
	if s.bosWS && s.stripBOSWS {
		if rest, ok := strings.CutPrefix(t, "\u2581"); ok {
			t = rest
			s.bosWSSeen = !s.removeWS
		}
	}
	s.out(strings.ReplaceAll(t, "\u2581", " "))
}

func (s *spmDecodeStage) chunk(t string) { s.tok(-1, t) }

func (s *spmDecodeStage) end() {
	s.bytes(true)
	s.bosWS, s.bosWSSeen, s.emitted = true, false, false
	s.next.end()
}
