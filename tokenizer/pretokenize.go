package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// Pre-tokenizers cut normalized text into the pieces ("words") the model
// encodes independently (HF tokenizers `pre_tokenizer`). A piece is a byte
// slice either into the normalized text or into the per-call arena (for
// pre-tokenizers that rewrite text, e.g. ByteLevel's byte-to-character map).
type piece struct {
	b []byte
	// atStart reports that the piece begins at offset 0 of the input text;
	// Metaspace with prepend_scheme "first" only prefixes such a piece.
	atStart bool
}

type preTokenizer interface {
	// split appends the sub-pieces of p to out. Empty pieces are never emitted
	// (HF drops them too).
	split(st *encState, p piece, out []piece) []piece
}

// splitBehavior says what happens to the matched parts (HF SplitDelimiterBehavior).
type splitBehavior int

const (
	behaviorRemoved splitBehavior = iota
	behaviorIsolated
	behaviorMergedWithPrevious
	behaviorMergedWithNext
	behaviorContiguous
)

func parseBehavior(s string) (splitBehavior, error) {
	switch s {
	case "Removed":
		return behaviorRemoved, nil
	case "Isolated":
		return behaviorIsolated, nil
	case "MergedWithPrevious":
		return behaviorMergedWithPrevious, nil
	case "MergedWithNext":
		return behaviorMergedWithNext, nil
	case "Contiguous":
		return behaviorContiguous, nil
	}
	return 0, fmt.Errorf("unsupported split behavior %q", s)
}

func parsePreTokenizer(raw json.RawMessage) (preTokenizer, error) {
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
			PreTokenizers []json.RawMessage `json:"pretokenizers"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		var seq seqPreTokenizer
		for i, r := range v.PreTokenizers {
			p, err := parsePreTokenizer(r)
			if err != nil {
				return nil, fmt.Errorf("pretokenizers[%d]: %w", i, err)
			}
			if p != nil {
				seq = append(seq, p)
			}
		}
		return seq, nil
	case "ByteLevel":
		v := struct {
			AddPrefixSpace *bool `json:"add_prefix_space"`
			UseRegex       *bool `json:"use_regex"`
		}{}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		// HF defaults: add_prefix_space true, use_regex true.
		return &byteLevelPre{
			addPrefixSpace: v.AddPrefixSpace == nil || *v.AddPrefixSpace,
			useRegex:       v.UseRegex == nil || *v.UseRegex,
		}, nil
	case "Split":
		var v struct {
			Pattern struct {
				String *string `json:"String"`
				Regex  *string `json:"Regex"`
			} `json:"pattern"`
			Behavior string `json:"behavior"`
			Invert   bool   `json:"invert"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		beh, err := parseBehavior(v.Behavior)
		if err != nil {
			return nil, err
		}
		s := &splitPre{behavior: beh, invert: v.Invert}
		switch {
		case v.Pattern.String != nil:
			s.pat = &literalPattern{lit: []byte(*v.Pattern.String)}
		case v.Pattern.Regex != nil:
			if s.pat, err = compileRegex(*v.Pattern.Regex); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("split: pattern must have String or Regex")
		}
		return s, nil
	case "Metaspace":
		m, err := parseMetaspace(raw)
		if err != nil {
			return nil, err
		}
		return &metaspacePre{metaspace: m}, nil
	case "Whitespace":
		return &splitPre{pat: fastPattern(matchWhitespaceWord), behavior: behaviorRemoved, invert: true}, nil
	case "WhitespaceSplit":
		return &splitPre{pat: runePattern(isSpace), behavior: behaviorRemoved}, nil
	case "Digits":
		var v struct {
			Individual bool `json:"individual_digits"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		beh := behaviorContiguous
		if v.Individual {
			beh = behaviorIsolated
		}
		return &splitPre{pat: runePattern(unicode.IsNumber), behavior: beh}, nil
	case "Punctuation":
		v := struct {
			Behavior string `json:"behavior"`
		}{Behavior: "Isolated"}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		beh, err := parseBehavior(v.Behavior)
		if err != nil {
			return nil, err
		}
		return &splitPre{pat: runePattern(unicode.IsPunct), behavior: beh}, nil
	case "CharDelimiterSplit":
		var v struct {
			Delimiter string `json:"delimiter"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		if utf8.RuneCountInString(v.Delimiter) != 1 {
			return nil, fmt.Errorf("CharDelimiterSplit: delimiter %q is not one character", v.Delimiter)
		}
		return &splitPre{pat: &literalPattern{lit: []byte(v.Delimiter)}, behavior: behaviorRemoved}, nil
	case "":
		return nil, fmt.Errorf("pre_tokenizer without a type")
	}
	return nil, fmt.Errorf("unsupported pre_tokenizer type %q", head.Type)
}

