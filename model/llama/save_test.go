package llama

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/lorakit/lorakit/kvcache"
	"github.com/lorakit/lorakit/model"
	"github.com/lorakit/lorakit/tensor"
)

func qwen2Config(t *testing.T) *model.Config {
	t.Helper()
	cfg, err := model.ParseConfig([]byte(`{
		"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
		"hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 3,
		"num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 300,
		"max_position_embeddings": 128, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
		"tie_word_embeddings": false, "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": [2, 3],
		"sliding_window": 4096, "use_sliding_window": false, "torch_dtype": "bfloat16"}`))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.AttentionBias || cfg.OutputBias {
		t.Fatalf("qwen2 must have q/k/v biases and no o_proj bias: %+v", cfg)
	}
	return cfg
}

// TestSaveLoadShardedBF16Qwen2 writes a tiny random qwen2-style model (biases
// on q/k/v) as a sharded BF16 Hugging Face folder, reads it back, and checks
// every tensor and the logits against the in-memory model rounded to BF16.
func TestSaveLoadShardedBF16Qwen2(t *testing.T) {
	m := NewRandom(qwen2Config(t), 7)
	dir := t.TempDir()
	if err := m.Save(dir, SaveOptions{DType: tensor.BF16, MaxShardBytes: 40_000}); err != nil {
		t.Fatal(err)
	}
	shards, _ := filepath.Glob(filepath.Join(dir, "model-*-of-*.safetensors"))
	if len(shards) < 3 {
		t.Fatalf("want several shards, got %v", shards)
	}
	if _, err := os.Stat(filepath.Join(dir, "model.safetensors.index.json")); err != nil {
		t.Fatal(err)
	}
	got, err := Load(model.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	if got.Config.ModelType != "qwen2" || !got.Config.AttentionBias || got.Config.TieEmbeddings || len(got.Config.EOSTokenIDs) != 2 {
		t.Fatalf("config did not round-trip: %+v", got.Config)
	}
	// The reference: the original weights rounded to BF16 as the writer must.
	want := m.Tensors()
	for i := range want {
		r := make([]float32, len(want[i].Data))
		for j, v := range want[i].Data {
			r[j] = tensor.BF16ToF32(tensor.F32ToBF16(v))
		}
		want[i].Data = r
	}
	have := got.Tensors()
	if len(have) != len(want) {
		t.Fatalf("%d tensors, want %d", len(have), len(want))
	}
	nBias := 0
	for i := range want {
		if have[i].Name != want[i].Name || !equalShape(have[i].Shape, want[i].Shape) {
			t.Fatalf("tensor %d: %s %v, want %s %v", i, have[i].Name, have[i].Shape, want[i].Name, want[i].Shape)
		}
		for j := range want[i].Data {
			if have[i].Data[j] != want[i].Data[j] {
				t.Fatalf("%s[%d] = %v, want %v", want[i].Name, j, have[i].Data[j], want[i].Data[j])
			}
		}
		if filepath.Ext(want[i].Name) == ".bias" {
			nBias++
		}
	}
	if nBias != 3*3 {
		t.Fatalf("%d bias tensors, want 9 (q, k, v in 3 layers)", nBias)
	}
	// The same numbers in, the same logits out.
	ref, err := FromTensorsF32(got.Config, want)
	if err != nil {
		t.Fatal(err)
	}
	ids := [][]int{{1, 5, 77, 299, 3, 42}}
	a, _ := ref.Forward(&Step{Caches: []*kvcache.Seq{ref.NewCache()}, Tokens: ids, AllLogits: true})
	b, _ := got.Forward(&Step{Caches: []*kvcache.Seq{got.NewCache()}, Tokens: ids, AllLogits: true})
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("logit %d: %v vs %v", i, a[i], b[i])
		}
	}
}
