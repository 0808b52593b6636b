package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Normalizers rewrite each piece of text between added tokens before
// pre-tokenization (HF tokenizers `normalizer`). We do not track offsets, so a
// normalizer is a plain string function.
type normalizer interface {
	normalize(s string) string
}

// parseNormalizer builds a normalizer from its tokenizer.json object; null gives nil.
func parseNormalizer(raw json.RawMessage) (normalizer, error) {
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
			Normalizers []json.RawMessage `json:"normalizers"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		var seq seqNormalizer
		for i, r := range v.Normalizers {
			n, err := parseNormalizer(r)
			if err != nil {
				return nil, fmt.Errorf("normalizers[%d]: %w", i, err)
			}
			if n != nil {
				seq = append(seq, n)
			}
		}
		return seq, nil
	case "NFC":
		return unicodeNormalizer{norm.NFC}, nil
	case "NFD":
		return unicodeNormalizer{norm.NFD}, nil
	case "NFKC":
		return unicodeNormalizer{norm.NFKC}, nil
	case "NFKD":
		return unicodeNormalizer{norm.NFKD}, nil
	case "Lowercase":
		return lowercaseNormalizer{}, nil
	case "Strip":
		v := struct {
			Left  *bool `json:"strip_left"`
			Right *bool `json:"strip_right"`
		}{}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		return stripNormalizer{left: v.Left == nil || *v.Left, right: v.Right == nil || *v.Right}, nil
	case "StripAccents":
		return stripAccentsNormalizer{}, nil
	case "Prepend":
		var v struct {
			Prepend string `json:"prepend"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		return prependNormalizer{v.Prepend}, nil
	case "Replace":
		p, content, err := parseReplace(raw)
		if err != nil {
			return nil, err
		}
		return &replaceNormalizer{pat: p, content: content}, nil
	case "ByteLevel":
		return byteLevelNormalizer{}, nil
	case "BertNormalizer":
		v := struct {
			CleanText          *bool `json:"clean_text"`
			HandleChineseChars *bool `json:"handle_chinese_chars"`
			StripAccents       *bool `json:"strip_accents"`
			Lowercase          *bool `json:"lowercase"`
		}{}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		b := bertNormalizer{cleanText: true, chinese: true, lowercase: true}
		if v.CleanText != nil {
			b.cleanText = *v.CleanText
		}
		if v.HandleChineseChars != nil {
			b.chinese = *v.HandleChineseChars
		}
		if v.Lowercase != nil {
			b.lowercase = *v.Lowercase
		}
		// strip_accents null means "follow lowercase" (HF BertNormalizer).
		b.stripAccents = b.lowercase
		if v.StripAccents != nil {
			b.stripAccents = *v.StripAccents
		}
		return b, nil
	case "":
		return nil, fmt.Errorf("normalizer without a type")
	}
	return nil, fmt.Errorf("unsupported normalizer type %q", head.Type)
}

