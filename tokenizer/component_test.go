package tokenizer

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mustParse(t *testing.T, js string) *Tokenizer {
	t.Helper()
	tk, err := Parse([]byte(js), nil)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func TestMinimalTokenizer(t *testing.T) {
	tk := mustParse(t, minimalJSON)
	for _, c := range []struct {
		text string
		want []int
	}{
		{"", nil},
		{"ab", []int{8}},    // _ a b: "_ a" (rank 0) before "a b" (rank 1), then "_a b"
		{"A", []int{2, 7}},  // byte fallback to <0x41>
		{"é", []int{2, 1}},  // no <0xC3>: unk
		{"éé", []int{2, 1}}, // fuse_unk
		{"<s>ab", []int{0, 8}},
		{"ab<s>", []int{8, 0}},
		{"b ab", []int{2, 4, 8}},
	} {
		if got := tk.Encode(c.text, false); firstDiff(got, c.want) >= 0 {
			t.Errorf("Encode(%q) = %v, want %v", c.text, got, c.want)
		}
	}
	if got := tk.Encode("ab", true); firstDiff(got, []int{0, 8}) >= 0 {
		t.Errorf("Encode(ab, true) = %v", got)
	}
	if !tk.AddsBOS() {
		t.Error("AddsBOS = false")
	}
	if got := tk.Decode([]int{2, 7, 8}, DecodeOptions{}); got != "A ab" {
		t.Errorf("Decode = %q", got)
	}
	if got := tk.Decode([]int{0, 8}, DecodeOptions{SkipSpecial: true}); got != "ab" {
		t.Errorf("Decode(skip) = %q", got)
	}
}

func TestByteLevelSplitTokenizer(t *testing.T) {
	tk := mustParse(t, byteLevelJSON)
	// "hi" is in the vocab: ignore_merges emits it directly; " hi" -> "Ġhi".
	if got := tk.Encode("hi hi<|end|>", false); firstDiff(got, []int{3, 4, 5}) >= 0 {
		t.Errorf("Encode = %v", got)
	}
	if got := tk.Decode([]int{3, 4, 5}, DecodeOptions{}); got != "hi hi<|end|>" {
		t.Errorf("Decode = %q", got)
	}
	if _, ok := tk.pre.(seqPreTokenizer)[0].(*splitPre).pat.(*regexp2Pattern); !ok {
		t.Error("an unknown regex should use the regexp2 fallback")
	}
	if tk.AddsBOS() {
		t.Error("AddsBOS = true")
	}
}

// TestMetaspace covers the Metaspace pre-tokenizer (prepend_scheme "first",
// split) and decoder.
func TestMetaspace(t *testing.T) {
	// Merges ▁ H (rank 0), H e (1), He y (2): "▁Hey" ends as ▁H e y (there is
	// no "▁H e" merge) while "Hey" becomes one token.
	js := `{
  "added_tokens": [{"id": 0, "content": "<s>", "normalized": false, "special": true}],
  "normalizer": null,
  "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": true},
  "decoder": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": true},
  "model": {"type": "BPE", "vocab": {"<s>": 0, "▁": 1, "H": 2, "e": 3, "y": 4, "▁Hey": 5, "▁H": 6, "He": 7, "Hey": 8},
    "merges": ["▁ H", "H e", "He y"]}
}`
	tk := mustParse(t, js)
	if got := tk.Encode("Hey Hey", false); firstDiff(got, []int{6, 3, 4, 6, 3, 4}) >= 0 {
		t.Errorf("Encode = %v", got)
	}
	// After an added token the piece does not start the text: no "▁" (scheme "first").
	if got := tk.Encode("Hey<s>Hey", false); firstDiff(got, []int{6, 3, 4, 0, 8}) >= 0 {
		t.Errorf("Encode = %v", got)
	}
	// Decoder: the first token loses its "▁", the others turn it into a space.
	if got := tk.Decode([]int{6, 3, 4, 6, 3, 4}, DecodeOptions{}); got != "Hey Hey" {
		t.Errorf("Decode = %q", got)
	}
}

// rustStrip is HF's Strip decoder on one token.
func rustStrip(tok string, c rune, start, stop int) string {
	rs := []rune(tok)
	a := 0
	for a < len(rs) && a < start && rs[a] == c {
		a++
	}
	b := len(rs)
	for k := 0; k < stop && b > a && rs[b-1] == c; k++ {
		b--
	}
	return string(rs[a:b])
}

// TestFusedStripStreaming checks the incremental Strip against the batch
// definition on the fused token, for random token sequences.
func TestFusedStripStreaming(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	toks := []string{" ", "  ", "a", " b", "c ", " ", "é", ""}
	for _, cfg := range [][2]int{{1, 0}, {2, 2}, {0, 1}, {3, 3}} {
		steps := []decoderStep{fuseStep{}, &stripStep{content: ' ', start: cfg[0], stop: cfg[1]}}
		for range 500 {
			var seq []string
			for range rng.IntN(8) {
				seq = append(seq, toks[rng.IntN(len(toks))])
			}
			want := rustStrip(strings.Join(seq, ""), ' ', cfg[0], cfg[1])
			k := &sink{}
			var s stage = k
			for i := len(steps) - 1; i >= 0; i-- {
				s = steps[i].newStage(s)
			}
			for _, x := range seq {
				s.tok(-1, x)
			}
			s.end()
			if got := string(k.buf); got != want {
				t.Fatalf("strip%v of %q: got %q, want %q", cfg, seq, got, want)
			}
		}
	}
}

func TestFusedReplaceStreaming(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	toks := []string{"a", "b", "ab", "aba", "c", "▁", "x▁"}
	for _, lit := range []string{"ab", "aba", "▁"} {
		steps := []decoderStep{fuseStep{}, &replaceStep{pat: &literalPattern{lit: []byte(lit)}, content: "<R>"}}
		for range 300 {
			var seq []string
			for range rng.IntN(8) {
				seq = append(seq, toks[rng.IntN(len(toks))])
			}
			want := strings.ReplaceAll(strings.Join(seq, ""), lit, "<R>")
			k := &sink{}
			var s stage = k
			for i := len(steps) - 1; i >= 0; i-- {
				s = steps[i].newStage(s)
			}
			for _, x := range seq {
				s.tok(-1, x)
			}
			s.end()
			if got := string(k.buf); got != want {
				t.Fatalf("replace %q in %q: got %q, want %q", lit, seq, got, want)
			}
		}
	}
}

func TestLossyUTF8(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"abc", "abc"},
		{"\xe4\xbd", "\ufffd"},                 // truncated character: one replacement
		{"\xe4\xbdA", "\ufffdA"},               // ... followed by ASCII
		{"\xe4A", "\ufffdA"},                   // lead byte then a non-continuation
		{"\xff\xfe", "\ufffd\ufffd"},           // bytes that never start a character
		{"\xed\xa0\x80", "\ufffd\ufffd\ufffd"}, // surrogate: ED is followed by an out-of-range byte
		{"\xf0\x9f\x98", "\ufffd"},
		{"\xf0\x9f\x98\x80", "😀"},
		{"\xc0\xaf", "\ufffd\ufffd"}, // overlong
	} {
		if got := string(appendLossyUTF8(nil, []byte(c.in))); got != c.want {
			t.Errorf("lossy(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	for _, c := range []struct {
		in   string
		want int
	}{
		{"", 0}, {"a", 0}, {"\xe4", 1}, {"\xe4\xbd", 2}, {"a\xf0\x9f\x98", 3}, {"\xe4\xbd\xa0", 0},
		{"\xe4A", 0}, {"\xbd", 0}, {"\xed\xa0", 0}, {"\xf0\x9f\x98\x80", 0}, {"\xff", 0},
	} {
		if got := incompleteTail([]byte(c.in)); got != c.want {
			t.Errorf("incompleteTail(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

func TestByteToken(t *testing.T) {
	for _, c := range []struct {
		in string
		b  byte
		ok bool
	}{{"<0x0A>", 10, true}, {"<0xff>", 255, true}, {"<0x+F>", 15, true}, {"<0xG0>", 0, false}, {"<0x0A", 0, false}, {"<0x0A>>", 0, false}} {
		b, ok := byteToken(c.in)
		if b != c.b || ok != c.ok {
			t.Errorf("byteToken(%q) = %d, %v", c.in, b, ok)
		}
	}
}

func TestCleanUp(t *testing.T) {
	in := "Hello , world ! It 's a test . Don 't ? I 'm , we 've , they 're ' quoted ' n't"
	want := "Hello, world! It's a test. Don 't? I'm, we've, they're'quoted'n't"
	if got := cleanUpTokenization(in); got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

// TestLoadErrors checks that bad input is a clear error naming the file.
func TestLoadErrors(t *testing.T) {
	base := minimalJSON
	for _, c := range []struct {
		name, old, new, want string
	}{
		{"model type", `"type": "BPE"`, `"type": "WordPiece"`, `unsupported model type "WordPiece"`},
		{"normalizer", `{"type": "NFC"}`, `{"type": "Precompiled"}`, `unsupported normalizer type "Precompiled"`},
		{"pre_tokenizer", `"pre_tokenizer": null`, `"pre_tokenizer": {"type": "UnicodeScripts"}`, `unsupported pre_tokenizer type "UnicodeScripts"`},
		{"decoder", `{"type": "Fuse"}`, `{"type": "CTC"}`, `unsupported decoder type "CTC"`},
		{"post_processor", `"type": "TemplateProcessing"`, `"type": "Fancy"`, `unsupported post_processor type "Fancy"`},
		{"merge token", `"_a b"]`, `"_a q"]`, `model.merges[2]: token "q" not in vocab`},
		{"merge shape", `"_a b"]`, `"_ab"]`, `model.merges[2]`},
		{"template", `"ids": [0]`, `"ids": [77]`, `post_processor: id 77`},
		{"regex", `"pre_tokenizer": null`, `"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(("}, "behavior": "Isolated"}`, `regex "(("`},
		{"behavior", `"pre_tokenizer": null`, `"pre_tokenizer": {"type": "Split", "pattern": {"String": "x"}, "behavior": "Sideways"}`, `unsupported split behavior`},
		{"json", `"version"`, `"version`, `tokenizer.json`},
	} {
		js := strings.Replace(base, c.old, c.new, 1)
		if js == base {
			t.Fatalf("%s: replacement did not apply", c.name)
		}
		_, err := Parse([]byte(js), nil)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "tokenizer tokenizer.json") {
			t.Errorf("%s: err = %v, want it to mention %q", c.name, err, c.want)
		}
	}
	if _, err := Parse([]byte(minimalJSON), []byte(`{"bos_token": 7}`)); err == nil || !strings.Contains(err.Error(), "tokenizer_config.json") {
		t.Errorf("bad config: err = %v", err)
	}
	dir := t.TempDir()
	if _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("empty dir: err = %v", err)
	}
	p := filepath.Join(dir, "tokenizer.json")
	if err := os.WriteFile(p, []byte(`{"model": {"type": "Unigram", "vocab": [["a", 0]]}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFile(p); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "Unigram") {
		t.Errorf("unigram: err = %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(`{`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(minimalJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "tokenizer_config.json")) {
		t.Errorf("bad config file: err = %v", err)
	}
}

func TestConfig(t *testing.T) {
	cfg := `{"bos_token": {"content": "<s>", "__type": "AddedToken"}, "eos_token": "<unk>",
		"clean_up_tokenization_spaces": true,
		"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]}`
	tk, err := Parse([]byte(minimalJSON), []byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := tk.BOS(); !ok || id != 0 {
		t.Errorf("BOS = %d %v", id, ok)
	}
	if id, ok := tk.EOS(); !ok || id != 1 {
		t.Errorf("EOS = %d %v", id, ok)
	}
	if !tk.CleanUpSpaces() || tk.ChatTemplate() != "D" || !tk.AddsBOS() {
		t.Errorf("config: cleanup %v template %q addsBOS %v", tk.CleanUpSpaces(), tk.ChatTemplate(), tk.AddsBOS())
	}
	// The vector folders' configs.
	for _, c := range []struct {
		folder   string
		bos, eos int
		addsBOS  bool
		cleanUp  bool
		template bool
	}{
		{"llama3", 128000, 128001, false, true, true},
		{"qwen3", -1, 151645, false, false, true},
		{"llama2", 1, 2, true, false, false},
		{"mistral_nemo", 1, 2, true, false, true},
		{"gpt2", 50256, 50256, false, true, false},
	} {
		tk := loadVectorTokenizer(t, c.folder)
		bos, _ := tk.BOS()
		eos, _ := tk.EOS()
		if bos != c.bos || eos != c.eos || tk.AddsBOS() != c.addsBOS || tk.CleanUpSpaces() != c.cleanUp || (tk.ChatTemplate() != "") != c.template {
			t.Errorf("%s: bos %d eos %d addsBOS %v cleanUp %v template %v", c.folder, bos, eos, tk.AddsBOS(), tk.CleanUpSpaces(), tk.ChatTemplate() != "")
		}
	}
}

// TestConcurrentEncode: one Tokenizer used from several goroutines (run with -race).
func TestConcurrentEncode(t *testing.T) {
	tk := loadTinyBrown(t)
	texts := brownTexts(t, "p_test.jsonl")
	want := make([][]int, len(texts))
	for i, s := range texts {
		want[i] = tk.Encode(s, false)
	}
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for k := range texts {
				i := (k + g*7) % len(texts)
				if got := tk.Encode(texts[i], false); firstDiff(got, want[i]) >= 0 {
					t.Errorf("goroutine %d: text %d differs", g, i)
					return
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
}

// TestAddedTokenOptions covers lstrip, rstrip and single_word as in HF's
// AddedVocabulary::find_matches.
func TestAddedTokenOptions(t *testing.T) {
	split := func(tok addedToken, text string) string {
		m := newTokenMatcher()
		m.add(tok.Content, &tok)
		var parts []string
		for _, sg := range m.split(text, nil) {
			p := text[sg.start:sg.end]
			if sg.token != nil {
				p = "[" + p + "]"
			}
			parts = append(parts, p)
		}
		return strings.Join(parts, "|")
	}
	for _, c := range []struct {
		tok        addedToken
		text, want string
	}{
		{addedToken{Content: "<mask>"}, "Hello <mask> world", "Hello |[<mask>]| world"},
		{addedToken{Content: "<mask>", LStrip: true}, "Hello  <mask> world", "Hello|[  <mask>]| world"},
		{addedToken{Content: "<mask>", RStrip: true}, "Hello <mask>  world", "Hello |[<mask>  ]|world"},
		{addedToken{Content: "<mask>", LStrip: true, RStrip: true}, "<mask> <mask> x", "[<mask> ]|[<mask> ]|x"},
		{addedToken{Content: "ab", SingleWord: true}, "ab cab ab_ ab", "[ab]| cab ab_ |[ab]"},
		{addedToken{Content: "<s>"}, "<s><s>", "[<s>]|[<s>]"},
	} {
		if got := split(c.tok, c.text); got != c.want {
			t.Errorf("%+v on %q: got %q, want %q", c.tok, c.text, got, c.want)
		}
	}
	// Leftmost-longest: at the same position the longer token wins.
	m := newTokenMatcher()
	for _, s := range []string{"<|a", "<|a|>", "|>"} {
		m.add(s, &addedToken{Content: s})
	}
	var got []string
	for _, sg := range m.split("x<|a|>|>", nil) {
		got = append(got, "x<|a|>|>"[sg.start:sg.end])
	}
	if strings.Join(got, " ") != "x <|a|> |>" {
		t.Errorf("leftmost-longest: %q", got)
	}
}
