package tokenizer

import "unicode"

// Character classes used by the pre-tokenization regexes, with an ASCII fast
// path. They follow Oniguruma's Unicode semantics (the engine behind HF
// tokenizers' regexes): \p{L} = letter, \p{N} = number, \p{M} = mark and \s =
// the Unicode White_Space property (not RE2's ASCII-only \s).

const (
	clsL  = 1 << iota // \p{L}
	clsN              // \p{N}
	clsS              // \s
	clsLu             // \p{Lu} (ASCII: A-Z)
	clsLl             // \p{Ll} (ASCII: a-z)
)

var asciiClass [128]uint8

func init() {
	for c := 0; c < 128; c++ {
		var k uint8
		switch {
		case c >= 'A' && c <= 'Z':
			k = clsL | clsLu
		case c >= 'a' && c <= 'z':
			k = clsL | clsLl
		case c >= '0' && c <= '9':
			k = clsN
		case c == ' ' || (c >= '\t' && c <= '\r'):
			k = clsS
		}
		asciiClass[c] = k
	}
}

func isLetter(r rune) bool {
	if r < 128 {
		return asciiClass[r]&clsL != 0
	}
	return unicode.IsLetter(r)
}

func isNumber(r rune) bool {
	if r < 128 {
		return asciiClass[r]&clsN != 0
	}
	return unicode.IsNumber(r)
}

// isSpace is Unicode White_Space: what Oniguruma's \s and Rust's char::is_whitespace match.
func isSpace(r rune) bool {
	if r < 128 {
		return asciiClass[r]&clsS != 0
	}
	return unicode.IsSpace(r)
}

// isOther is [^\s\p{L}\p{N}].
func isOther(r rune) bool {
	if r < 128 {
		return asciiClass[r] == 0
	}
	return !unicode.IsLetter(r) && !unicode.IsNumber(r) && !unicode.IsSpace(r)
}

// isNotCRLFLetterNumber is [^\r\n\p{L}\p{N}].
func isNotCRLFLetterNumber(r rune) bool {
	if r < 128 {
		return r != '\r' && r != '\n' && asciiClass[r]&(clsL|clsN) == 0
	}
	return !unicode.IsLetter(r) && !unicode.IsNumber(r)
}

// isUpperish is [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}] (Mistral NeMo regex).
func isUpperish(r rune) bool {
	if r < 128 {
		return asciiClass[r]&clsLu != 0
	}
	return unicode.In(r, unicode.Lu, unicode.Lt, unicode.Lm, unicode.Lo, unicode.M)
}

// isLowerish is [\p{Ll}\p{Lm}\p{Lo}\p{M}] (Mistral NeMo regex).
func isLowerish(r rune) bool {
	if r < 128 {
		return asciiClass[r]&clsLl != 0
	}
	return unicode.In(r, unicode.Ll, unicode.Lm, unicode.Lo, unicode.M)
}

// isWordChar approximates Rust regex's Unicode \w (Alphabetic, marks, decimal
// numbers, connector punctuation, join controls); used for single_word added tokens.
func isWordChar(r rune) bool {
	if r < 128 {
		return asciiClass[r]&(clsL|clsN) != 0 || r == '_'
	}
	return unicode.IsLetter(r) || unicode.IsMark(r) || unicode.In(r, unicode.Nd, unicode.Nl, unicode.Pc) ||
		r == 0x200C || r == 0x200D
}
