package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// Added tokens ("added_tokens" in tokenizer.json: special tokens such as
// <|eot_id|> and extra tokens such as <think>) are found in the text before
// the model sees it, following HF tokenizers' AddedVocabulary: tokens with
// normalized=false are matched in the raw text, the rest of the text is
// normalized piece by piece, and tokens with normalized=true are then matched
// in the normalized pieces. Matching is leftmost-longest (HF uses an
// Aho-Corasick automaton in that mode) and honours single_word, lstrip and rstrip.

type addedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

// tokenMatcher is a byte trie over token contents.
type tokenMatcher struct {
	tokens []*addedToken
	nodes  []trieNode
	first  [256]bool // bytes that start some token
}

type trieNode struct {
	children map[byte]int32
	token    int32 // index into tokens, -1 if no token ends here
}

func newTokenMatcher() *tokenMatcher {
	return &tokenMatcher{nodes: []trieNode{{token: -1}}}
}

// add registers a token under the given pattern (its content, or its
// normalized content for normalized tokens). Later duplicates win.
func (m *tokenMatcher) add(pattern string, t *addedToken) {
	if pattern == "" {
		return
	}
	n := int32(0)
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		child, ok := m.nodes[n].children[c]
		if !ok {
			if m.nodes[n].children == nil {
				m.nodes[n].children = make(map[byte]int32)
			}
			child = int32(len(m.nodes))
			m.nodes[n].children[c] = child
			m.nodes = append(m.nodes, trieNode{token: -1})
		}
		n = child
	}
	m.first[pattern[0]] = true
	m.tokens = append(m.tokens, t)
	m.nodes[n].token = int32(len(m.tokens) - 1)
}

func (m *tokenMatcher) empty() bool { return m == nil || len(m.tokens) == 0 }

// longestMatch returns the longest token of m starting at s[i:] and its end.
func longestMatch[S string | []byte](m *tokenMatcher, s S, i int) (*addedToken, int) {
	n := int32(0)
	var best *addedToken
	end := -1
	for j := i; j < len(s); j++ {
		child, ok := m.nodes[n].children[s[j]]
		if !ok {
			break
		}
		n = child
		if t := m.nodes[n].token; t >= 0 {
			best, end = m.tokens[t], j+1
		}
	}
	return best, end
}

// segment is a stretch of text, either an added token or text for the model.
type segment struct {
	start, end int
	token      *addedToken // nil for ordinary text
}

// split cuts s into text and added-token segments (HF AddedVocabulary::find_matches).
func (m *tokenMatcher) split(s string, dst []segment) []segment {
	prevEnd := 0 // end of the last emitted token (start_offset in HF)
	for i := 0; i < len(s); {
		if !m.first[s[i]] {
			i++
			continue
		}
		t, end := longestMatch(m, s, i)
		if t == nil {
			i++
			continue
		}
		start, stop := i, end
		i = end // the automaton resumes after the match, whether or not it is kept
		if t.SingleWord {
			startOK := start == 0 || !endsWithWordChar(s[:start])
			stopOK := stop == len(s) || !startsWithWordChar(s[stop:])
			if !startOK || !stopOK {
				continue
			}
		}
		if t.LStrip {
			// Swallow the whitespace before the token, but not text that an
			// earlier token already took.
			start = max(len(strings.TrimRightFunc(s[:start], isSpace)), prevEnd)
		}
		if t.RStrip {
			stop = len(s) - len(strings.TrimLeftFunc(s[stop:], isSpace))
			i = stop
		}
		if start < prevEnd {
			start = prevEnd
		}
		if prevEnd < start {
			dst = append(dst, segment{start: prevEnd, end: start})
		}
		dst = append(dst, segment{start: start, end: stop, token: t})
		prevEnd = stop
	}
	if prevEnd < len(s) {
		dst = append(dst, segment{start: prevEnd, end: len(s)})
	}
	return dst
}

func endsWithWordChar(s string) bool {
	r, _ := utf8.DecodeLastRuneInString(s)
	return s != "" && isWordChar(r)
}

func startsWithWordChar(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return s != "" && isWordChar(r)
}
