package tokenizer

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	tinyBrownDir = "../models/tiny-brown"
	brownDir     = "../testdata/datasets/brown"
)

func loadTinyBrown(t testing.TB) *Tokenizer {
	return loadCached(t, "tiny-brown", func() (*Tokenizer, error) { return LoadDir(tinyBrownDir) })
}

// brownTexts reads the "text" field of every record of a Brown JSONL split.
func brownTexts(t testing.TB, name string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(brownDir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		out = append(out, rec.Text)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestTinyBrown(t *testing.T) {
	tk := loadTinyBrown(t)

	if got := tk.VocabSize(); got != 4096 {
		t.Errorf("VocabSize = %d, want 4096", got)
	}
	// Ids 3..258 are the 256 bytes: every single ASCII character is one piece
	// made of one byte, so it must encode to 3 + byte.
	for b := 0; b < 128; b++ {
		s := string(rune(b))
		if got := tk.Encode(s, false); len(got) != 1 || got[0] != 3+b {
			t.Errorf("Encode(%q) = %v, want [%d]", s, got, 3+b)
		}
	}
	for b := 0; b < 256; b++ {
		tok, ok := tk.IDToToken(3 + b)
		if !ok || tok != byteToUTF8[b] {
			t.Errorf("IDToToken(%d) = %q, %v; want %q", 3+b, tok, ok, byteToUTF8[b])
		}
	}
	// Special tokens are recognised in text; encode adds nothing (post_processor null).
	for _, c := range []struct {
		text string
		want []int
	}{
		{"<|endoftext|>", []int{0}},
		{"<|im_start|>user<|im_end|>", nil},
	} {
		got := tk.Encode(c.text, true)
		if c.want != nil && firstDiff(got, c.want) >= 0 {
			t.Errorf("Encode(%q) = %v, want %v", c.text, got, c.want)
		}
		if len(got) == 0 || got[0] != tk.Encode(c.text, false)[0] {
			t.Errorf("Encode(%q, true) = %v differs from Encode(.., false)", c.text, got)
		}
	}
	if got := tk.Encode("<|im_start|>user<|im_end|>", false); got[0] != 1 || got[len(got)-1] != 2 {
		t.Errorf("ChatML markers: %v", got)
	}
	if id, ok := tk.BOS(); !ok || id != 0 {
		t.Errorf("BOS = %d, %v", id, ok)
	}
	if id, ok := tk.EOS(); !ok || id != 0 {
		t.Errorf("EOS = %d, %v", id, ok)
	}
	if tk.AddsBOS() {
		t.Error("AddsBOS = true, want false (post_processor null)")
	}
	if tk.CleanUpSpaces() {
		t.Error("CleanUpSpaces = true")
	}
	if !strings.Contains(tk.ChatTemplate(), "<|im_start|>") {
		t.Errorf("ChatTemplate = %q", tk.ChatTemplate())
	}
	if !tk.IsSpecial(0) || !tk.IsSpecial(2) || tk.IsSpecial(3) {
		t.Error("IsSpecial wrong")
	}
	if id, ok := tk.TokenToID("<|im_end|>"); !ok || id != 2 {
		t.Errorf("TokenToID(<|im_end|>) = %d, %v", id, ok)
	}
	if got := tk.Decode([]int{0, 3 + 'H', 3 + 'i', 2}, DecodeOptions{}); got != "<|endoftext|>Hi<|im_end|>" {
		t.Errorf("Decode = %q", got)
	}
	if got := tk.Decode([]int{0, 3 + 'H', 3 + 'i', 2}, DecodeOptions{SkipSpecial: true}); got != "Hi" {
		t.Errorf("Decode(skip special) = %q", got)
	}

	// Round trip of held-out Brown text, at about 3.6 characters per token.
	texts := brownTexts(t, "h_test.jsonl")
	chars, tokens := 0, 0
	for i, text := range texts {
		ids := tk.Encode(text, false)
		if got := tk.Decode(ids, DecodeOptions{}); got != text {
			t.Fatalf("record %d: round trip differs:\n got %q\nwant %q", i, got, text)
		}
		for _, id := range ids {
			if id < 3 || id >= 4096 {
				t.Fatalf("record %d: unexpected id %d", i, id)
			}
		}
		chars += len(text)
		tokens += len(ids)
	}
	if r := float64(chars) / float64(tokens); r < 3 || r > 4.5 {
		t.Errorf("%.2f characters per token, want about 3.6", r)
	}
}

// BenchmarkEncodeBrown measures encoding throughput on the held-out Brown text
// with the tiny-brown (GPT-2 style byte-level BPE) tokenizer.
func BenchmarkEncodeBrown(b *testing.B) {
	benchmarkEncode(b, loadTinyBrown(b), append(brownTexts(b, "h_test.jsonl"), brownTexts(b, "p_test.jsonl")...))
}

// BenchmarkEncodeBrownCold is the same without the word cache (every word merged from scratch).
func BenchmarkEncodeBrownCold(b *testing.B) {
	tk := loadTinyBrown(b)
	texts := append(brownTexts(b, "h_test.jsonl"), brownTexts(b, "p_test.jsonl")...)
	m := tk.model.(*bpeModel)
	benchmarkEncodeWith(b, texts, func(s string) {
		m.cache.init(0)
		tk.Encode(s, false)
	})
	m.cache.init(50000)
}

// The big vocabularies: Llama 3 (Split regex + ignore_merges) and Mistral
// (no pre-tokenizer: each paragraph is one long BPE word).
func BenchmarkEncodeLlama3(b *testing.B) {
	benchmarkEncode(b, loadVectorTokenizer(b, "llama3"), brownTexts(b, "p_test.jsonl"))
}

func BenchmarkEncodeMistral(b *testing.B) {
	benchmarkEncode(b, loadVectorTokenizer(b, "mistral"), brownTexts(b, "p_test.jsonl"))
}

func BenchmarkEncodeSentencePiece(b *testing.B) {
	tk := loadCached(b, "llama2.model", func() (*Tokenizer, error) {
		return LoadSentencePieceModel(filepath.Join(vectorsDir, "llama2", "tokenizer.model"))
	})
	benchmarkEncode(b, tk, brownTexts(b, "p_test.jsonl"))
}

func BenchmarkDecodeBrown(b *testing.B) {
	tk := loadTinyBrown(b)
	var ids [][]int
	n := 0
	for _, s := range brownTexts(b, "h_test.jsonl") {
		ids = append(ids, tk.Encode(s, false))
		n += len(s)
	}
	b.SetBytes(int64(n))
	b.ResetTimer()
	for range b.N {
		for _, x := range ids {
			tk.Decode(x, DecodeOptions{})
		}
	}
}

func benchmarkEncode(b *testing.B, tk *Tokenizer, texts []string) {
	benchmarkEncodeWith(b, texts, func(s string) { tk.Encode(s, false) })
}

func benchmarkEncodeWith(b *testing.B, texts []string, enc func(string)) {
	n := 0
	for _, s := range texts {
		n += len(s)
	}
	b.SetBytes(int64(n))
	b.ResetTimer()
	for range b.N {
		for _, s := range texts {
			enc(s)
		}
	}
}
