package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Decoding.
//
// HF tokenizers decodes by mapping ids to token strings and running them
// through the decoder chain (decode_chain of each decoder in a Sequence, then
// concatenation). Some decoders work token by token (Replace, Strip,
// Metaspace), some regroup tokens (ByteFallback turns runs of <0xXX> tokens
// into text, Fuse joins everything into one token) and ByteLevel turns the
// whole sequence into bytes and then into text.
//
// Here the chain is evaluated incrementally: every decoder is a stage that
// receives whole tokens (tok) while no stage has fused them, and pieces of the
// one fused token (chunk) afterwards, and passes its output on as soon as it is
// final. Decode feeds all ids and then ends the stream, so Decode and
// StreamDecoder share one implementation and agree by construction; a stage
// holds text back only as long as later tokens can still change it (e.g. the
// first bytes of a character, or a run of byte-fallback tokens).

// stage is one decoder's state for one decoding.
type stage interface {
	tok(id int, s string) // a whole token (id -1 when the token was produced by an earlier stage)
	chunk(s string)       // the next piece of the single fused token
	end()                 // no more input: flush
}

// decoderStep is the parsed, immutable description of a decoder.
type decoderStep interface {
	newStage(next stage) stage
}

func parseDecoder(raw json.RawMessage) ([]decoderStep, error) {
	if isNull(raw) {
		return nil, nil
	}
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, err
	}
	switch head.Type {
	case "Sequence":
		var v struct {
			Decoders []json.RawMessage `json:"decoders"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		var steps []decoderStep
		for i, r := range v.Decoders {
			s, err := parseDecoder(r)
			if err != nil {
				return nil, fmt.Errorf("decoders[%d]: %w", i, err)
			}
			steps = append(steps, s...)
		}
		return steps, nil
	case "ByteLevel":
		return []decoderStep{byteLevelStep{}}, nil
	case "Replace":
		p, content, err := parseReplace(raw)
		if err != nil {
			return nil, err
		}
		return []decoderStep{&replaceStep{pat: p, content: content}}, nil
	case "ByteFallback":
		return []decoderStep{byteFallbackStep{}}, nil
	case "Fuse":
		return []decoderStep{fuseStep{}}, nil
	case "Strip":
		var v struct {
			Content string `json:"content"`
			Start   int    `json:"start"`
			Stop    int    `json:"stop"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		r, n := utf8.DecodeRuneInString(v.Content)
		if n == 0 || n != len(v.Content) || v.Start < 0 || v.Stop < 0 {
			return nil, fmt.Errorf("strip: content %q start %d stop %d", v.Content, v.Start, v.Stop)
		}
		return []decoderStep{&stripStep{content: r, start: v.Start, stop: v.Stop}}, nil
	case "Metaspace":
		m, err := parseMetaspace(raw)
		if err != nil {
			return nil, err
		}
		return []decoderStep{&metaspaceStep{m}}, nil
	case "WordPiece":
		v := struct {
			Prefix  string `json:"prefix"`
			Cleanup *bool  `json:"cleanup"`
		}{Prefix: "##"}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		return []decoderStep{&wordPieceStep{prefix: v.Prefix, cleanup: v.Cleanup == nil || *v.Cleanup}}, nil
	case "BPEDecoder":
		v := struct {
			Suffix string `json:"suffix"`
		}{Suffix: "</w>"}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		return []decoderStep{&bpeDecoderStep{suffix: v.Suffix}}, nil
	case "":
		return nil, fmt.Errorf("decoder without a type")
	}
	return nil, fmt.Errorf("unsupported decoder type %q", head.Type)
}

// sink collects the output of the last stage.
type sink struct {
	buf []byte
	// joinSpace: no decoder at all, HF joins the tokens with " ".
	joinSpace bool
	ntok      int
}

func (k *sink) tok(_ int, s string) {
	if k.joinSpace && k.ntok > 0 {
		k.buf = append(k.buf, ' ')
	}
	k.ntok++
	k.buf = append(k.buf, s...)
}
func (k *sink) chunk(s string) { k.buf = append(k.buf, s...) }
func (k *sink) end()           {}

// fusedBuffer collects a fused token for stages that need it whole.
type fusedBuffer struct {
	b       strings.Builder
	started bool
}

func (f *fusedBuffer) add(s string) { f.started = true; f.b.WriteString(s) }

// take returns the buffered token and whether there was one.
func (f *fusedBuffer) take() (string, bool) {
	if !f.started {
		return "", false
	}
	s := f.b.String()
	f.b.Reset()
	f.started = false
	return s, true
}

// ---- ByteLevel: token characters back to bytes, bytes to text (lossy UTF-8).

type byteLevelStep struct{}

func (byteLevelStep) newStage(next stage) stage { return &byteLevelStage{next: next} }

type byteLevelStage struct {
	next    stage
	pending []byte
	fused   fusedBuffer
}