// seqPreTokenizer applies each pre-tokenizer to every piece the previous one produced.
type seqPreTokenizer []preTokenizer

func (q seqPreTokenizer) split(st *encState, p piece, out []piece) []piece {
	if len(q) == 0 {
		if len(p.b) == 0 {
			return out
		}
		return append(out, p)
	}
	base := len(out)
	out = q[0].split(st, p, out)
	for _, pt := range q[1:] {
		// Process out[base:n] into out[n:], then slide the result down.
		n := len(out)
		for k := base; k < n; k++ {
			out = pt.split(st, out[k], out)
		}
		m := copy(out[base:], out[n:])
		out = out[:base+m]
	}
	return out
}

// splitPre is HF's Split pre-tokenizer (and the building block of several others).
type splitPre struct {
	pat      pattern
	behavior splitBehavior
	invert   bool
}

func (s *splitPre) split(st *encState, p piece, out []piece) []piece {
	st.ranges = s.pat.findAll(p.b, st.ranges[:0])
	return splitByMatches(st, p, st.ranges, s.behavior, s.invert, out)
}

// part is a matched or unmatched stretch of a piece.
type part struct {
	start, end int
	match      bool
}

// splitByMatches turns the match ranges of a pattern in p into sub-pieces,
// following HF NormalizedString::split for each behavior.
func splitByMatches(st *encState, p piece, matches [][2]int, beh splitBehavior, invert bool, out []piece) []piece {
	n := len(p.b)
	if n == 0 {
		return out
	}
	parts := st.parts[:0]
	prev := 0
	for _, m := range matches {
		if m[0] > prev {
			parts = append(parts, part{prev, m[0], invert})
		}
		parts = append(parts, part{m[0], m[1], !invert})
		prev = m[1]
	}
	if prev < n {
		parts = append(parts, part{prev, n, invert})
	}
	st.parts = parts

	var kept []part
	switch beh {
	case behaviorIsolated:
		kept = parts
	case behaviorRemoved:
		kept = parts[:0]
		for _, pt := range parts {
			if !pt.match {
				kept = append(kept, pt)
			}
		}
	case behaviorContiguous:
		kept = parts[:0]
		prevMatch := false
		for i, pt := range parts {
			if i > 0 && pt.match == prevMatch {
				kept[len(kept)-1].end = pt.end
			} else {
				kept = append(kept, pt)
			}
			prevMatch = pt.match
		}
	case behaviorMergedWithPrevious:
		kept = parts[:0]
		prevMatch := false
		for _, pt := range parts {
			if pt.match && !prevMatch && len(kept) > 0 {
				kept[len(kept)-1].end = pt.end
			} else {
				kept = append(kept, pt)
			}
			prevMatch = pt.match
		}
	case behaviorMergedWithNext:
		// Walk backwards, then restore the order.
		rev := st.parts2[:0]
		prevMatch := false
		for i := len(parts) - 1; i >= 0; i-- {
			pt := parts[i]
			if pt.match && !prevMatch && len(rev) > 0 {
				rev[len(rev)-1].start = pt.start
			} else {
				rev = append(rev, pt)
			}
			prevMatch = pt.match
		}
		for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
			rev[i], rev[j] = rev[j], rev[i]
		}
		st.parts2 = rev
		kept = rev
	}
	for _, pt := range kept {
		if pt.end > pt.start {
			out = append(out, piece{b: p.b[pt.start:pt.end:pt.end], atStart: p.atStart && pt.start == 0})
		}
	}
	return out
}

// runePattern matches every single character satisfying the predicate.
type runePattern func(rune) bool

func (f runePattern) findAll(s []byte, dst [][2]int) [][2]int {
	for i := 0; i < len(s); {
		r, n := runeAt(s, i)
		if f(r) {
			dst = append(dst, [2]int{i, i + n})
		}
		i += n
	}
	return dst
}

// matchWhitespaceWord implements HF Whitespace's `\w+|[^\w\s]+`.
func matchWhitespaceWord(s []byte, i int) int {
	r, n := runeAt(s, i)
	switch {
	case isWordChar(r):
		return scanWhile(s, i+n, isWordChar)
	case !isSpace(r):
		return scanWhile(s, i+n, func(r rune) bool { return !isWordChar(r) && !isSpace(r) })
	}
	return i
}

