package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Fast decoding of the two big parts of tokenizer.json, model.vocab (up to
// ~150k entries) and model.merges (up to ~300k): encoding/json through
// reflection and one json.RawMessage per merge made loading a Llama 3
// tokenizer take over a second. encoding/json has already validated the
// whole document before calling these UnmarshalJSON methods, so the scanners
// below only need to be correct on valid JSON (and still must not panic).

// vocabJSON is model.vocab: {"token": id, ...}.
type vocabJSON map[string]int

func (v *vocabJSON) UnmarshalJSON(data []byte) error {
	if isNull(data) {
		*v = nil
		return nil
	}
	s := jsonScanner{data: data}
	if !s.consume('{') {
		return errors.New("model.vocab: not an object")
	}
	type entry struct {
		tok string
		id  int
	}
	var entries []entry
	if !s.consume('}') {
		for {
			key, err := s.str()
			if err != nil {
				return fmt.Errorf("model.vocab: %w", err)
			}
			if !s.consume(':') {
				return errors.New("model.vocab: missing ':'")
			}
			id, err := s.int()
			if err != nil {
				return fmt.Errorf("model.vocab[%q]: %w", key, err)
			}
			entries = append(entries, entry{key, id})
			if s.consume(',') {
				continue
			}
			if s.consume('}') {
				break
			}
			return errors.New("model.vocab: expected ',' or '}'")
		}
	}
	m := make(map[string]int, len(entries))
	for _, e := range entries {
		m[e.tok] = e.id
	}
	*v = m
	return nil
}

// mergesJSON is model.merges: ["a b", ...] or [["a", "b"], ...].
type mergesJSON [][2]string

func (ms *mergesJSON) UnmarshalJSON(data []byte) error {
	if isNull(data) {
		*ms = nil
		return nil
	}
	s := jsonScanner{data: data}
	if !s.consume('[') {
		return errors.New("model.merges: not an array")
	}
	out := make([][2]string, 0, len(data)/16)
	if !s.consume(']') {
		for i := 0; ; i++ {
			var pair [2]string
			s.ws()
			if s.consume('[') {
				var parts []string
				if !s.consume(']') {
					for {
						p, err := s.str()
						if err != nil {
							return fmt.Errorf("model.merges[%d]: %w", i, err)
						}
						parts = append(parts, p)
						if s.consume(',') {
							continue
						}
						if s.consume(']') {
							break
						}
						return fmt.Errorf("model.merges[%d]: expected ',' or ']'", i)
					}
				}
				if len(parts) != 2 {
					return fmt.Errorf("model.merges[%d]: %d parts, want 2", i, len(parts))
				}
				pair = [2]string{parts[0], parts[1]}
			} else {
				m, err := s.str()
				if err != nil {
					return fmt.Errorf("model.merges[%d]: %w", i, err)
				}
				a, b, ok := cutSingleSpace(m)
				if !ok {
					return fmt.Errorf("model.merges[%d]: %q is not two tokens separated by one space", i, m)
				}
				pair = [2]string{a, b}
			}
			out = append(out, pair)
			if s.consume(',') {
				continue
			}
			if s.consume(']') {
				break
			}
			return fmt.Errorf("model.merges[%d]: expected ',' or ']'", i)
		}
	}
	*ms = out
	return nil
}

// cutSingleSpace splits "a b" at its only space (HF rejects other shapes).
func cutSingleSpace(m string) (string, string, bool) {
	k := -1
	for i := 0; i < len(m); i++ {
		if m[i] == ' ' {
			if k >= 0 {
				return "", "", false
			}
			k = i
		}
	}
	if k < 0 {
		return "", "", false
	}
	return m[:k], m[k+1:], true
}

type jsonScanner struct {
	data []byte
	i    int
}

func (s *jsonScanner) ws() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// consume skips whitespace and then c if it is next.
func (s *jsonScanner) consume(c byte) bool {
	s.ws()
	if s.i < len(s.data) && s.data[s.i] == c {
		s.i++
		return true
	}
	return false
}

// str reads a JSON string. Strings without escapes are copied directly;
// others go through encoding/json for exact semantics (\u escapes,
// surrogate pairs, invalid UTF-8 replaced by U+FFFD).
func (s *jsonScanner) str() (string, error) {
	s.ws()
	if s.i >= len(s.data) || s.data[s.i] != '"' {
		return "", errors.New("expected a string")
	}
	start := s.i
	escaped := false
	j := s.i + 1
	for ; j < len(s.data); j++ {
		c := s.data[j]
		if c == '\\' {
			escaped = true
			j++
			continue
		}
		if c == '"' {
			break
		}
	}
	if j >= len(s.data) {
		return "", errors.New("unterminated string")
	}
	s.i = j + 1
	raw := s.data[start:s.i]
	inner := raw[1 : len(raw)-1]
	if !escaped && utf8.Valid(inner) {
		return string(inner), nil
	}
	var out string
	if err := json.Unmarshal(raw, &out); err != nil {
		return "", err
	}
	return out, nil
}

// int reads a JSON number that must be an integer.
func (s *jsonScanner) int() (int, error) {
	s.ws()
	j := s.i
	for j < len(s.data) {
		c := s.data[j]
		if (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			j++
			continue
		}
		break
	}
	n, err := strconv.Atoi(string(s.data[s.i:j]))
	if err != nil {
		return 0, fmt.Errorf("id %q is not an integer", s.data[s.i:j])
	}
	s.i = j
	return n, nil
}
