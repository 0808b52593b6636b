package data

import "strings"

// fakeTok is a byte-level tokenizer: the special tokens below, matched in
// the raw text as HF added tokens are, then one token per byte (id 10+b).
// Token and byte boundaries coincide, so expected labels can be written by
// hand.
type fakeTok struct {
	addsBOS  bool   // Encode(_, true) puts <s> first, like Llama 2's post-processor
	template string // ChatTemplate(); "" for none
}

const byteBase = 10

var fakeSpecials = []string{"<s>", "</s>", "<|im_start|>", "<|im_end|>", "<|eot|>"}

const (
	fBOS = iota
	fEOS
	fIMStart
	fIMEnd
	fEOT
)

func (f fakeTok) Encode(text string, addSpecial bool) []int {
	var ids []int
	if addSpecial && f.addsBOS {
		ids = append(ids, fBOS)
	}
outer:
	for i := 0; i < len(text); {
		for id, s := range fakeSpecials {
			if strings.HasPrefix(text[i:], s) {
				ids = append(ids, id)
				i += len(s)
				continue outer
			}
		}
		ids = append(ids, byteBase+int(text[i]))
		i++
	}
	return ids
}

func (f fakeTok) AddsBOS() bool         { return f.addsBOS }
func (f fakeTok) VocabSize() int        { return byteBase + 256 }
func (f fakeTok) IsSpecial(id int) bool { return id >= 0 && id < len(fakeSpecials) }
func (f fakeTok) BOS() (int, bool)      { return fBOS, true }
func (f fakeTok) EOS() (int, bool)      { return fEOS, true }
func (f fakeTok) ChatTemplate() string  { return f.template }

func (f fakeTok) IDToToken(id int) (string, bool) {
	switch {
	case id >= 0 && id < len(fakeSpecials):
		return fakeSpecials[id], true
	case id >= byteBase && id < byteBase+256:
		return string([]byte{byte(id - byteBase)}), true
	}
	return "", false
}

// fakeSp are the specials the conventions add with fakeTok (no post-processor BOS).
var fakeSp = Specials{BOS: fBOS, EOS: fEOS}

// ids spells text with fakeTok, without <s>.
func ids(text string) []int { return fakeTok{}.Encode(text, false) }

func masked(n int) []int {
	m := make([]int, n)
	for i := range m {
		m[i] = IgnoreIndex
	}
	return m
}

func cat(parts ...[]int) []int {
	var out []int
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// labelled returns the text of the labelled tokens of ex, runs joined by "|".
func labelledText(ex Example) string {
	var b strings.Builder
	in := false
	for i, l := range ex.Labels {
		if l == IgnoreIndex {
			if in {
				b.WriteByte('|')
			}
			in = false
			continue
		}
		in = true
		s, _ := fakeTok{}.IDToToken(l)
		b.WriteString(s)
		_ = i
	}
	return strings.TrimSuffix(b.String(), "|")
}