// byteLevelPre is HF's ByteLevel pre-tokenizer: optional prefix space, the
// GPT-2 regex split (use_regex), then every byte spelled with the byte-level alphabet.
type byteLevelPre struct {
	addPrefixSpace bool
	useRegex       bool
}

var gpt2Pattern = fastPattern(matchGPT2)

func (bl *byteLevelPre) split(st *encState, p piece, out []piece) []piece {
	src := p.b
	if len(src) == 0 {
		return out
	}
	if bl.addPrefixSpace && src[0] != ' ' {
		start := len(st.arena)
		st.arena = append(st.arena, ' ')
		st.arena = append(st.arena, src...)
		src = st.arena[start:len(st.arena):len(st.arena)]
	}
	if !bl.useRegex {
		return append(out, st.byteLevel(src, p.atStart))
	}
	st.ranges = gpt2Pattern.findAll(src, st.ranges[:0])
	prev := 0
	for _, m := range st.ranges {
		if m[0] > prev {
			out = append(out, st.byteLevel(src[prev:m[0]], p.atStart && prev == 0))
		}
		out = append(out, st.byteLevel(src[m[0]:m[1]], p.atStart && m[0] == 0))
		prev = m[1]
	}
	if prev < len(src) {
		out = append(out, st.byteLevel(src[prev:], p.atStart && prev == 0))
	}
	return out
}

// byteLevel copies b into the arena spelled with the byte-level alphabet.
func (st *encState) byteLevel(b []byte, atStart bool) piece {
	start := len(st.arena)
	st.arena = appendByteLevel(st.arena, b)
	return piece{b: st.arena[start:len(st.arena):len(st.arena)], atStart: atStart}
}

// metaspace holds the settings shared by the Metaspace pre-tokenizer and decoder.
type metaspace struct {
	replacement rune
	repl        []byte // UTF-8 of replacement
	scheme      prependScheme
	splitPieces bool
}

type prependScheme int

const (
	prependAlways prependScheme = iota
	prependFirst
	prependNever
)

func parseMetaspace(raw json.RawMessage) (metaspace, error) {
	v := struct {
		Replacement    string  `json:"replacement"`
		AddPrefixSpace *bool   `json:"add_prefix_space"`
		PrependScheme  *string `json:"prepend_scheme"`
		Split          *bool   `json:"split"`
	}{}
	if err := json.Unmarshal(raw, &v); err != nil {
		return metaspace{}, err
	}
	if utf8.RuneCountInString(v.Replacement) != 1 {
		return metaspace{}, fmt.Errorf("metaspace: replacement %q is not one character", v.Replacement)
	}
	r, _ := utf8.DecodeRuneInString(v.Replacement)
	m := metaspace{replacement: r, repl: []byte(v.Replacement), scheme: prependAlways, splitPieces: v.Split == nil || *v.Split}
	if v.PrependScheme != nil {
		switch *v.PrependScheme {
		case "always":
			m.scheme = prependAlways
		case "first":
			m.scheme = prependFirst
		case "never":
			m.scheme = prependNever
		default:
			return m, fmt.Errorf("metaspace: unsupported prepend_scheme %q", *v.PrependScheme)
		}
	}
	// Legacy files: add_prefix_space false means never prepend.
	if v.AddPrefixSpace != nil && !*v.AddPrefixSpace {
		m.scheme = prependNever
	}
	return m, nil
}

// metaspacePre is HF's Metaspace pre-tokenizer: spaces become the replacement
// character ('▁'), which is prepended per prepend_scheme, and (split) each
// piece starts at a replacement character.
type metaspacePre struct {
	metaspace
}

func (m *metaspacePre) split(st *encState, p piece, out []piece) []piece {
	if len(p.b) == 0 {
		return out
	}
	start := len(st.arena)
	// Spaces are replaced first, so a leading ' ' also counts as a leading '▁'.
	startsWithRepl := bytes.HasPrefix(p.b, m.repl) || p.b[0] == ' '
	if !startsWithRepl && (m.scheme == prependAlways || (m.scheme == prependFirst && p.atStart)) {
		st.arena = append(st.arena, m.repl...)
	}
	for _, c := range p.b {
		if c == ' ' {
			st.arena = append(st.arena, m.repl...)
		} else {
			st.arena = append(st.arena, c)
		}
	}
	np := piece{b: st.arena[start:len(st.arena):len(st.arena)], atStart: p.atStart}
	if !m.splitPieces {
		return append(out, np)
	}
	st.ranges = (&literalPattern{lit: m.repl}).findAll(np.b, st.ranges[:0])
	return splitByMatches(st, np, st.ranges, behaviorMergedWithNext, false, out)
}
