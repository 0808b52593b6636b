package llama

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lorakit/lorakit/format/gguf"
	"github.com/lorakit/lorakit/kvcache"
	"github.com/lorakit/lorakit/model"
	"github.com/lorakit/lorakit/tensor"
	"github.com/lorakit/lorakit/tokenizer"
)

const (
	tinyBrownGGUF = "../../testdata/gguf/tiny-brown-f32.gguf"
	tinyBrownDir  = "../../models/tiny-brown"
)

// TestGGUFTinyBrown loads the F32 GGUF conversion of tiny-brown (made by
// llama.cpp's convert_hf_to_gguf.py) and checks it against the safetensors
// folder: the same config, bit-identical weights (so the q/k rows are put
// back exactly), the same logits, and a tokenizer that encodes and decodes
// held-out text as tokenizer.json does.
func TestGGUFTinyBrown(t *testing.T) {
	m, info, err := LoadGGUF(tinyBrownGGUF)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := Load(model.Dir(tinyBrownDir))
	if err != nil {
		t.Fatal(err)
	}
	c, rc := *m.Config, *ref.Config
	if c.ModelType != rc.ModelType || c.HiddenSize != rc.HiddenSize || c.IntermediateSize != rc.IntermediateSize ||
		c.NumLayers != rc.NumLayers || c.NumHeads != rc.NumHeads || c.NumKVHeads != rc.NumKVHeads ||
		c.HeadDim != rc.HeadDim || c.VocabSize != rc.VocabSize || c.MaxPositions != rc.MaxPositions ||
		c.RMSNormEps != rc.RMSNormEps || c.RopeTheta != rc.RopeTheta || c.TieEmbeddings != rc.TieEmbeddings ||
		c.AttentionBias != rc.AttentionBias || c.OutputBias != rc.OutputBias || c.RopeScaling != nil ||
		c.BOSTokenID != rc.BOSTokenID || !slices.Equal(c.EOSTokenIDs, rc.EOSTokenIDs) {
		t.Fatalf("config differs:\n gguf %+v\n   hf %+v", c, rc)
	}

	got, want := m.Tensors(), ref.Tensors()
	if len(got) != len(want) {
		t.Fatalf("%d tensors, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Name != want[i].Name || !slices.Equal(got[i].Shape, want[i].Shape) {
			t.Fatalf("tensor %d: %s %v, want %s %v", i, got[i].Name, got[i].Shape, want[i].Name, want[i].Shape)
		}
		if !slices.Equal(got[i].Data, want[i].Data) {
			t.Fatalf("%s differs from the safetensors weights", want[i].Name)
		}
	}

	// The file really holds permuted q/k rows, and ggufPermute is the
	// converter's permutation: it maps the safetensors rows onto the file's.
	f, err := gguf.Open(tinyBrownGGUF)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, x := range []struct {
		gguf  string
		heads int
		lin   *Layer
		q     bool
	}{{"blk.0.attn_q.weight", c.NumHeads, ref.Layers[0], true}, {"blk.3.attn_k.weight", c.NumKVHeads, ref.Layers[3], false}} {
		ti, _ := f.Tensor(x.gguf)
		raw, err := ti.Float32()
		if err != nil {
			t.Fatal(err)
		}
		hf := x.lin.K.W
		if x.q {
			hf = x.lin.Q.W
		}
		if slices.Equal(raw, hf) {
			t.Fatalf("%s is stored in Hugging Face order: the test file does not exercise the permutation", x.gguf)
		}
		if !slices.Equal(raw, ggufPermute(hf, x.heads, c.HiddenSize)) {
			t.Fatalf("%s is not ggufPermute of the safetensors rows", x.gguf)
		}
	}

	// Tokenizer: held-out text, against tokenizer.json.
	refTok, err := tokenizer.LoadDir(tinyBrownDir)
	if err != nil {
		t.Fatal(err)
	}
	tok := info.Tokenizer
	if info.Arch != "llama" || info.Name != "tiny-brown" || info.BOS != 0 || !slices.Equal(info.EOS, []int{0}) ||
		!info.AddBOS || info.AddEOS || !tok.AddsBOS() || info.ChatTemplate != refTok.ChatTemplate() ||
		tok.ChatTemplate() != info.ChatTemplate || info.TensorTypes["F32"] != len(f.Tensors) {
		t.Fatalf("info: %+v", info)
	}
	if tok.VocabSize() != refTok.VocabSize() {
		t.Fatalf("vocab size %d, want %d", tok.VocabSize(), refTok.VocabSize())
	}
	// h_test.jsonl has 46 lines; p_test.jsonl (fiction, more dialogue and
	// punctuation) makes up the 50.
	lines := append(readTexts(t, "../../datasets/brown/h_test.jsonl", 46), readTexts(t, "../../datasets/brown/p_test.jsonl", 4)...)
	var seqs [][]int
	for i, text := range lines {
		ids := tok.Encode(text, false)
		wantIDs := refTok.Encode(text, false)
		if !slices.Equal(ids, wantIDs) {
			t.Fatalf("line %d: ids differ from tokenizer.json\n got %v\nwant %v", i, ids, wantIDs)
		}
		if withBOS := tok.Encode(text, true); !slices.Equal(withBOS, append([]int{info.BOS}, wantIDs...)) {
			t.Fatalf("line %d: Encode(text, true) = %v..., want BOS then the ids", i, withBOS[:min(5, len(withBOS))])
		}
		if s := tok.Decode(ids, tokenizer.DecodeOptions{}); s != text {
			t.Fatalf("line %d: decode gives %q, want %q", i, s, text)
		}
		if i < 3 {
			seqs = append(seqs, append([]int{info.BOS}, ids[:min(40, len(ids))]...))
		}
	}
	if s := tok.Encode("<|im_start|>user\nhi<|im_end|>", false); !slices.Equal(s, refTok.Encode("<|im_start|>user\nhi<|im_end|>", false)) || s[0] != 1 {
		t.Fatalf("special tokens: %v", s)
	}

	// Logits on a few sequences.
	seqs = append(seqs, []int{0, 17, 4095, 3, 1, 2, 500, 500, 500})
	for i, ids := range seqs {
		a, err := m.Forward(&Step{Caches: []*kvcache.Seq{m.NewCache()}, Tokens: [][]int{ids}, AllLogits: true})
		if err != nil {
			t.Fatal(err)
		}
		b, err := ref.Forward(&Step{Caches: []*kvcache.Seq{ref.NewCache()}, Tokens: [][]int{ids}, AllLogits: true})
		if err != nil {
			t.Fatal(err)
		}
		for j := range b {
			if d := math.Abs(float64(a[j] - b[j])); d > 1e-5 {
				t.Fatalf("sequence %d: logit %d = %v, safetensors model %v", i, j, a[j], b[j])
			}
		}
	}
}

