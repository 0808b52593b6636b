package tokenizer

import (
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
)

type patternPair struct {
	name       string
	fast, slow pattern
}

// patternPairs returns each hand-written matcher with the regexp2 compilation
// of the same regex.
func patternPairs(t testing.TB) []patternPair {
	var out []patternPair
	for _, x := range []struct{ name, expr string }{
		{"gpt2", reGPT2}, {"llama3", reLlama3}, {"qwen", reQwen}, {"nemo", reNemo},
	} {
		fast, err := compileRegex(x.expr)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := fast.(fastPattern); !ok {
			t.Fatalf("%s: no fast path", x.name)
		}
		slow, err := compileRegexp2(x.expr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, patternPair{x.name, fast, slow})
	}
	return out
}

func comparePatterns(t *testing.T, p patternPair, s string) {
	t.Helper()
	got := p.fast.findAll([]byte(s), nil)
	want := p.slow.findAll([]byte(s), nil)
	if i := firstDiff(got, want); i >= 0 {
		show := func(ms [][2]int) []string {
			var out []string
			for _, m := range ms {
				out = append(out, s[m[0]:m[1]])
			}
			return out
		}
		t.Errorf("%s on %q: match %d differs\n fast %q\n slow %q", p.name, s, i, show(got), show(want))
	}
}

// TestFastPatternsMatchRegexp2 compares the fast matchers with regexp2 on all
// test-vector texts and on random strings over a tricky alphabet.
func TestFastPatternsMatchRegexp2(t *testing.T) {
	pats := patternPairs(t)
	var texts []string
	for _, c := range readCases(t, filepath.Join(vectorsDir, "llama3", "cases.jsonl")) {
		texts = append(texts, c.Text)
	}
	alphabet := []rune("aZ'sStTrRevVmMlLdD 0123456789\t\n\r\u000b\u000c !?.,-/_\"" +
		"éÉßǅʰªא٣¹Ⅻ\u0301\u0308\u20dd\u00a0\u0085\u2009\u2028\u2029\u3000\ufeff\u200b日本カ😀🏽\u200d")
	rng := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		var b strings.Builder
		for range rng.IntN(24) {
			b.WriteRune(alphabet[rng.IntN(len(alphabet))])
		}
		texts = append(texts, b.String())
	}
	for _, p := range pats {
		for _, s := range texts {
			comparePatterns(t, p, s)
		}
	}
}

func TestContractionLongS(t *testing.T) {
	// Oniguruma's (and JavaScript's) case-insensitive match folds U+017F to 's'.
	for _, m := range []fastPattern{matchLlama3, matchQwen} {
		got := m.findAll([]byte("it'ſ"), nil)
		if len(got) != 2 || got[1] != [2]int{2, 5} {
			t.Errorf("got %v", got)
		}
	}
}

func TestSplitBehaviors(t *testing.T) {
	// The example of the HF tokenizers documentation for Split("-").
	text := "the-final--countdown"
	for _, c := range []struct {
		beh  splitBehavior
		want string
	}{
		{behaviorRemoved, "the|final|countdown"},
		{behaviorIsolated, "the|-|final|-|-|countdown"},
		{behaviorMergedWithPrevious, "the-|final-|-|countdown"},
		{behaviorMergedWithNext, "the|-final|-|-countdown"},
		{behaviorContiguous, "the|-|final|--|countdown"},
	} {
		s := &splitPre{pat: &literalPattern{lit: []byte("-")}, behavior: c.beh}
		var st encState
		var parts []string
		for _, p := range s.split(&st, piece{b: []byte(text), atStart: true}, nil) {
			parts = append(parts, string(p.b))
		}
		if got := strings.Join(parts, "|"); got != c.want {
			t.Errorf("behavior %d: got %q, want %q", c.beh, got, c.want)
		}
	}
	// invert: the matches are kept, the rest removed (HF Whitespace).
	s := &splitPre{pat: fastPattern(matchWhitespaceWord), behavior: behaviorRemoved, invert: true}
	var st encState
	var parts []string
	for _, p := range s.split(&st, piece{b: []byte("Hey friend!  How are you?!?")}, nil) {
		parts = append(parts, string(p.b))
	}
	if got, want := strings.Join(parts, "|"), "Hey|friend|!|How|are|you|?!?"; got != want {
		t.Errorf("Whitespace: got %q, want %q", got, want)
	}
}

func TestTranslatePossessive(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`a++`, `(?>a+)`},
		{`[^\s\p{L}]++[\r\n]*`, `(?>[^\s\p{L}]+)[\r\n]*`},
		{`\p{N}{1,3}+x`, `(?>\p{N}{1,3})x`},
		{`(?:ab)*+|c?+`, `(?>(?:ab)*)|(?>c?)`},
		{`a+?b`, `a+?b`},
		{`\+{2}`, `\+{2}`},
	} {
		if got := translatePossessive(c.in); got != c.want {
			t.Errorf("translatePossessive(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	// The o200k (GPT-4o) pattern uses possessive quantifiers; it must compile.
	o200k := `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	if _, err := compileRegex(o200k + `|x++`); err != nil {
		t.Error(err)
	}
}
