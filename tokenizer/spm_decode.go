package tokenizer

import (
	"strings"
	"unicode/utf8"
)

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
