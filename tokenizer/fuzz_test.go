package tokenizer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// minimalJSON is a small valid tokenizer.json exercising most components.
const minimalJSON = `{
  "version": "1.0",
  "added_tokens": [
    {"id": 0, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 9, "content": "[X]", "single_word": true, "lstrip": true, "rstrip": true, "normalized": true, "special": false}
  ],
  "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Prepend", "prepend": "_"}, {"type": "Replace", "pattern": {"String": " "}, "content": "_"}]},
  "pre_tokenizer": null,
  "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
    "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [0], "tokens": ["<s>"]}}},
  "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "_"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
  "model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": true, "fuse_unk": true,
    "vocab": {"<s>": 0, "<unk>": 1, "_": 2, "a": 3, "b": 4, "_a": 5, "ab": 6, "<0x41>": 7, "_ab": 8},
    "merges": ["_ a", ["a", "b"], "_a b"]}
}`

// byteLevelJSON is a small GPT-2 style tokenizer.json.
const byteLevelJSON = `{
  "added_tokens": [{"id": 5, "content": "<|end|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
  "normalizer": null,
  "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": "\\p{N}{1,3}| ?\\p{L}+|\\s+(?!\\S)|\\s+|."}, "behavior": "Isolated", "invert": false},
    {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]},
  "post_processor": {"type": "ByteLevel"},
  "decoder": {"type": "ByteLevel"},
  "model": {"type": "BPE", "ignore_merges": true, "vocab": {"h": 0, "i": 1, "Ġ": 2, "hi": 3, "Ġhi": 4}, "merges": ["h i", "Ġ hi"]}
}`

func FuzzParseTokenizerJSON(f *testing.F) {
	tiny, err := os.ReadFile(filepath.Join(tinyBrownDir, "tokenizer.json"))
	if err != nil {
		f.Fatal(err)
	}
	seeds := [][]byte{[]byte(minimalJSON), []byte(byteLevelJSON), tiny}
	for _, s := range seeds {
		f.Add(s)
		f.Add(s[:len(s)/2])                                                // truncated
		f.Add([]byte(strings.Replace(string(s), `"BPE"`, `"Unigram"`, 1))) // unsupported model
		f.Add([]byte(strings.Replace(string(s), `"merges"`, `"merged"`, 1)))
		f.Add([]byte(strings.Replace(string(s), `: 0`, `: -7`, 1)))
		f.Add([]byte(strings.Replace(string(s), `"id": 0`, `"id": 99999999999`, 1)))
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a"]}}`))
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {"a": 0, "aa": 1}, "merges": [["a", "a", "a"]]}}`))
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(("}, "behavior": "Isolated"}}`))
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "decoder": {"type": "Strip", "content": "", "start": 1, "stop": 0}}`))
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {"\u00e9\ud83d\ude00": 0, "a": 1.5}, "merges": []}}`))

	inputs := []string{"", "a", "ab ab", " <s>ab [X] b", "\xff\xfe", "héllo wörld 123 😀", strings.Repeat("ab", 100)}
	f.Fuzz(func(t *testing.T, data []byte) {
		tk, err := Parse(data, nil)
		if err != nil {
			if !strings.Contains(err.Error(), "tokenizer.json") {
				t.Errorf("error does not name the file: %v", err)
			}
			return
		}
		for _, s := range inputs {
			ids := tk.Encode(s, true)
			for _, id := range ids {
				if id < 0 || id >= tk.VocabSize() {
					t.Fatalf("Encode(%q) produced id %d outside [0, %d)", s, id, tk.VocabSize())
				}
			}
			text := tk.Decode(ids, DecodeOptions{CleanUp: true})
			if !utf8.ValidString(text) {
				t.Errorf("Decode produced invalid UTF-8 %q", text)
			}
			d := tk.NewStreamDecoder(false)
			var b strings.Builder
			for _, id := range append(ids, -1, tk.VocabSize()) {
				b.WriteString(d.Add(id))
			}
			b.WriteString(d.Flush())
			if want := tk.Decode(ids, DecodeOptions{}); b.String() != want {
				t.Errorf("stream decode %q != Decode %q", b.String(), want)
			}
		}
	})
}

func FuzzEncodeDecode(f *testing.F) {
	tk := loadTinyBrown(f)
	for _, s := range []string{
		"", " ", "Hello world", "  two  spaces  ", "tab\tand\nnewline\r\n", "it's DON'T 'll",
		"1234567 3.14", "héllo wörld", "日本語テキスト", "emoji 👨‍👩‍👧 🇺🇸", "\x00\x01\x7f", "\xff\xfe broken",
		"<|endoftext|>", "a<|im_start|>b", "\u00a0\u2009\u3000\u2028", "e\u0301 \ufeff",
	} {
		f.Add(s)
	}
	for _, s := range brownTexts(f, "p_test.jsonl")[:5] {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids := tk.Encode(s, true)
		for _, id := range ids {
			if id < 0 || id >= tk.VocabSize() {
				t.Fatalf("id %d out of range", id)
			}
		}
		got := tk.Decode(ids, DecodeOptions{})
		if !utf8.ValidString(s) || strings.Contains(s, "<|") {
			// Invalid bytes become U+FFFD; special-token text becomes the token.
			if !utf8.ValidString(got) {
				t.Fatalf("Decode produced invalid UTF-8 %q", got)
			}
			return
		}
		if got != s {
			t.Fatalf("round trip:\n got %q\nwant %q", got, s)
		}
		d := tk.NewStreamDecoder(false)
		var b strings.Builder
		for _, id := range ids {
			c := d.Add(id)
			if !utf8.ValidString(c) {
				t.Fatalf("stream chunk %q is not valid UTF-8", c)
			}
			b.WriteString(c)
		}
		b.WriteString(d.Flush())
		if b.String() != s {
			t.Fatalf("stream round trip:\n got %q\nwant %q", b.String(), s)
		}
	})
}

// FuzzFastPatterns checks the hand-written regex matchers against the
// general regexp2 engine on arbitrary text.
func FuzzFastPatterns(f *testing.F) {
	for _, s := range []string{"", "Hello world", "it's  \n\n  x", "ÀbcDéF gHI", "a\u0301\u0302b", "12345 ٣٤٥", " !!\r\n//\n", "\u3000\u3000x\u00a0 "} {
		f.Add(s)
	}
	pats := patternPairs(f)
	f.Fuzz(func(t *testing.T, s string) {
		s = strings.ToValidUTF8(s, "\uFFFD")
		if strings.ContainsRune(s, 'ſ') {
			return // Oniguruma folds ſ to s in (?i:'s); regexp2 does not
		}
		for _, p := range pats {
			comparePatterns(t, p, s)
		}
	})
}