func readTexts(t *testing.T, path string, n int) []string {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var out []string
	for len(out) < n && sc.Scan() {
		var rec struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		out = append(out, rec.Text)
	}
	if len(out) < n {
		t.Fatalf("%s: %d lines, want %d (%v)", path, len(out), n, sc.Err())
	}
	return out
}

// TestGGUFPermute checks the permutation against numpy's
// w.reshape(heads, 2, half, cols).swapaxes(1, 2).reshape(rows, cols), spelled
// out with strides, and that ggufUnpermute inverts it.
func TestGGUFPermute(t *testing.T) {
	for _, x := range []struct{ heads, hd, cols int }{{1, 2, 1}, {3, 8, 5}, {4, 16, 1}, {2, 64, 3}} {
		rows, half := x.heads*x.hd, x.hd/2
		w := make([]float32, rows*x.cols)
		for i := range w {
			w[i] = float32(i)
		}
		want := make([]float32, len(w))
		// Output element (h, j, t, c) of shape (heads, half, 2, cols) is
		// input element (h, t, j, c) of shape (heads, 2, half, cols).
		for h := range x.heads {
			for j := range half {
				for tt := range 2 {
					for c := range x.cols {
						out := ((h*half+j)*2+tt)*x.cols + c
						in := ((h*2+tt)*half+j)*x.cols + c
						want[out] = w[in]
					}
				}
			}
		}
		p := ggufPermute(w, x.heads, x.cols)
		if !slices.Equal(p, want) {
			t.Fatalf("%+v: permute = %v, want %v", x, p, want)
		}
		if x.hd > 2 && slices.Equal(p, w) {
			t.Fatalf("%+v: permutation is the identity", x)
		}
		if back := ggufUnpermute(p, x.heads, x.cols); !slices.Equal(back, w) {
			t.Fatalf("%+v: unpermute does not invert permute", x)
		}
	}
}

// ---- Writing synthetic GGUF models the way convert_hf_to_gguf.py does.

// ggufName is llama.cpp's name of a Hugging Face tensor (spelled out here
// independently of gguf.go's table).
func ggufName(t *testing.T, hf string) string {
	switch hf {
	case "model.embed_tokens.weight":
		return "token_embd.weight"
	case "model.norm.weight":
		return "output_norm.weight"
	case "lm_head.weight":
		return "output.weight"
	}
	rest, ok := strings.CutPrefix(hf, "model.layers.")
	idx, sub, _ := strings.Cut(rest, ".")
	dot := strings.LastIndexByte(sub, '.')
	part := map[string]string{
		"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
		"self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
		"mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
		"self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
	}[sub[:max(dot, 0)]]
	if !ok || dot < 0 || part == "" {
		t.Fatalf("no GGUF name for %q", hf)
	}
	return "blk." + idx + "." + part + sub[dot:]
}

// archKV is the hyperparameter metadata of c under arch.
func archKV(arch string, c *model.Config) []gguf.KeyValue {
	k := func(s string) string { return arch + "." + s }
	u := func(x int) gguf.Value { return gguf.NewUint32(uint32(x)) }
	return []gguf.KeyValue{
		{Key: "general.architecture", Value: gguf.NewString(arch)},
		{Key: "general.name", Value: gguf.NewString("synthetic")},
		{Key: k("context_length"), Value: u(c.MaxPositions)},
		{Key: k("embedding_length"), Value: u(c.HiddenSize)},
		{Key: k("block_count"), Value: u(c.NumLayers)},
		{Key: k("feed_forward_length"), Value: u(c.IntermediateSize)},
		{Key: k("attention.head_count"), Value: u(c.NumHeads)},
		{Key: k("attention.head_count_kv"), Value: u(c.NumKVHeads)},
		{Key: k("attention.key_length"), Value: u(c.HeadDim)},
		{Key: k("attention.value_length"), Value: u(c.HeadDim)},
		{Key: k("rope.dimension_count"), Value: u(c.HeadDim)},
		{Key: k("rope.freq_base"), Value: gguf.NewFloat32(float32(c.RopeTheta))},
		{Key: k("attention.layer_norm_rms_epsilon"), Value: gguf.NewFloat32(float32(c.RMSNormEps))},
		{Key: k("vocab_size"), Value: u(c.VocabSize)},
		{Key: "general.file_type", Value: u(0)},
	}
}

