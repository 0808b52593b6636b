package chat

import "fmt"

// checkLexerHazards rejects the inputs known to send gonja v2.9.1's lexer
// into an endless loop, which no recover() can undo: inside a tag, a number
// followed by '.' and a non-ASCII character (e.g. "{{ 8.é }}"). There
// scanNumber peeks the multi-byte rune after the dot and then backs up by
// that rune's width instead of the dot's, rewinding before the number, for
// ever. Found by FuzzCompile; no real chat template writes a number followed
// by a non-ASCII attribute, so refusing them costs nothing. String literals
// inside tags are skipped ("{{ 'v1.é' }}" is fine).
func checkLexerHazards(src string) error {
	inTag := false
	var quote byte
	for i := 0; i < len(src); i++ {
		c := src[i]
		if !inTag {
			if c == '{' && i+1 < len(src) && (src[i+1] == '{' || src[i+1] == '%') {
				inTag = true
				i++
			}
			continue
		}
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case (c == '}' || c == '%') && i+1 < len(src) && src[i+1] == '}':
			inTag = false
			i++
		case c >= '0' && c <= '9' && i+2 < len(src) && src[i+1] == '.' && src[i+2] >= 0x80:
			return fmt.Errorf("chat template does not parse: a number followed by '.' and a non-ASCII character at byte %d", i)
		}
	}
	return nil
}
