package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// The decoder stages (see decode.go for how they are chained).

// ---- ByteLevel: token characters back to bytes, bytes to text (lossy UTF-8).

type byteLevelStep struct{}

func (byteLevelStep) newStage(next stage) stage { return &byteLevelStage{next: next} }

type byteLevelStage struct {
	next    stage
	pending []byte
	fused   fusedBuffer
	batch   bool // Decode: nobody reads partial output, convert once at the end
}

func (s *byteLevelStage) tok(_ int, t string) {
	s.pending = appendByteLevelDecoded(s.pending, t)
	if s.batch {
		return
	}
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