// spmVocab is a small SentencePiece BPE vocabulary: <unk> <s> </s>, the 256
// byte pieces, characters and a few merges ("hello world" → ▁hello ▁world).
func spmVocab() (tokens []string, scores []float32, types []int32) {
	add := func(tok string, score float32, typ int32) {
		tokens, scores, types = append(tokens, tok), append(scores, score), append(types, typ)
	}
	add("<unk>", 0, tokenizer.GGUFTokenUnknown)
	add("<s>", 0, tokenizer.GGUFTokenControl)
	add("</s>", 0, tokenizer.GGUFTokenControl)
	for b := range 256 {
		add(fmt.Sprintf("<0x%02X>", b), 0, tokenizer.GGUFTokenByte)
	}
	for i, p := range []string{"▁h", "▁w", "ll", "or", "▁he", "llo", "▁wor", "ld", "▁hello", "▁world", "▁hi"} {
		add(p, -float32(i+1), tokenizer.GGUFTokenNormal)
	}
	for _, ch := range "▁helowrdi" {
		add(string(ch), -100, tokenizer.GGUFTokenNormal)
	}
	return
}

func spmVocabKV() []gguf.KeyValue {
	tokens, scores, types := spmVocab()
	return []gguf.KeyValue{
		{Key: "tokenizer.ggml.model", Value: gguf.NewString("llama")},
		{Key: "tokenizer.ggml.tokens", Value: gguf.NewStrings(tokens)},
		{Key: "tokenizer.ggml.scores", Value: gguf.NewFloat32s(scores)},
		{Key: "tokenizer.ggml.token_type", Value: gguf.NewInt32s(types)},
		{Key: "tokenizer.ggml.bos_token_id", Value: gguf.NewUint32(1)},
		{Key: "tokenizer.ggml.eos_token_id", Value: gguf.NewUint32(2)},
		{Key: "tokenizer.ggml.unknown_token_id", Value: gguf.NewUint32(0)},
		{Key: "tokenizer.ggml.add_bos_token", Value: gguf.NewBool(true)},
		{Key: "tokenizer.ggml.add_eos_token", Value: gguf.NewBool(false)},
		{Key: "tokenizer.chat_template", Value: gguf.NewString("{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}")},
	}
}

// encoder writes one tensor (F32 unless a test quantizes it).
type encoder func(name string, shape []int, x []float32) gguf.WriteTensor

// modelTensors is m's weights as a converter writes them: llama.cpp names
// and, when permute is set, q/k rows (weights and biases) permuted.
func modelTensors(t *testing.T, m *Model, permute bool, enc encoder) []gguf.WriteTensor {
	c := m.Config
	if enc == nil {
		enc = gguf.F32Tensor
	}
	var out []gguf.WriteTensor
	for _, nt := range m.Tensors() {
		data := nt.Data
		cols := 1
		if len(nt.Shape) == 2 {
			cols = nt.Shape[1]
		}
		switch {
		case permute && strings.Contains(nt.Name, "self_attn.q_proj."):
			data = ggufPermute(data, c.NumHeads, cols)
		case permute && strings.Contains(nt.Name, "self_attn.k_proj."):
			data = ggufPermute(data, c.NumKVHeads, cols)
		}
		out = append(out, enc(ggufName(t, nt.Name), nt.Shape, data))
	}
	return out
}

func writeGGUF(t *testing.T, kv []gguf.KeyValue, ts []gguf.WriteTensor) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "model.gguf")
	if err := gguf.Write(path, kv, ts); err != nil {
		t.Fatal(err)
	}
	return path
}

