package tokenizer

import (
	"fmt"
	"strings"

	"github.com/dlclark/regexp2"
)

// The general regex fallback: patterns without a hand-written matcher run on
// github.com/dlclark/regexp2, a backtracking engine whose \s, \p{..} and
// lookaround match Oniguruma's (HF tokenizers') closely enough for
// tokenizer regexes.

// compileRegexp2 compiles expr with the general backtracking engine.
func compileRegexp2(expr string) (pattern, error) {
	re, err := regexp2.Compile(translatePossessive(expr), regexp2.None)
	if err != nil {
		return nil, fmt.Errorf("regex %q: %w", expr, err)
	}
	return &regexp2Pattern{re: re}, nil
}

// regexp2Pattern is the general fallback.
type regexp2Pattern struct {
	re *regexp2.Regexp
}

func (p *regexp2Pattern) findAll(s []byte, dst [][2]int) [][2]int {
	if len(s) == 0 {
		return dst
	}
	runes := make([]rune, 0, len(s))
	offs := make([]int, 0, len(s)+1) // byte offset of each rune index
	for i := 0; i < len(s); {
		r, n := runeAt(s, i)
		runes = append(runes, r)
		offs = append(offs, i)
		i += n
	}
	offs = append(offs, len(s))
	m, err := p.re.FindRunesMatch(runes)
	for m != nil && err == nil {
		start, end := m.Index, m.Index+m.Length
		if end > start {
			dst = append(dst, [2]int{offs[start], offs[end]})
		}
		m, err = p.re.FindNextMatch(m)
	}
	return dst
}

// translatePossessive rewrites Oniguruma possessive quantifiers (X++, X*+,
// X?+, X{n,m}+), which .NET syntax lacks, into atomic groups (?>X+) etc. so
// that patterns such as the o200k one compile with regexp2.
func translatePossessive(expr string) string {
	if !strings.Contains(expr, "+") {
		return expr
	}
	var out []byte
	atom := -1 // where the last atom starts in out
	for i := 0; i < len(expr); {
		c := expr[i]
		switch c {
		case '\\':
			atom = len(out)
			j := i + 2
			if j <= len(expr) && (expr[i+1] == 'p' || expr[i+1] == 'P') && j < len(expr) && expr[j] == '{' {
				if k := strings.IndexByte(expr[j:], '}'); k >= 0 {
					j += k + 1
				}
			}
			j = min(j, len(expr))
			out = append(out, expr[i:j]...)
			i = j
		case '[':
			atom = len(out)
			j := i + 1
			if j < len(expr) && expr[j] == '^' {
				j++
			}
			if j < len(expr) && expr[j] == ']' {
				j++
			}
			for j < len(expr) && expr[j] != ']' {
				if expr[j] == '\\' {
					j++
				}
				j++
			}
			j = min(j+1, len(expr))
			out = append(out, expr[i:j]...)
			i = j
		case '(':
			atom = len(out)
			depth, j := 0, i
			for j < len(expr) {
				switch expr[j] {
				case '\\':
					j++
				case '(':
					depth++
				case ')':
					depth--
				}
				j++
				if depth == 0 {
					break
				}
			}
			j = min(j, len(expr))
			if depth == 0 {
				out = append(out, '(')
				out = append(out, translatePossessive(expr[i+1:j-1])...)
				out = append(out, ')')
			} else {
				out = append(out, expr[i:j]...)
			}
			i = j
		case '|':
			atom = -1
			out = append(out, c)
			i++
		case '+', '*', '?', '{':
			j := i + 1
			if c == '{' {
				k := strings.IndexByte(expr[i:], '}')
				if k < 0 || !isCountQuantifier(expr[i+1:i+k]) {
					atom = len(out)
					out = append(out, c)
					i++
					continue
				}
				j = i + k + 1
			}
			q := expr[i:j]
			if j < len(expr) && expr[j] == '+' && atom >= 0 {
				a := string(out[atom:])
				out = append(out[:atom], "(?>"+a+q+")"...)
				j++
			} else {
				out = append(out, q...)
			}
			i = j
		default:
			atom = len(out)
			out = append(out, c)
			i++
		}
	}
	return string(out)
}

// isCountQuantifier reports whether s (the text between '{' and '}') is n, n, or n,m.
func isCountQuantifier(s string) bool {
	digits, comma := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == ',' && !comma:
			comma = true
		default:
			return false
		}
	}
	return digits > 0
}