// parseReplace reads the {"pattern": {"String"|"Regex": ...}, "content": ...}
// shape shared by the Replace normalizer and the Replace decoder.
func parseReplace(raw json.RawMessage) (pattern, string, error) {
	var v struct {
		Pattern struct {
			String *string `json:"String"`
			Regex  *string `json:"Regex"`
		} `json:"pattern"`
		Content string `json:"content"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, "", err
	}
	switch {
	case v.Pattern.String != nil:
		return &literalPattern{lit: []byte(*v.Pattern.String)}, v.Content, nil
	case v.Pattern.Regex != nil:
		p, err := compileRegex(*v.Pattern.Regex)
		return p, v.Content, err
	}
	return nil, "", fmt.Errorf("replace: pattern must have String or Regex")
}

type seqNormalizer []normalizer

func (q seqNormalizer) normalize(s string) string {
	for _, n := range q {
		s = n.normalize(s)
	}
	return s
}

type unicodeNormalizer struct{ form norm.Form }

func (u unicodeNormalizer) normalize(s string) string {
	if u.form.IsNormalString(s) {
		return s
	}
	return u.form.String(s)
}

// lowercaseNormalizer maps each character through Unicode lowercase as Rust's
// char::to_lowercase does (no context: no final-sigma rule).
type lowercaseNormalizer struct{}

func (lowercaseNormalizer) normalize(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if r == 'İ' { // the one unconditional multi-character lowercase mapping
			b.WriteString("i\u0307")
			continue
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

type stripNormalizer struct{ left, right bool }

func (n stripNormalizer) normalize(s string) string {
	if n.left {
		s = strings.TrimLeftFunc(s, unicode.IsSpace)
	}
	if n.right {
		s = strings.TrimRightFunc(s, unicode.IsSpace)
	}
	return s
}

// stripAccentsNormalizer removes combining marks (HF StripAccents, usually after NFD).
type stripAccentsNormalizer struct{}

func (stripAccentsNormalizer) normalize(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Mn, r) {
			return -1
		}
		return r
	}, s)
}

// prependNormalizer prefixes non-empty text (HF Prepend; Llama/Mistral "legacy"
// layouts use it to add SentencePiece's dummy-prefix "▁").
type prependNormalizer struct{ prefix string }

func (n prependNormalizer) normalize(s string) string {
	if s == "" {
		return s
	}
	return n.prefix + s
}

type replaceNormalizer struct {
	pat     pattern
	content string
}

func (n *replaceNormalizer) normalize(s string) string {
	return replaceAll(n.pat, s, n.content)
}

// replaceAll substitutes every match of p in s.
func replaceAll(p pattern, s, content string) string {
	if lp, ok := p.(*literalPattern); ok {
		if len(lp.lit) == 0 {
			return s
		}
		return strings.ReplaceAll(s, string(lp.lit), content)
	}
	ms := p.findAll([]byte(s), nil)
	if len(ms) == 0 {
		return s
	}
	var b strings.Builder
	prev := 0
	for _, m := range ms {
		b.WriteString(s[prev:m[0]])
		b.WriteString(content)
		prev = m[1]
	}
	b.WriteString(s[prev:])
	return b.String()
}

// byteLevelNormalizer spells every byte with the ByteLevel alphabet.
type byteLevelNormalizer struct{}

func (byteLevelNormalizer) normalize(s string) string {
	return string(appendByteLevel(nil, []byte(s)))
}

// bertNormalizer follows HF BertNormalizer: drop control characters and map
// whitespace to ' ', put spaces around CJK ideographs, strip accents, lowercase.
type bertNormalizer struct {
	cleanText, chinese, stripAccents, lowercase bool
}

func (n bertNormalizer) normalize(s string) string {
	var b strings.Builder
	for _, r := range s {
		if n.cleanText {
			if r == 0 || r == utf8.RuneError || isBertControl(r) {
				continue
			}
			if isSpace(r) {
				r = ' '
			}
		}
		if n.chinese && isCJK(r) {
			b.WriteByte(' ')
			b.WriteRune(r)
			b.WriteByte(' ')
			continue
		}
		b.WriteRune(r)
	}
	out := b.String()
	if n.stripAccents {
		out = stripAccentsNormalizer{}.normalize(norm.NFD.String(out))
	}
	if n.lowercase {
		out = lowercaseNormalizer{}.normalize(out)
	}
	return out
}

func isBertControl(r rune) bool {
	if r == '\t' || r == '\n' || r == '\r' {
		return false
	}
	return unicode.Is(unicode.C, r)
}

func isCJK(r rune) bool {
	return (r >= 0x4E00 && r <= 0x9FFF) || (r >= 0x3400 && r <= 0x4DBF) || (r >= 0x20000 && r <= 0x2A6DF) ||
		(r >= 0x2A700 && r <= 0x2B73F) || (r >= 0x2B740 && r <= 0x2B81F) || (r >= 0x2B820 && r <= 0x2CEAF) ||
		(r >= 0xF900 && r <= 0xFAFF) || (r >= 0x2F800 && r <= 0x2FA1F)
}
