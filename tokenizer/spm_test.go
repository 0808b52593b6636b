package tokenizer

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A tiny protobuf writer to build synthetic SentencePiece models.
type pbWriter []byte

func (w *pbWriter) varint(x uint64) {
	*w = binary.AppendUvarint(*w, x)
}
func (w *pbWriter) key(num, wire int) { w.varint(uint64(num<<3 | wire)) }
func (w *pbWriter) bytes(num int, b []byte) {
	w.key(num, 2)
	w.varint(uint64(len(b)))
	*w = append(*w, b...)
}
func (w *pbWriter) uint(num int, x uint64) { w.key(num, 0); w.varint(x) }
func (w *pbWriter) float(num int, f float32) {
	w.key(num, 5)
	*w = binary.LittleEndian.AppendUint32(*w, math.Float32bits(f))
}

type testPiece struct {
	piece string
	score float32
	typ   int
}

func buildSPM(pieces []testPiece, byteFallback, removeExtraWS bool) []byte {
	var m pbWriter
	for _, p := range pieces {
		var sp pbWriter
		sp.bytes(1, []byte(p.piece))
		sp.float(2, p.score)
		sp.uint(3, uint64(p.typ))
		m.bytes(1, sp)
	}
	var tr pbWriter
	tr.uint(3, 2) // BPE
	if byteFallback {
		tr.uint(35, 1)
	}
	m.bytes(2, tr)
	var ns pbWriter
	ns.bytes(1, []byte("identity"))
	ns.uint(3, 1)
	if !removeExtraWS {
		ns.uint(4, 0)
	}
	m.bytes(3, ns)
	return m
}

var syntheticPieces = []testPiece{
	{"<unk>", 0, spmUnknown},
	{"<s>", 0, spmControl},
	{"</s>", 0, spmControl},
	{"▁", -1, spmNormal},
	{"a", -2, spmNormal},
	{"b", -3, spmNormal},
	{"▁a", -4, spmNormal},
	{"ab", -5, spmNormal},
	{"<sep>", 0, spmUserDefined},
	{"▁ab", 10, spmUnused}, // merged, then resegmented into ▁a + b
}

func TestSentencePieceSynthetic(t *testing.T) {
	tk, err := ParseSentencePieceModel(buildSPM(syntheticPieces, false, true))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		text string
		want []int
	}{
		{"", nil},
		{"   ", nil},                // remove_extra_whitespaces leaves nothing
		{"ab", []int{6, 5}},         // ▁a, then ▁a+b = ▁ab is UNUSED: resegmented
		{"ac", []int{6, 0}},         // unknown character
		{"acc", []int{6, 0}},        // consecutive unknowns merged
		{"a<sep>b", []int{6, 8, 5}}, // user-defined piece kept whole
		{"  a   b  ", []int{6, 3, 5}},
	} {
		if got := tk.Encode(c.text, false); firstDiff(got, c.want) >= 0 {
			t.Errorf("Encode(%q) = %v, want %v", c.text, got, c.want)
		}
	}
	if got := tk.Encode("ab", true); firstDiff(got, []int{1, 6, 5}) >= 0 || !tk.AddsBOS() {
		t.Errorf("Encode(ab, true) = %v", got)
	}
	for _, c := range []struct {
		ids  []int
		want string
	}{
		{[]int{6, 3, 5}, "a b"},
		{[]int{1, 6, 2}, "a"},
		{[]int{0, 6}, " ⁇  a"},
		{[]int{3, 3, 4}, "a"}, // remove_extra_whitespaces: every leading ▁ piece is consumed
	} {
		if got := tk.Decode(c.ids, DecodeOptions{}); got != c.want {
			t.Errorf("Decode(%v) = %q, want %q", c.ids, got, c.want)
		}
	}
	if !tk.IsSpecial(0) || !tk.IsSpecial(1) || tk.IsSpecial(8) {
		t.Error("IsSpecial")
	}

	// Without remove_extra_whitespaces spaces are kept, and only the first ▁ is dropped.
	tk2, err := ParseSentencePieceModel(buildSPM(syntheticPieces, false, false))
	if err != nil {
		t.Fatal(err)
	}
	if got := tk2.Encode(" a", false); firstDiff(got, []int{3, 6}) >= 0 {
		t.Errorf("Encode(\" a\") = %v", got)
	}
	if got := tk2.Decode([]int{3, 3, 4}, DecodeOptions{}); got != " a" {
		t.Errorf("Decode = %q", got)
	}
}

func TestSentencePieceErrors(t *testing.T) {
	good := buildSPM(syntheticPieces, false, true)
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"truncated", good[:len(good)-3], "truncated"},
		{"byte fallback without bytes", buildSPM(syntheticPieces, true, true), "<0x00> is missing"},
		{"no unk", buildSPM(syntheticPieces[1:], false, true), "no unknown piece"},
		{"garbage", []byte{0xff, 0xff, 0xff}, "protobuf"},
	} {
		_, err := ParseSentencePieceModel(c.data)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "tokenizer.model") {
			t.Errorf("%s: err = %v", c.name, err)
		}
	}
	var uni pbWriter
	uni.bytes(1, nil)
	if _, err := ParseSentencePieceModel(uni); err == nil {
		t.Error("a model without trainer spec (UNIGRAM by default) must be rejected")
	}
}

// TestLoadDirSentencePiece: a folder with only tokenizer.model (+ config).
func TestLoadDirSentencePiece(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(vectorsDir, "llama2", "tokenizer.model"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.model"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := `{"bos_token": "<s>", "eos_token": "</s>", "chat_template": "{{ x }}", "clean_up_tokenization_spaces": false}`
	if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	tk, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	bos, _ := tk.BOS()
	eos, _ := tk.EOS()
	if bos != 1 || eos != 2 || !tk.AddsBOS() || tk.ChatTemplate() != "{{ x }}" || tk.VocabSize() != 32000 {
		t.Errorf("bos %d eos %d addsBOS %v template %q vocab %d", bos, eos, tk.AddsBOS(), tk.ChatTemplate(), tk.VocabSize())
	}
	if got := tk.Encode("Hello world", true); firstDiff(got, []int{1, 15043, 3186}) >= 0 {
		t.Errorf("Encode = %v", got)
	}
	cfg = `{"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": false, "add_eos_token": true}`
	if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if tk, err = LoadDir(dir); err != nil {
		t.Fatal(err)
	}
	if got := tk.Encode("Hello world", true); firstDiff(got, []int{15043, 3186, 2}) >= 0 || tk.AddsBOS() {
		t.Errorf("add_bos_token false, add_eos_token true: Encode = %v", got)
	}
}

func FuzzParseSentencePiece(f *testing.F) {
	good := buildSPM(syntheticPieces, false, true)
	f.Add(good)
	f.Add(buildSPM(syntheticPieces, false, false))
	f.Add(good[:len(good)/2])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		tk, err := ParseSentencePieceModel(data)
		if err != nil {
			return
		}
		for _, s := range []string{"", "ab a", "  a<sep>b c ", "\xff"} {
			ids := tk.Encode(s, true)
			tk.Decode(ids, DecodeOptions{})
		}
	})
}
