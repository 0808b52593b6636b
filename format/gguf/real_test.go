package gguf

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// The converted tiny model lives outside the repository (23 MB); the test
// skips when it is absent, e.g. in CI.
var realGGUF = filepath.Join("..", "..", "..", "shared", "models", "tiny-brown-f32.gguf")
var realSafetensors = filepath.Join("..", "..", "models", "tiny-brown", "model.safetensors")

func TestRealFile(t *testing.T) {
	if _, err := os.Stat(realGGUF); err != nil {
		t.Skipf("no %s: %v", realGGUF, err)
	}
	f, err := Open(realGGUF)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Version != 3 {
		t.Errorf("version %d, want 3", f.Version)
	}
	wantString := func(key, want string) {
		t.Helper()
		got, ok := f.KV[key].String()
		if !ok || got != want {
			t.Errorf("%s = %q (string: %v), want %q", key, got, ok, want)
		}
	}
	wantString("general.architecture", "llama")
	wantString("tokenizer.ggml.model", "gpt2")
	tokens, ok := f.KV["tokenizer.ggml.tokens"].Strings()
	if !ok || len(tokens) != 4096 {
		t.Errorf("tokenizer.ggml.tokens: %d strings (ok=%v), want 4096", len(tokens), ok)
	}
	if types, ok := f.KV["tokenizer.ggml.token_type"].Ints(); !ok || len(types) != 4096 {
		t.Errorf("tokenizer.ggml.token_type: %d ints (ok=%v), want 4096", len(types), ok)
	}
	if n, ok := f.KV["llama.embedding_length"].Int(); !ok || n != 256 {
		t.Errorf("llama.embedding_length = %d (ok=%v), want 256", n, ok)
	}
	if eps, ok := f.KV["llama.attention.layer_norm_rms_epsilon"].Float(); !ok || math.Abs(eps-1e-5) > 1e-10 {
		t.Errorf("llama.attention.layer_norm_rms_epsilon = %v (ok=%v), want 1e-5", eps, ok)
	}
	if len(f.Keys) != len(f.KV) {
		t.Errorf("%d ordered keys for %d values", len(f.Keys), len(f.KV))
	}
	for _, ti := range f.Tensors {
		if ti.Offset%f.Alignment != 0 {
			t.Errorf("tensor %s: offset %d not aligned", ti.Name, ti.Offset)
		}
	}

	emb, ok := f.Tensor("token_embd.weight")
	if !ok {
		t.Fatal("no token_embd.weight")
	}
	if !slices.Equal(emb.Shape(), []int{4096, 256}) || emb.Type != F32 {
		t.Fatalf("token_embd.weight: shape %v type %v, want [4096 256] F32", emb.Shape(), emb.Type)
	}
	got, err := emb.Float32()
	if err != nil {
		t.Fatal(err)
	}
	want, shape := safetensorsF32(t, realSafetensors, "model.embed_tokens.weight")
	if !slices.Equal(shape, emb.Shape()) {
		t.Fatalf("safetensors shape %v, gguf %v", shape, emb.Shape())
	}
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("token_embd.weight[%d] = %v, safetensors %v", i, got[i], want[i])
		}
	}
}

// safetensorsF32 reads one F32 tensor from a safetensors file: u64 header
// length, JSON header {name: {dtype, shape, data_offsets}}, then data.
// (Kept local: the safetensors package is being written concurrently.)
func safetensorsF32(t *testing.T, path, name string) ([]float32, []int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("no %s: %v", path, err)
	}
	n := binary.LittleEndian.Uint64(b)
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &hdr); err != nil {
		t.Fatal(err)
	}
	var info struct {
		DType   string   `json:"dtype"`
		Shape   []int    `json:"shape"`
		Offsets [2]int64 `json:"data_offsets"`
	}
	if err := json.Unmarshal(hdr[name], &info); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if info.DType != "F32" {
		t.Fatalf("%s: dtype %s", name, info.DType)
	}
	data := b[8+n+uint64(info.Offsets[0]) : 8+n+uint64(info.Offsets[1])]
	out := make([]float32, len(data)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
	}
	return out, info.Shape
}
