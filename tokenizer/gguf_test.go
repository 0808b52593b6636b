package tokenizer

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// ggufVocabOf converts a loaded byte-level tokenizer.json (cached by the
// vector tests) into the GGUF vocabulary convert_hf_to_gguf.py writes for it:
// tokens by id ("[PADn]" UNUSED fillers for missing ids), added tokens
// CONTROL when special or special-looking and USER_DEFINED otherwise, merges
// as "a b" by rank.
func ggufVocabOf(t *testing.T, folder, pre string) GGUFVocab {
	t.Helper()
	hf := loadVectorTokenizer(t, folder)
	bpe := hf.model.(*bpeModel)
	n := hf.VocabSize()
	v := GGUFVocab{Name: folder, Model: "gpt2", Pre: pre, Tokens: make([]string, n), Types: make([]int32, n), BOS: -1, EOS: -1, UNK: -1}
	for id := range n {
		tok, ok := hf.IDToToken(id)
		addedID, added := hf.added[tok]
		switch {
		case !ok:
			v.Tokens[id], v.Types[id] = fmt.Sprintf("[PAD%d]", id), GGUFTokenUnused
		case !added || addedID != id:
			v.Tokens[id], v.Types[id] = tok, GGUFTokenNormal
		case hf.IsSpecial(id) || strings.HasPrefix(tok, "<|") && strings.HasSuffix(tok, "|>"):
			v.Tokens[id], v.Types[id] = tok, GGUFTokenControl
		default:
			v.Tokens[id], v.Types[id] = tok, GGUFTokenUserDefined
		}
	}
	vocabTok := make([]string, n)
	for tok, id := range bpe.vocabMap {
		vocabTok[id] = tok
	}
	type merge struct{ rank, a, b uint32 }
	var ms []merge
	for _, sl := range bpe.merges.slots {
		if sl.key != 0 {
			key := sl.key - 1
			ms = append(ms, merge{uint32(sl.val >> 32), uint32(key >> 32), uint32(key)})
		}
	}
	slices.SortFunc(ms, func(x, y merge) int { return int(x.rank) - int(y.rank) })
	for _, m := range ms {
		v.Merges = append(v.Merges, vocabTok[m.a]+" "+vocabTok[m.b])
	}
	if id, ok := hf.BOS(); ok {
		v.BOS = id
	}
	if id, ok := hf.EOS(); ok {
		v.EOS = id
	}
	v.AddBOS = hf.AddsBOS()
	return v
}

// TestGGUFByteLevelVectors builds each byte-level test tokenizer from its
// GGUF form and checks cases.jsonl: the pre-tokenizer names must stand for
// the same components as the tokenizer.json.
func TestGGUFByteLevelVectors(t *testing.T) {
	for _, x := range []struct{ folder, pre string }{
		{"gpt2", "gpt-2"}, {"llama3", "llama-bpe"}, {"qwen3", "qwen2"}, {"mistral_nemo", "tekken"},
	} {
		t.Run(x.folder, func(t *testing.T) {
			if testing.Short() && x.folder != "gpt2" {
				t.Skip("large vocabulary (-short)")
			}
			tk, err := FromGGUFVocab(ggufVocabOf(t, x.folder, x.pre))
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range readCases(t, filepath.Join(vectorsDir, x.folder, "cases.jsonl")) {
				checkIDs(t, "Encode(text, false)", c, tk.Encode(c.Text, false), c.IDs)
				checkIDs(t, "Encode(text, true)", c, tk.Encode(c.Text, true), c.IDsWithSpecial)
				checkText(t, "raw Decode(ids)", c, tk.Decode(c.IDs, DecodeOptions{}), *c.DecodedRaw)
			}
		})
	}
}