func (s *byteLevelStage) tok(_ int, t string) {
	s.pending = appendByteLevelDecoded(s.pending, t)
	// Emit everything except an unfinished trailing character.
	keep := incompleteTail(s.pending)
	if n := len(s.pending) - keep; n > 0 {
		s.next.chunk(string(appendLossyUTF8(nil, s.pending[:n])))
		s.pending = append(s.pending[:0], s.pending[n:]...)
	}
}

// After a Fuse the whole text is one token, which HF maps as a unit.
func (s *byteLevelStage) chunk(t string) { s.fused.add(t) }

func (s *byteLevelStage) end() {
	if t, ok := s.fused.take(); ok {
		s.tok(-1, t)
	}
	if len(s.pending) > 0 {
		s.next.chunk(string(appendLossyUTF8(nil, s.pending)))
		s.pending = s.pending[:0]
	}
	s.next.end()
}

// ---- Replace: substitute a pattern in every token.

type replaceStep struct {
	pat     pattern
	content string
}

func (r *replaceStep) newStage(next stage) stage { return &replaceStage{replaceStep: r, next: next} }

type replaceStage struct {
	*replaceStep
	next stage
	held string // fused mode: text that may still be part of a match
}

func (s *replaceStage) tok(_ int, t string) { s.next.tok(-1, replaceAll(s.pat, t, s.content)) }

func (s *replaceStage) chunk(t string) {
	s.held += t
	lp, ok := s.pat.(*literalPattern)
	if !ok {
		return // a regex may match across chunks: wait for the end
	}
	// Replace the complete matches; keep back a tail that could begin one.
	text := s.held
	lastEnd := 0
	if len(lp.lit) > 0 {
		for _, m := range lp.findAll([]byte(text), nil) {
			lastEnd = m[1]
		}
	}
	cut := len(text)
	for p := lastEnd; p < len(text); p++ {
		if strings.HasPrefix(string(lp.lit), text[p:]) {
			cut = p
			break
		}
	}
	if cut > 0 {
		s.next.chunk(replaceAll(s.pat, text[:cut], s.content))
	}
	s.held = text[cut:]
}

func (s *replaceStage) end() {
	if s.held != "" {
		s.next.chunk(replaceAll(s.pat, s.held, s.content))
		s.held = ""
	}
	s.next.end()
}

// ---- ByteFallback: runs of <0xXX> tokens become text.

type byteFallbackStep struct{}

func (byteFallbackStep) newStage(next stage) stage { return &byteFallbackStage{next: next} }

type byteFallbackStage struct {
	next    stage
	pending []byte
	fused   fusedBuffer
}

// byteToken parses "<0xXX>" the way HF does (6 bytes, u8::from_str_radix on
// the two characters, which also accepts "+X").
func byteToken(t string) (byte, bool) {
	if len(t) != 6 || t[:3] != "<0x" || t[5] != '>' {
		return 0, false
	}
	hex := func(c byte) (byte, bool) {
		switch {
		case c >= '0' && c <= '9':
			return c - '0', true
		case c >= 'a' && c <= 'f':
			return c - 'a' + 10, true
		case c >= 'A' && c <= 'F':
			return c - 'A' + 10, true
		}
		return 0, false
	}
	lo, ok := hex(t[4])
	if !ok {
		return 0, false
	}
	if t[3] == '+' {
		return lo, true
	}
	hi, ok := hex(t[3])
	if !ok {
		return 0, false
	}
	return hi<<4 | lo, true
}

func (s *byteFallbackStage) tok(id int, t string) {
	if b, ok := byteToken(t); ok {
		s.pending = append(s.pending, b)
		return
	}
	s.flush()
	s.next.tok(id, t)
}

// flush emits the pending byte run: one token of text if it is valid UTF-8,
// otherwise one U+FFFD per byte (HF ByteFallback).
func (s *byteFallbackStage) flush() {
	if len(s.pending) == 0 {
		return
	}
	if utf8.Valid(s.pending) {
		s.next.tok(-1, string(s.pending))
	} else {
		for range s.pending {
			s.next.tok(-1, "\uFFFD")
		}
	}
	s.pending = s.pending[:0]
}

func (s *byteFallbackStage) chunk(t string) { s.fused.add(t) }

func (s *byteFallbackStage) end() {
	if t, ok := s.fused.take(); ok {
		s.tok(-1, t)
	}
	s.flush()
	s.next.end()
}

// ---- Fuse: all tokens become one.

type fuseStep struct{}

func (fuseStep) newStage(next stage) stage { return fuseStage{next} }

type fuseStage struct{ next stage }

func (s fuseStage) tok(_ int, t string) { s.next.chunk(t) }
func (s fuseStage) chunk(t string)      { s.next.chunk(t) }
func (s fuseStage) end()                { s.next.end() }

// ---- Strip: remove up to start/stop copies of a character at each token's ends.

type stripStep struct {
	content     rune
	start, stop int
}

func (r *stripStep) newStage(next stage) stage {
	return &stripStage{stripStep: r, next: next, leading: true}
}