func synthLlamaConfig(t *testing.T, extra string) *model.Config {
	t.Helper()
	tokens, _, _ := spmVocab()
	cfg, err := model.ParseConfig(fmt.Appendf(nil, `{"model_type": "llama", "hidden_size": 64, "intermediate_size": 96,
		"num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": %d,
		"max_position_embeddings": 256, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
		"bos_token_id": 1, "eos_token_id": 2 %s}`, len(tokens), extra))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func sameLogits(t *testing.T, a, b *Model, ids []int) {
	t.Helper()
	x, err := a.Forward(&Step{Caches: []*kvcache.Seq{a.NewCache()}, Tokens: [][]int{ids}, AllLogits: true})
	if err != nil {
		t.Fatal(err)
	}
	y, err := b.Forward(&Step{Caches: []*kvcache.Seq{b.NewCache()}, Tokens: [][]int{ids}, AllLogits: true})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(x, y) {
		t.Fatal("logits differ")
	}
}

func sameTensors(t *testing.T, got, want *Model) {
	t.Helper()
	g, w := got.Tensors(), want.Tensors()
	if len(g) != len(w) {
		t.Fatalf("%d tensors, want %d", len(g), len(w))
	}
	for i := range w {
		if g[i].Name != w[i].Name || !slices.Equal(g[i].Shape, w[i].Shape) || !slices.Equal(g[i].Data, w[i].Data) {
			t.Fatalf("tensor %s %v differs from %s %v", g[i].Name, g[i].Shape, w[i].Name, w[i].Shape)
		}
	}
}

// TestGGUFSyntheticLlama round-trips a random llama model (untied, with
// q/k/v/o biases, whose q/k rows and biases are permuted) and its
// SentencePiece vocabulary through a GGUF file.
func TestGGUFSyntheticLlama(t *testing.T) {
	cfg := synthLlamaConfig(t, `, "tie_word_embeddings": false, "attention_bias": true`)
	m0 := NewRandom(cfg, 11)
	kv := append(archKV("llama", cfg), spmVocabKV()...)
	path := writeGGUF(t, kv, modelTensors(t, m0, true, nil))
	m, info, err := LoadGGUF(path)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Config.AttentionBias || !m.Config.OutputBias || m.Config.TieEmbeddings {
		t.Fatalf("config: %+v", m.Config)
	}
	sameTensors(t, m, m0)
	sameLogits(t, m, m0, []int{1, 270, 5, 278, 0, 2, 100})

	tok := info.Tokenizer
	id := func(s string) int {
		i, ok := tok.TokenToID(s)
		if !ok {
			t.Fatalf("no token %q", s)
		}
		return i
	}
	if got, want := tok.Encode("hello world", false), []int{id("▁hello"), id("▁world")}; !slices.Equal(got, want) {
		t.Fatalf("hello world: %v, want %v", got, want)
	}
	if got, want := tok.Encode("hello world", true), []int{1, id("▁hello"), id("▁world")}; !slices.Equal(got, want) {
		t.Fatalf("with BOS: %v, want %v", got, want)
	}
	// ö is not a piece: byte fallback.
	if got, want := tok.Encode("hi ö", false), []int{id("▁hi"), id("▁"), id("<0xC3>"), id("<0xB6>")}; !slices.Equal(got, want) {
		t.Fatalf("byte fallback: %v, want %v", got, want)
	}
	for _, s := range []string{"hello world", "hi ö", "  wörld\nhe"} {
		if d := tok.Decode(tok.Encode(s, true), tokenizer.DecodeOptions{}); d != s {
			t.Fatalf("round trip of %q gives %q", s, d)
		}
	}
	if info.BOS != 1 || !slices.Equal(info.EOS, []int{2}) || !info.AddBOS || !tok.AddsBOS() || info.Name != "synthetic" ||
		!strings.HasPrefix(info.ChatTemplate, "{{ bos_token }}") || m.Config.BOSTokenID != 1 || !slices.Equal(m.Config.EOSTokenIDs, []int{2}) {
		t.Fatalf("info %+v, config %+v", info, m.Config)
	}
	if tk, err := LoadGGUFTokenizer(path); err != nil || !slices.Equal(tk.Encode("hello", true), tok.Encode("hello", true)) {
		t.Fatalf("LoadGGUFTokenizer: %v", err)
	}
}

// q8_0 encodes x as ggml's quantize_row_q8_0_ref does: per block of 32,
// d = amax/127 (stored as f16), q = round(x/d).
func q8_0(name string, shape []int, x []float32) gguf.WriteTensor {
	b := make([]byte, 0, len(x)/32*34)
	for blk := range len(x) / 32 {
		v := x[blk*32 : blk*32+32]
		var amax float32
		for _, e := range v {
			amax = max(amax, float32(math.Abs(float64(e))))
		}
		d := amax / 127
		var id float32
		if d != 0 {
			id = 1 / d
		}
		b = binary.LittleEndian.AppendUint16(b, tensor.F32ToF16(d))
		for _, e := range v {
			b = append(b, byte(int8(math.Round(float64(e*id)))))
		}
	}
	return gguf.WriteTensor{Name: name, Shape: shape, Type: gguf.Q8_0, Data: b}
}

// q8_0Bound is the largest error Q8_0 can make on an element of a block
// whose largest magnitude is amax: half a step, plus 127 steps' worth of the
// scale's own f16 rounding.
func q8_0Bound(amax float32) float64 {
	d := float64(amax) / 127
	d16 := float64(tensor.F16ToF32(tensor.F32ToF16(float32(d))))
	return 0.5*d + 127*math.Abs(d16-d) + 1e-9
}

// TestGGUFQuantized loads a tied, permuted llama model whose matrices are
// Q8_0 (ffn_down F16, norms F32, as llama.cpp's quantizer leaves them) and
// checks every weight against the original within the format's bound.
func TestGGUFQuantized(t *testing.T) {
	cfg := synthLlamaConfig(t, `, "tie_word_embeddings": true`)
	m0 := NewRandom(cfg, 5)
	enc := func(name string, shape []int, x []float32) gguf.WriteTensor {
		switch {
		case len(shape) == 1:
			return gguf.F32Tensor(name, shape, x)
		case strings.HasSuffix(name, "ffn_down.weight"):
			return gguf.F16Tensor(name, shape, x)
		}
		return q8_0(name, shape, x)
	}
	kv := append(archKV("llama", cfg), spmVocabKV()...)
	m, info, err := LoadGGUF(writeGGUF(t, kv, modelTensors(t, m0, true, enc)))
	if err != nil {
		t.Fatal(err)
	}
	if !m.Config.TieEmbeddings || m.Config.AttentionBias || info.TensorTypes["Q8_0"] != 1+2*6 || info.TensorTypes["F16"] != 2 {
		t.Fatalf("config %+v, types %v", m.Config, info.TensorTypes)
	}
	got, want := m.Tensors(), m0.Tensors()
	if len(got) != len(want) {
		t.Fatalf("%d tensors, want %d", len(got), len(want))
	}
	worst := 0.0
	for i, w := range want {
		g := got[i]
		if g.Name != w.Name || !slices.Equal(g.Shape, w.Shape) {
			t.Fatalf("tensor %s %v, want %s %v", g.Name, g.Shape, w.Name, w.Shape)
		}
		switch {
		case len(w.Shape) == 1:
			if !slices.Equal(g.Data, w.Data) {
				t.Fatalf("%s: F32 tensor changed", w.Name)
			}
		case strings.HasSuffix(w.Name, "down_proj.weight"):
			for j, x := range w.Data {
				if g.Data[j] != tensor.F16ToF32(tensor.F32ToF16(x)) {
					t.Fatalf("%s[%d] = %v, want f16(%v)", w.Name, j, g.Data[j], x)
				}
			}
		default:
			// Rows only move as a whole, so the block of element j is that of
			// the original row: compare with the original's block bound.
			for blk := range len(w.Data) / 32 {
				var amax float32
				for _, x := range w.Data[blk*32 : blk*32+32] {
					amax = max(amax, float32(math.Abs(float64(x))))
				}
				bound := q8_0Bound(amax)
				for j := blk * 32; j < blk*32+32; j++ {
					e := math.Abs(float64(g.Data[j] - w.Data[j]))
					worst = max(worst, e/bound)
					if e > bound {
						t.Fatalf("%s[%d] = %v, want %v within %v", w.Name, j, g.Data[j], w.Data[j], bound)
					}
				}
			}
		}
	}
	if worst < 0.1 {
		t.Fatalf("largest error is %.3f of the bound: the weights were not quantized", worst)
	}
}

// tinyBrownVocabKV copies the tokenizer metadata of the tiny-brown GGUF (a
// gpt2 byte-level vocabulary of 4096 tokens).
func tinyBrownVocabKV(t *testing.T, pre string) []gguf.KeyValue {
	f, err := gguf.Open(tinyBrownGGUF)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var kv []gguf.KeyValue
	for _, k := range f.Keys {
		if strings.HasPrefix(k, "tokenizer.") {
			v := f.KV[k]
			if k == "tokenizer.ggml.pre" {
				v = gguf.NewString(pre)
			}
			kv = append(kv, gguf.KeyValue{Key: k, Value: v})
		}
	}
	return kv
}

// TestGGUFQwen checks that qwen2 (q/k/v biases) and qwen3 (q/k norms, head
// dim not hidden/heads) GGUFs, which llama.cpp stores unpermuted, load exactly.
func TestGGUFQwen(t *testing.T) {
	for _, x := range []struct{ arch, json string }{
		{"qwen2", `{"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
			"num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 4096, "max_position_embeddings": 128,
			"rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": true}`},
		{"qwen3", `{"model_type": "qwen3", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
			"num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32, "vocab_size": 4096,
			"max_position_embeddings": 128, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": false}`},
	} {
		t.Run(x.arch, func(t *testing.T) {
			cfg, err := model.ParseConfig([]byte(x.json))
			if err != nil {
				t.Fatal(err)
			}
			m0 := NewRandom(cfg, 3)
			kv := append(archKV(x.arch, cfg), tinyBrownVocabKV(t, "qwen2")...)
			m, info, err := LoadGGUF(writeGGUF(t, kv, modelTensors(t, m0, false, nil)))
			if err != nil {
				t.Fatal(err)
			}
			c := m.Config
			if c.ModelType != x.arch || c.AttentionBias != cfg.AttentionBias || c.OutputBias != cfg.OutputBias ||
				c.QKNorm != cfg.QKNorm || c.HeadDim != cfg.HeadDim || c.TieEmbeddings != cfg.TieEmbeddings || c.RopeTheta != 1e6 || c.RMSNormEps != 1e-6 {
				t.Fatalf("config %+v, want %+v", c, cfg)
			}
			sameTensors(t, m, m0)
			sameLogits(t, m, m0, []int{0, 1, 2, 100, 4095})
			if ids := info.Tokenizer.Encode("12345", false); len(ids) != 5 || info.Tokenizer.Decode(ids, tokenizer.DecodeOptions{}) != "12345" {
				t.Fatalf("qwen2 pre-tokenizer: %v (single digits expected)", ids)
			}
		})
	}
}

// TestGGUFRopeFreqs checks that Llama 3.1-style rope_freqs factors, computed
// as convert_hf_to_gguf.py does, are turned back into rope_scaling.
func TestGGUFRopeFreqs(t *testing.T) {
	cfg, err := model.ParseConfig([]byte(`{"model_type": "llama", "hidden_size": 256, "intermediate_size": 64,
		"num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 16,
		"max_position_embeddings": 131072, "rms_norm_eps": 1e-5, "rope_theta": 500000.0}`))
	if err != nil {
		t.Fatal(err)
	}
	factors := func(factor, lo, hi float64, L int) []float32 {
		var out []float32
		for j := 0; j < cfg.HeadDim; j += 2 {
			freq := float64(float32(1 / math.Pow(cfg.RopeTheta, float64(float32(j)/float32(cfg.HeadDim)))))
			wavelen := 2 * math.Pi / freq
			switch {
			case wavelen < float64(L)/hi:
				out = append(out, 1)
			case wavelen > float64(L)/lo:
				out = append(out, float32(factor))
			default:
				s := (float64(L)/wavelen - lo) / (hi - lo)
				out = append(out, float32(1/((1-s)/factor+s)))
			}
		}
		return out
	}
	for _, x := range []struct {
		factor, lo, hi float64
		L              int
		exact          bool
	}{{8, 1, 4, 8192, true}, {32, 1, 4, 8192, true}, {16, 2, 6, 4096, false}, {4, 1, 2, 2048, false}} {
		fs := factors(x.factor, x.lo, x.hi, x.L)
		rs, err := ropeScalingFromFactors(cfg, fs)
		if err != nil {
			t.Fatalf("%+v: %v", x, err)
		}
		if x.exact && (*rs != model.RopeScaling{Type: "llama3", Factor: x.factor, LowFreqFactor: x.lo, HighFreqFactor: x.hi, OriginalMaxPositionEmbeddings: x.L}) {
			t.Fatalf("%+v: got %+v", x, *rs)
		}
		c2 := *cfg
		c2.RopeScaling = rs
		base := cfg.InvFreq()
		for j, f := range c2.InvFreq() {
			if want := float64(base[j]) / float64(fs[j]); math.Abs(float64(f)-want) > 1e-5*want {
				t.Fatalf("%+v: inv_freq[%d] = %v, want %v", x, j, f, want)
			}
		}
	}
	if rs, err := ropeScalingFromFactors(cfg, factors(1, 1, 4, 8192)); err != nil || rs != nil {
		t.Fatalf("all-ones factors: %v, %v", rs, err)
	}
	bad := factors(8, 1, 4, 8192)
	bad[3] = 3 // a high frequency scaled: not llama3
	if _, err := ropeScalingFromFactors(cfg, bad); !errors.Is(err, model.ErrUnsupported) {
		t.Fatalf("irregular factors: %v", err)
	}

	// Through a file: the tensor is consumed, the config carries the scaling.
	m0 := NewRandom(cfg, 1)
	tokens := []string{"<unk>", "<s>", "</s>", "▁", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"}
	kv := append(archKV("llama", cfg),
		gguf.KeyValue{Key: "tokenizer.ggml.model", Value: gguf.NewString("llama")},
		gguf.KeyValue{Key: "tokenizer.ggml.tokens", Value: gguf.NewStrings(tokens)},
		gguf.KeyValue{Key: "tokenizer.ggml.scores", Value: gguf.NewFloat32s(make([]float32, len(tokens)))},
		gguf.KeyValue{Key: "tokenizer.ggml.token_type", Value: gguf.NewInt32s(append([]int32{2, 3, 3}, slices.Repeat([]int32{1}, len(tokens)-3)...))},
		gguf.KeyValue{Key: "tokenizer.ggml.bos_token_id", Value: gguf.NewUint32(1)})
	ts := append(modelTensors(t, m0, true, nil), gguf.F32Tensor("rope_freqs.weight", []int{cfg.HeadDim / 2}, factors(8, 1, 4, 8192)))
	m, info, err := LoadGGUF(writeGGUF(t, kv, ts))
	if err != nil {
		t.Fatal(err)
	}
	if rs := m.Config.RopeScaling; rs == nil || rs.Type != "llama3" || rs.Factor != 8 {
		t.Fatalf("rope scaling %+v", rs)
	}
	if !info.AddBOS || info.Tokenizer.Encode("ab", true)[0] != 1 { // llama vocabularies add BOS by default
		t.Fatalf("add_bos default: %+v", info)
	}
	m0.Config.RopeScaling = m.Config.RopeScaling
	m0.init()
	sameLogits(t, m, m0, []int{1, 4, 5, 6, 7})
}

// TestGGUFLlama2Vocab embeds Llama 2's SentencePiece vocabulary (tokens,
// scores and types read from tokenizer.model) as GGUF metadata, reads it back
// and checks SentencePiece's ids (cases_spm.jsonl). Text spelling a special
// token ("<s>") is literal for SentencePiece; by default the GGUF tokenizer
// recognises it, as tokenizer.json (cases.jsonl) and llama.cpp's prompt
// parsing do, and with LiteralSpecial it matches SentencePiece everywhere.
func TestGGUFLlama2Vocab(t *testing.T) {
	data, err := os.ReadFile("../../testdata/tokenizers/llama2/tokenizer.model")
	if err != nil {
		t.Fatal(err)
	}
	v, err := tokenizer.SentencePieceVocab(data)
	if err != nil {
		t.Fatal(err)
	}
	path := writeGGUF(t, []gguf.KeyValue{
		{Key: "general.architecture", Value: gguf.NewString("llama")},
		{Key: "tokenizer.ggml.model", Value: gguf.NewString(v.Model)},
		{Key: "tokenizer.ggml.tokens", Value: gguf.NewStrings(v.Tokens)},
		{Key: "tokenizer.ggml.scores", Value: gguf.NewFloat32s(v.Scores)},
		{Key: "tokenizer.ggml.token_type", Value: gguf.NewInt32s(v.Types)},
		{Key: "tokenizer.ggml.bos_token_id", Value: gguf.NewUint32(uint32(v.BOS))},
		{Key: "tokenizer.ggml.eos_token_id", Value: gguf.NewUint32(uint32(v.EOS))},
		{Key: "tokenizer.ggml.unknown_token_id", Value: gguf.NewUint32(uint32(v.UNK))},
		{Key: "tokenizer.ggml.add_bos_token", Value: gguf.NewBool(v.AddBOS)},
		{Key: "tokenizer.ggml.add_eos_token", Value: gguf.NewBool(false)},
	}, nil)
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gv, err := ReadGGUFVocab(f)
	if err != nil {
		t.Fatal(err)
	}
	if gv.BOS != 1 || gv.EOS != 2 || gv.UNK != 0 || !gv.AddBOS || len(gv.Tokens) != 32000 {
		t.Fatalf("vocab: bos %d eos %d unk %d add_bos %v, %d tokens", gv.BOS, gv.EOS, gv.UNK, gv.AddBOS, len(gv.Tokens))
	}
	tok, err := tokenizer.FromGGUFVocab(gv)
	if err != nil {
		t.Fatal(err)
	}
	gv.LiteralSpecial = true
	literal, err := tokenizer.FromGGUFVocab(gv)
	if err != nil {
		t.Fatal(err)
	}
	hfIDs := map[string][]int{}
	for _, c := range readCasesFile(t, "../../testdata/tokenizers/llama2/cases.jsonl") {
		hfIDs[c.Name] = c.IDs
	}
	specialText := 0
	for _, c := range readCasesFile(t, "../../testdata/tokenizers/llama2/cases_spm.jsonl") {
		hasSpecial := strings.Contains(c.Text, "<s>") || strings.Contains(c.Text, "</s>") || strings.Contains(c.Text, "<unk>")
		if hasSpecial {
			specialText++
		}
		if hasSpecial == c.AgreesWithTokenizerJSON {
			t.Fatalf("%s: special-token text %v but agrees_with_tokenizer_json %v", c.Name, hasSpecial, c.AgreesWithTokenizerJSON)
		}
		for _, x := range []struct {
			what string
			tk   *tokenizer.Tokenizer
			want []int
		}{{"literal", literal, c.IDs}, {"default", tok, c.IDs}} {
			if hasSpecial && x.tk == tok {
				x.want = hfIDs[c.Name]
			}
			if got := x.tk.Encode(c.Text, false); !slices.Equal(got, x.want) {
				t.Fatalf("%s %s: %q: ids\n got %v\nwant %v", x.what, c.Name, c.Text, got, x.want)
			}
			if got := x.tk.Encode(c.Text, true); !slices.Equal(got, append([]int{1}, x.want...)) {
				t.Fatalf("%s %s: Encode(text, true) = %v", x.what, c.Name, got)
			}
			if got := x.tk.Decode(c.IDs, tokenizer.DecodeOptions{}); got != c.Decoded {
				t.Fatalf("%s %s: decode %q, want %q", x.what, c.Name, got, c.Decoded)
			}
		}
	}
	if specialText != 9 {
		t.Fatalf("%d cases with special-token text, want 9", specialText)
	}
}

type vectorCase struct {
	Name                    string `json:"name"`
	Text                    string `json:"text"`
	IDs                     []int  `json:"ids"`
	Decoded                 string `json:"decoded"`
	AgreesWithTokenizerJSON bool   `json:"agrees_with_tokenizer_json"`
}

func readCasesFile(t *testing.T, path string) []vectorCase {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []vectorCase
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var c vectorCase
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// TestGGUFErrors checks that broken or unsupported files are refused with
// errors that name the file and the key or tensor.
func TestGGUFErrors(t *testing.T) {
	cfg := synthLlamaConfig(t, `, "tie_word_embeddings": true`)
	m0 := NewRandom(cfg, 2)
	base := func() ([]gguf.KeyValue, []gguf.WriteTensor) {
		return append(archKV("llama", cfg), spmVocabKV()...), modelTensors(t, m0, true, nil)
	}
	setKV := func(kv []gguf.KeyValue, key string, v gguf.Value) []gguf.KeyValue {
		for i := range kv {
			if kv[i].Key == key {
				kv[i].Value = v
				return kv
			}
		}
		return append(kv, gguf.KeyValue{Key: key, Value: v})
	}
	dropKV := func(kv []gguf.KeyValue, key string) []gguf.KeyValue {
		return slices.DeleteFunc(kv, func(e gguf.KeyValue) bool { return e.Key == key })
	}
	setTensor := func(ts []gguf.WriteTensor, w gguf.WriteTensor) []gguf.WriteTensor {
		for i := range ts {
			if ts[i].Name == w.Name {
				ts[i] = w
				return ts
			}
		}
		return append(ts, w)
	}
	for _, x := range []struct {
		name        string
		mutate      func(kv []gguf.KeyValue, ts []gguf.WriteTensor) ([]gguf.KeyValue, []gguf.WriteTensor)
		want        []string
		unsupported bool
	}{
		{"missing KV", func(kv []gguf.KeyValue, ts []gguf.WriteTensor) ([]gguf.KeyValue, []gguf.WriteTensor) {
			return dropKV(kv, "llama.embedding_length"), ts
		}, []string{`key "llama.embedding_length": missing`}, false},
		{"missing rms eps", func(kv []gguf.KeyValue, ts []gguf.WriteTensor) ([]gguf.KeyValue, []gguf.WriteTensor) {
			return dropKV(kv, "llama.attention.layer_norm_rms_epsilon"), ts
		}, []string{`"llama.attention.layer_norm_rms_epsilon": missing`}, false},
		{"mistyped KV", func(kv []gguf.KeyValue, ts []gguf.WriteTensor) ([]gguf.KeyValue, []gguf.WriteTensor) {
			return setKV(kv, "llama.block_count", gguf.NewString("2")), ts
		}, []string{`key "llama.block_count": want an integer`}, false},
		{"missing architecture", func(kv []gguf.KeyValue, ts []gguf.WriteTensor) ([]gguf.KeyValue, []gguf.WriteTensor) {
			return dropKV(kv, "general.architecture"), ts
		}, []string{`key "general.architecture": missing`}, false},
		{"wrong tensor shape", func(kv []gguf.KeyValue, ts []gguf.WriteTensor) ([]gguf.KeyValue, []gguf.WriteTensor) {
			return kv, setTensor(ts, gguf.F32Tensor("blk.1.attn_q.weight", []int{64, 32}, make([]float32, 64*32)))
		}, []string{`tensor "blk.1.attn_q.weight" has shape [64 32]`, "[64 64]"}, false},
		{"missing tensor", func(kv []gguf.KeyValue, ts []gguf.WriteTensor) ([]gguf.KeyValue, []gguf.WriteTensor) {
			return kv, slices.DeleteFunc(ts, func(w gguf.WriteTensor) bool { return w.Name == "blk.1.ffn_up.weight" })
		}, []string{`tensor "blk.1.ffn_up.weight" is missing`}, false},
		{"extra block", func(kv []gguf.KeyValue, ts []gguf.WriteTensor) ([]gguf.KeyValue, []gguf.WriteTensor) {
			return kv, append(ts, gguf.F32Tensor("blk.2.attn_norm.weight", []int{64}, make([]float32, 64)))
		}, []string{`unexpected tensor "blk.2.attn_norm.weight"`, "2 blocks"}, false},
		{"unsupported arch", func(kv []gguf.KeyValue, ts []gguf.WriteTensor) ([]gguf.KeyValue, []gguf.WriteTensor) {
			return setKV(kv, "general.architecture", gguf.NewString("falcon")), ts
		}, []string{`key "general.architecture"`, `"falcon"`}, true},
		{"mixture of experts", func(kv []gguf.KeyValue, ts []gguf.WriteTensor) ([]gguf.KeyValue, []gguf.WriteTensor) {
			return setKV(kv, "llama.expert_count", gguf.NewUint32(8)), ts
		}, []string{`key "llama.expert_count"`}, true},
		{"yarn", func(kv []gguf.KeyValue, ts []gguf.WriteTensor) ([]gguf.KeyValue, []gguf.WriteTensor) {
			return setKV(setKV(kv, "llama.rope.scaling.type", gguf.NewString("yarn")), "llama.rope.scaling.factor", gguf.NewFloat32(4)), ts
		}, []string{`key "llama.rope.scaling.type"`, `"yarn"`}, true},
		{"partial rotary", func(kv []gguf.KeyValue, ts []gguf.WriteTensor) ([]gguf.KeyValue, []gguf.WriteTensor) {
			return setKV(kv, "llama.rope.dimension_count", gguf.NewUint32(8)), ts
		}, []string{`key "llama.rope.dimension_count"`}, true},
		{"k-quant", func(kv []gguf.KeyValue, ts []gguf.WriteTensor) ([]gguf.KeyValue, []gguf.WriteTensor) {
			q := gguf.WriteTensor{Name: "blk.0.ffn_gate.weight", Shape: []int{96, 64}, Type: gguf.Q4_1, Data: make([]byte, 96*64/32*20)}
			return kv, setTensor(ts, q)
		}, []string{`tensor "blk.0.ffn_gate.weight": type Q4_1`}, false},
		{"unsupported tokenizer", func(kv []gguf.KeyValue, ts []gguf.WriteTensor) ([]gguf.KeyValue, []gguf.WriteTensor) {
			return setKV(kv, "tokenizer.ggml.model", gguf.NewString("bert")), ts
		}, []string{`tokenizer.ggml.model "bert" is not supported`}, false},
		{"unsupported pre-tokenizer", func(kv []gguf.KeyValue, ts []gguf.WriteTensor) ([]gguf.KeyValue, []gguf.WriteTensor) {
			return setKV(setKV(kv, "tokenizer.ggml.model", gguf.NewString("gpt2")), "tokenizer.ggml.pre", gguf.NewString("deepseek-llm")), ts
		}, []string{`tokenizer.ggml.pre "deepseek-llm" is not supported`}, false},
		{"missing tokens", func(kv []gguf.KeyValue, ts []gguf.WriteTensor) ([]gguf.KeyValue, []gguf.WriteTensor) {
			return dropKV(kv, "tokenizer.ggml.tokens"), ts
		}, []string{`key "tokenizer.ggml.tokens": missing`}, false},
		{"bos out of range", func(kv []gguf.KeyValue, ts []gguf.WriteTensor) ([]gguf.KeyValue, []gguf.WriteTensor) {
			return setKV(kv, "tokenizer.ggml.bos_token_id", gguf.NewUint32(100000)), ts
		}, []string{`key "tokenizer.ggml.bos_token_id"`, "100000"}, false},
		{"vocab_size mismatch", func(kv []gguf.KeyValue, ts []gguf.WriteTensor) ([]gguf.KeyValue, []gguf.WriteTensor) {
			return setKV(kv, "llama.vocab_size", gguf.NewUint32(5)), ts
		}, []string{`key "llama.vocab_size"`}, false},
	} {
		t.Run(x.name, func(t *testing.T) {
			kv, ts := x.mutate(base())
			path := writeGGUF(t, kv, ts)
			_, _, err := LoadGGUF(path)
			if err == nil {
				t.Fatal("loaded")
			}
			t.Log(err)
			for _, w := range append([]string{path}, x.want...) {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not contain %q", err, w)
				}
			}
			if x.unsupported && !errors.Is(err, model.ErrUnsupported) {
				t.Fatalf("error %q does not wrap model.ErrUnsupported", err)
			}
		})
	}
}