// TestGGUFSentencePieceVectors checks Llama 2's vocabulary in GGUF form
// against SentencePiece (cases_spm.jsonl) with literal special-token text,
// and against tokenizer.json (cases.jsonl) where the text spells one.
func TestGGUFSentencePieceVectors(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(vectorsDir, "llama2", "tokenizer.model"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := SentencePieceVocab(data)
	if err != nil {
		t.Fatal(err)
	}
	if v.Model != "llama" || len(v.Tokens) != 32000 || v.BOS != 1 || v.EOS != 2 || v.UNK != 0 || !v.AddBOS || v.NoSpacePrefix ||
		v.Types[0] != GGUFTokenUnknown || v.Types[1] != GGUFTokenControl || v.Types[3] != GGUFTokenByte || v.Types[300] != GGUFTokenNormal {
		t.Fatalf("vocab: %+v", v)
	}
	def, err := FromGGUFVocab(v)
	if err != nil {
		t.Fatal(err)
	}
	v.LiteralSpecial = true
	lit, err := FromGGUFVocab(v)
	if err != nil {
		t.Fatal(err)
	}
	hf := map[string]vectorCase{}
	for _, c := range readCases(t, filepath.Join(vectorsDir, "llama2", "cases.jsonl")) {
		hf[c.Name] = c
	}
	for _, c := range readCases(t, filepath.Join(vectorsDir, "llama2", "cases_spm.jsonl")) {
		checkIDs(t, "literal Encode(text, false)", c, lit.Encode(c.Text, false), c.IDs)
		checkIDs(t, "literal Encode(text, true)", c, lit.Encode(c.Text, true), c.IDsWithSpecial)
		checkText(t, "Decode(ids)", c, lit.Decode(c.IDs, DecodeOptions{}), c.Decoded)
		checkText(t, "Decode(ids_with_special)", c, def.Decode(c.IDsWithSpecial, DecodeOptions{}), c.DecodedWithSpecial)
		want := hf[c.Name]
		checkIDs(t, "Encode(text, false)", c, def.Encode(c.Text, false), want.IDs)
		checkIDs(t, "Encode(text, true)", c, def.Encode(c.Text, true), want.IDsWithSpecial)
	}
	if !def.AddsBOS() || !def.IsSpecial(1) || def.IsSpecial(3) {
		t.Fatal("special tokens")
	}
}

func tinyVocab() GGUFVocab {
	v := GGUFVocab{Name: "tiny", Model: "llama", BOS: 1, EOS: 2, UNK: 0, AddBOS: true}
	add := func(tok string, score float32, typ int32) {
		v.Tokens, v.Scores, v.Types = append(v.Tokens, tok), append(v.Scores, score), append(v.Types, typ)
	}
	add("<unk>", 0, GGUFTokenUnknown)
	add("<s>", 0, GGUFTokenControl)
	add("</s>", 0, GGUFTokenControl)
	for i, p := range []string{"▁a", "ab", "▁ab", "a", "b", "▁"} {
		add(p, -float32(i), GGUFTokenNormal)
	}
	return v
}

func TestGGUFVocabOptions(t *testing.T) {
	v := tinyVocab()
	tk, err := FromGGUFVocab(v)
	if err != nil {
		t.Fatal(err)
	}
	if got := tk.Encode("ab ab", true); !slices.Equal(got, []int{1, 5, 5}) {
		t.Fatalf("ab ab: %v", got)
	}
	v.NoSpacePrefix, v.AddEOS = true, true
	tk, err = FromGGUFVocab(v)
	if err != nil {
		t.Fatal(err)
	}
	// No dummy prefix: "ab" then "▁ab"; no byte pieces, so "c" is <unk>.
	if got := tk.Encode("ab abc", true); !slices.Equal(got, []int{1, 4, 5, 0, 2}) {
		t.Fatalf("no space prefix, add eos: %v", got)
	}
	if got := tk.Encode("<s>ab", false); !slices.Equal(got, []int{1, 4}) {
		t.Fatalf("control text: %v", got)
	}
	if tk.String() != "tokenizer tiny" {
		t.Fatal(tk.String())
	}
}

func TestGGUFVocabErrors(t *testing.T) {
	for _, x := range []struct {
		mutate func(v *GGUFVocab)
		want   string
	}{
		{func(v *GGUFVocab) { v.Model = "bert" }, `tokenizer.ggml.model "bert" is not supported`},
		{func(v *GGUFVocab) { v.Model = "" }, "tokenizer.ggml.model is missing"},
		{func(v *GGUFVocab) { v.Tokens = nil }, "tokenizer.ggml.tokens is empty"},
		{func(v *GGUFVocab) { v.Scores = v.Scores[:3] }, "tokenizer.ggml.scores has 3 entries for 9 tokens"},
		{func(v *GGUFVocab) { v.Scores = nil }, "tokenizer.ggml.scores is missing"},
		{func(v *GGUFVocab) { v.Types = v.Types[:2] }, "tokenizer.ggml.token_type has 2 entries"},
		{func(v *GGUFVocab) { v.Types[4] = 9 }, "tokenizer.ggml.token_type[4] = 9"},
		{func(v *GGUFVocab) { v.BOS = 9 }, "tokenizer.ggml.bos_token_id = 9"},
		{func(v *GGUFVocab) { v.BOS = -1 }, "add_bos_token is set but there is no tokenizer.ggml.bos_token_id"},
		{func(v *GGUFVocab) { v.Tokens[5] = "▁a" }, `duplicate piece "▁a"`},
		{func(v *GGUFVocab) { v.Model = "gpt2" }, "tokenizer.ggml.pre is missing"},
		{func(v *GGUFVocab) { v.Model, v.Pre = "gpt2", "falcon" }, `tokenizer.ggml.pre "falcon" is not supported`},
		{func(v *GGUFVocab) { v.Model, v.Pre = "gpt2", "gpt-2" }, "tokenizer.ggml.merges is missing"},
		{func(v *GGUFVocab) { v.Model, v.Pre, v.Merges = "gpt2", "gpt-2", []string{"a b", "ab"} }, `tokenizer.ggml.merges[1] = "ab" is not two tokens`},
		{func(v *GGUFVocab) { v.Model, v.Pre, v.Merges = "gpt2", "gpt-2", []string{"a ▁"} }, `tokenizer.ggml.merges[0] = "a ▁": "a▁" is not a token`},
	} {
		v := tinyVocab()
		x.mutate(&v)
		_, err := FromGGUFVocab(v)
		if err == nil || !strings.Contains(err.Error(), x.want) || !strings.HasPrefix(err.Error(), "tokenizer tiny: ") {
			t.Errorf("got error %v, want %q", err, x.want)
		}
	}
	if _, err := SentencePieceVocab([]byte{0xff}); err == nil {
		t.Error("SentencePieceVocab accepted garbage")
	}
}