type stripStage struct {
	*stripStep
	next stage
	// fused mode
	leading  bool // still at the start of the fused token
	stripped int  // leading characters removed so far
	held     int  // trailing content characters held back (<= stop)
}

func (s *stripStage) tok(_ int, t string) {
	rs := []rune(t)
	a := 0
	for a < len(rs) && a < s.start && rs[a] == s.content {
		a++
	}
	b := len(rs)
	for k := 0; k < s.stop && b > a && rs[b-1] == s.content; k++ {
		b--
	}
	s.next.tok(-1, string(rs[a:b]))
}

func (s *stripStage) chunk(t string) {
	var out []byte
	for _, r := range t {
		if s.leading {
			if r == s.content && s.stripped < s.start {
				s.stripped++
				continue
			}
			s.leading = false
		}
		if r == s.content && s.stop > 0 {
			if s.held == s.stop {
				out = utf8.AppendRune(out, r) // the oldest held one can no longer be trailing
			} else {
				s.held++
			}
			continue
		}
		for ; s.held > 0; s.held-- {
			out = utf8.AppendRune(out, s.content)
		}
		out = utf8.AppendRune(out, r)
	}
	if len(out) > 0 {
		s.next.chunk(string(out))
	}
}

func (s *stripStage) end() {
	s.held, s.stripped, s.leading = 0, 0, true // held characters were trailing: dropped
	s.next.end()
}

// ---- Metaspace decoder: '▁' back to ' '; the first token loses its '▁'s
// (HF removes every replacement character of token 0 unless prepend_scheme is "never").

type metaspaceStep struct{ metaspace }

func (m *metaspaceStep) newStage(next stage) stage {
	return &metaspaceStage{metaspaceStep: m, next: next}
}

type metaspaceStage struct {
	*metaspaceStep
	next stage
	n    int // tokens seen
}

func (s *metaspaceStage) convert(t string, first bool) string {
	if !strings.ContainsRune(t, s.replacement) {
		return t
	}
	if first && s.scheme != prependNever {
		return strings.ReplaceAll(t, string(s.repl), "")
	}
	return strings.ReplaceAll(t, string(s.repl), " ")
}

func (s *metaspaceStage) tok(_ int, t string) {
	s.next.tok(-1, s.convert(t, s.n == 0))
	s.n++
}

func (s *metaspaceStage) chunk(t string) { s.next.chunk(s.convert(t, s.n == 0)) }

func (s *metaspaceStage) end() { s.n = 0; s.next.end() }

// ---- WordPiece decoder: "##" continuations glued, other tokens space-separated.

type wordPieceStep struct {
	prefix  string
	cleanup bool
}

func (w *wordPieceStep) newStage(next stage) stage {
	return &wordPieceStage{wordPieceStep: w, next: next}
}

type wordPieceStage struct {
	*wordPieceStep
	next  stage
	n     int
	fused fusedBuffer
}

func (s *wordPieceStage) tok(_ int, t string) {
	if s.n > 0 {
		if strings.HasPrefix(t, s.prefix) {
			t = t[len(s.prefix):]
		} else {
			t = " " + t
		}
	}
	s.n++
	if s.cleanup {
		t = cleanUpTokenization(t)
	}
	s.next.tok(-1, t)
}

func (s *wordPieceStage) chunk(t string) { s.fused.add(t) }

func (s *wordPieceStage) end() {
	if t, ok := s.fused.take(); ok {
		s.tok(-1, t)
	}
	s.n = 0
	s.next.end()
}

// ---- BPEDecoder: the end-of-word suffix becomes a space, except in the last token.

type bpeDecoderStep struct{ suffix string }

func (b *bpeDecoderStep) newStage(next stage) stage {
	return &bpeDecoderStage{bpeDecoderStep: b, next: next}
}

type bpeDecoderStage struct {
	*bpeDecoderStep
	next    stage
	last    string
	hasLast bool
	fused   fusedBuffer
}

func (s *bpeDecoderStage) tok(_ int, t string) {
	if s.hasLast {
		s.next.tok(-1, strings.ReplaceAll(s.last, s.suffix, " "))
	}
	s.last, s.hasLast = t, true
}

func (s *bpeDecoderStage) chunk(t string) { s.fused.add(t) }

func (s *bpeDecoderStage) end() {
	if t, ok := s.fused.take(); ok {
		s.tok(-1, t)
	}
	if s.hasLast {
		s.next.tok(-1, strings.ReplaceAll(s.last, s.suffix, ""))
		s.hasLast = false
	}
	s.next.end()
}

// cleanUpTokenization is transformers' clean_up_tokenization: remove the
// space before punctuation and English contractions, each rule applied to the
// whole string in this order.
func cleanUpTokenization(s string) string {
	if !strings.Contains(s, " ") {
		return s
	}
	for _, r := range [...][2]string{
		{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
		{" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
	} {
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	return s
}
