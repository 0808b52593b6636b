package tokenizer

import (
	"bytes"
	"unicode"
	"unicode/utf8"
)

// Pre-tokenization patterns.
//
// HF tokenizers compiles Split/ByteLevel regexes with Oniguruma (Unicode \s,
// lookahead, backtracking alternation: the first alternative that matches at a
// position wins). Go's regexp is RE2 (ASCII \s, no lookahead), so the patterns
// that real checkpoints use are matched by hand-written functions below that
// reproduce the backtracking result alternative by alternative; any other
// pattern falls back to github.com/dlclark/regexp2 (a backtracking engine with
// Unicode \s), which is slower but general.

// pattern finds the successive non-overlapping matches in s.
type pattern interface {
	// findAll appends the [start, end) byte ranges of all matches to dst.
	findAll(s []byte, dst [][2]int) [][2]int
}

// The regexes that get a fast path, spelled exactly as in tokenizer.json.
const (
	// GPT-2 (also built into the ByteLevel pre-tokenizer when use_regex is true).
	reGPT2 = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	// Llama 3 (digits in groups of up to three).
	reLlama3 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// Qwen2/Qwen3 (same as Llama 3 but single digits).
	reQwen = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// Mistral NeMo "Tekken" (case-aware words, single digits, no contractions).
	reNemo = `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// compileRegex returns the fast matcher for a known regex or a regexp2-backed one.
func compileRegex(expr string) (pattern, error) {
	switch expr {
	case reGPT2:
		return fastPattern(matchGPT2), nil
	case reLlama3:
		return fastPattern(matchLlama3), nil
	case reQwen:
		return fastPattern(matchQwen), nil
	case reNemo:
		return fastPattern(matchNemo), nil
	}
	return compileRegexp2(expr)
}

// fastPattern matches at a position: it returns the end of the match starting
// at i, or i when no alternative matches there.
type fastPattern func(s []byte, i int) int

func (m fastPattern) findAll(s []byte, dst [][2]int) [][2]int {
	for i := 0; i < len(s); {
		if e := m(s, i); e > i {
			dst = append(dst, [2]int{i, e})
			i = e
			continue
		}
		_, n := runeAt(s, i)
		i += n
	}
	return dst
}

// runeAt decodes the character at s[i] (s is valid UTF-8 in practice; an
// invalid byte decodes as U+FFFD of width 1).
func runeAt(s []byte, i int) (rune, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRune(s[i:])
}

// scanLetters, scanNumbers and scanOthers return the end of the run of
// \p{L}, \p{N} and [^\s\p{L}\p{N}] characters starting at i. They are the hot
// loops of pre-tokenization, hence the ASCII fast paths.
func scanLetters(s []byte, i int) int {
	for i < len(s) {
		if c := s[i]; c < utf8.RuneSelf {
			if asciiClass[c]&clsL == 0 {
				return i
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		if !unicode.IsLetter(r) {
			return i
		}
		i += n
	}
	return i
}

func scanNumbers(s []byte, i int) int {
	for i < len(s) {
		if c := s[i]; c < utf8.RuneSelf {
			if asciiClass[c]&clsN == 0 {
				return i
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		if !unicode.IsNumber(r) {
			return i
		}
		i += n
	}
	return i
}

func scanOthers(s []byte, i int) int {
	for i < len(s) {
		if c := s[i]; c < utf8.RuneSelf {
			if asciiClass[c] != 0 {
				return i
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		if !isOther(r) {
			return i
		}
		i += n
	}
	return i
}

// scanWhile returns the end of the run of characters starting at i that satisfy f.
func scanWhile(s []byte, i int, f func(rune) bool) int {
	for i < len(s) {
		r, n := runeAt(s, i)
		if !f(r) {
			break
		}
		i += n
	}
	return i
}

// matchGPT2 implements reGPT2 at position i.
func matchGPT2(s []byte, i int) int {
	c := s[i]
	if c == '\'' {
		// 's|'t|'re|'ve|'m|'ll|'d (case-sensitive in GPT-2)
		if i+1 < len(s) {
			switch s[i+1] {
			case 's', 't', 'm', 'd':
				return i + 2
			case 'r', 'v':
				if i+2 < len(s) && s[i+2] == 'e' {
					return i + 3
				}
			case 'l':
				if i+2 < len(s) && s[i+2] == 'l' {
					return i + 3
				}
			}
		}
	}
	// ` ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+`: a leading ' ' can only help, since
	// ' ' itself is in none of the three classes.
	j := i
	if c == ' ' {
		j = i + 1
	}
	if j < len(s) {
		r, n := runeAt(s, j)
		switch {
		case isLetter(r):
			return scanLetters(s, j+n)
		case isNumber(r):
			return scanNumbers(s, j+n)
		case isOther(r):
			return scanOthers(s, j+n)
		}
	}
	return matchSpaces(s, i, false)
}

// matchSpaces implements the common tail `\s*[\r\n]+|\s+(?!\S)|\s+` (the first
// alternative only when withNewline) at position i.
func matchSpaces(s []byte, i int, withNewline bool) int {
	j, last, lastNL := i, i, -1
	for j < len(s) {
		r, n := runeAt(s, j)
		if !isSpace(r) {
			break
		}
		if r == '\r' || r == '\n' {
			lastNL = j
		}
		last = j
		j += n
	}
	if j == i {
		return i
	}
	// \s*[\r\n]+ : \s* backtracks to the last newline of the run, and [\r\n]+
	// takes it (a following newline would have been the last one).
	if withNewline && lastNL >= 0 {
		return lastNL + 1
	}
	// \s+(?!\S): the whole run at the end of the text, else the run minus its
	// last character (which then stays in front of the next word).
	if j == len(s) {
		return j
	}
	if last > i {
		return last
	}
	// \s+: a single whitespace character before a non-space.
	return j
}

// matchContractionCI implements (?i:'s|'t|'re|'ve|'m|'ll|'d) at a quote. Case
// folding as in Oniguruma/JS: 'S' and also U+017F LATIN SMALL LETTER LONG S fold to 's'.
func matchContractionCI(s []byte, i int) int {
	if i+1 >= len(s) {
		return i
	}
	lower := func(k int) byte {
		if k < len(s) {
			c := s[k]
			if c >= 'A' && c <= 'Z' {
				return c + 32
			}
			return c
		}
		return 0
	}
	switch lower(i + 1) {
	case 's', 't', 'm', 'd':
		return i + 2
	case 'r', 'v':
		if lower(i+2) == 'e' {
			return i + 3
		}
	case 'l':
		if lower(i+2) == 'l' {
			return i + 3
		}
	case 0xC5:
		if i+2 < len(s) && s[i+2] == 0xBF { // U+017F 'ſ'
			return i + 3
		}
	}
	return i
}

func matchLlama3(s []byte, i int) int { return matchLlamaFamily(s, i, 3) }
func matchQwen(s []byte, i int) int   { return matchLlamaFamily(s, i, 1) }

// matchLlamaFamily implements reLlama3 (maxDigits 3) and reQwen (maxDigits 1).
func matchLlamaFamily(s []byte, i int, maxDigits int) int {
	c := s[i]
	if c == '\'' {
		if e := matchContractionCI(s, i); e > i {
			return e
		}
	}
	r, n := runeAt(s, i)
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if isLetter(r) {
		return scanLetters(s, i+n)
	}
	if isNotCRLFLetterNumber(r) && i+n < len(s) {
		if r2, n2 := runeAt(s, i+n); isLetter(r2) {
			return scanLetters(s, i+n+n2)
		}
	}
	// \p{N}{1,maxDigits}
	if isNumber(r) {
		j := i + n
		for k := 1; k < maxDigits && j < len(s); k++ {
			r2, n2 := runeAt(s, j)
			if !isNumber(r2) {
				break
			}
			j += n2
		}
		return j
	}
	// ` ?[^\s\p{L}\p{N}]+[\r\n]*`
	if e := matchPunct(s, i, false); e > i {
		return e
	}
	return matchSpaces(s, i, true)
}

// matchPunct implements ` ?[^\s\p{L}\p{N}]+[\r\n]*` (with '/' added to the
// trailing class when slash, as in the NeMo regex).
func matchPunct(s []byte, i int, slash bool) int {
	j := i
	if s[i] == ' ' {
		j = i + 1
	}
	if j >= len(s) {
		return i
	}
	r, n := runeAt(s, j)
	if !isOther(r) {
		return i
	}
	k := scanOthers(s, j+n)
	for k < len(s) && (s[k] == '\r' || s[k] == '\n' || (slash && s[k] == '/')) {
		k++
	}
	return k
}

// matchNemo implements reNemo at position i.
func matchNemo(s []byte, i int) int {
	r, n := runeAt(s, i)
	prefix := isNotCRLFLetterNumber(r) && i+n < len(s)
	// [^\r\n\p{L}\p{N}]?[Upper]*[Lower]+ : with the optional prefix first, then without.
	if prefix {
		if e := nemoUpperLower(s, i+n); e > 0 {
			return e
		}
	}
	if e := nemoUpperLower(s, i); e > 0 {
		return e
	}
	// [^\r\n\p{L}\p{N}]?[Upper]+[Lower]*
	if prefix {
		if e := nemoUpperThenLower(s, i+n); e > 0 {
			return e
		}
	}
	if e := nemoUpperThenLower(s, i); e > 0 {
		return e
	}
	// \p{N}
	if isNumber(r) {
		return i + n
	}
	// ` ?[^\s\p{L}\p{N}]+[\r\n/]*`
	if e := matchPunct(s, i, true); e > i {
		return e
	}
	return matchSpaces(s, i, true)
}

// nemoUpperLower matches [Upper]*[Lower]+ at p (end, or -1). Upper and Lower
// overlap (Lm, Lo, M are in both), so after the greedy [Upper]* the regex
// engine backtracks to the last character of that run that is also Lower.
func nemoUpperLower(s []byte, p int) int {
	j, lastLowerEnd := p, -1
	for j < len(s) {
		r, n := runeAt(s, j)
		if !isUpperish(r) {
			break
		}
		if isLowerish(r) {
			lastLowerEnd = j + n
		}
		j += n
	}
	if j < len(s) {
		if r, n := runeAt(s, j); isLowerish(r) {
			return scanWhile(s, j+n, isLowerish)
		}
	}
	return lastLowerEnd
}

// nemoUpperThenLower matches [Upper]+[Lower]* at p (end, or -1).
func nemoUpperThenLower(s []byte, p int) int {
	j := scanWhile(s, p, isUpperish)
	if j == p {
		return -1
	}
	return scanWhile(s, j, isLowerish)
}

// literalPattern matches a fixed string (Split/Replace with {"String": ...}).
type literalPattern struct {
	lit []byte
}

func (p *literalPattern) findAll(s []byte, dst [][2]int) [][2]int {
	if len(p.lit) == 0 {
		return dst
	}
	for i := 0; i <= len(s)-len(p.lit); {
		k := bytes.Index(s[i:], p.lit)
		if k < 0 {
			break
		}
		dst = append(dst, [2]int{i + k, i + k + len(p.lit)})
		i += k + len(p.lit)
	}
	return dst
}
