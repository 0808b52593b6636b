package model

import (
	"errors"
	"math"
	"os"
	"strings"
	"testing"
)

const llama3Config = `{"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":2048,
"intermediate_size":8192,"num_hidden_layers":16,"num_attention_heads":32,"num_key_value_heads":8,
"head_dim":64,"vocab_size":128256,"max_position_embeddings":131072,"rms_norm_eps":1e-05,
"rope_theta":500000.0,"rope_scaling":{"factor":32.0,"high_freq_factor":4.0,"low_freq_factor":1.0,
"original_max_position_embeddings":8192,"rope_type":"llama3"},"tie_word_embeddings":true,
"bos_token_id":128000,"eos_token_id":[128001,128008,128009],"hidden_act":"silu","torch_dtype":"bfloat16"}`

func TestParseConfigFamilies(t *testing.T) {
	tests := []struct {
		name  string
		json  string
		check func(*testing.T, *Config)
	}{
		{"llama3.2 with llama3 rope scaling", llama3Config, func(t *testing.T, c *Config) {
			if c.RopeScaling == nil || c.RopeScaling.Type != "llama3" || c.RopeScaling.Factor != 32 {
				t.Fatalf("rope_scaling %+v", c.RopeScaling)
			}
			if !c.TieEmbeddings || c.BOSTokenID != 128000 || len(c.EOSTokenIDs) != 3 {
				t.Fatalf("%+v", c)
			}
		}},
		{"tinyllama defaults", `{"model_type":"llama","hidden_size":2048,"intermediate_size":5632,"num_hidden_layers":22,
			"num_attention_heads":32,"num_key_value_heads":4,"vocab_size":32000,"rms_norm_eps":1e-05,"bos_token_id":1,"eos_token_id":2}`,
			func(t *testing.T, c *Config) {
				if c.HeadDim != 64 || c.RopeTheta != 10000 || c.TieEmbeddings || c.AttentionBias {
					t.Fatalf("%+v", c)
				}
			}},
		{"qwen2 biases, no window unless asked", `{"model_type":"qwen2","hidden_size":896,"intermediate_size":4864,"num_hidden_layers":24,
			"num_attention_heads":14,"num_key_value_heads":2,"vocab_size":151936,"sliding_window":32768,"use_sliding_window":false,"tie_word_embeddings":true}`,
			func(t *testing.T, c *Config) {
				if !c.AttentionBias || c.OutputBias || c.SlidingWindow != 0 || c.QKNorm {
					t.Fatalf("%+v", c)
				}
			}},
		{"qwen3 q/k norm", `{"model_type":"qwen3","hidden_size":1024,"intermediate_size":3072,"num_hidden_layers":28,
			"num_attention_heads":16,"num_key_value_heads":8,"head_dim":128,"vocab_size":151936,"attention_bias":false}`,
			func(t *testing.T, c *Config) {
				if !c.QKNorm || c.AttentionBias || c.HeadDim != 128 {
					t.Fatalf("%+v", c)
				}
			}},
		{"mistral slides", `{"model_type":"mistral","hidden_size":4096,"intermediate_size":14336,"num_hidden_layers":32,
			"num_attention_heads":32,"num_key_value_heads":8,"vocab_size":32000,"sliding_window":4096,"rope_theta":10000.0}`,
			func(t *testing.T, c *Config) {
				if c.SlidingWindow != 4096 {
					t.Fatalf("%+v", c)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tt.json))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestParseConfigRejects(t *testing.T) {
	base := `"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":100`
	tests := []struct{ name, json, want string }{
		{"not json", `{`, "config.json"},
		{"array", `[]`, "config.json"},
		{"unknown family", `{"model_type":"gpt2",` + base + `}`, "model_type \"gpt2\""},
		{"seq classifier", `{"model_type":"llama","architectures":["LlamaForSequenceClassification"],` + base + `}`, "LlamaForSequenceClassification"},
		{"yarn scaling", `{"model_type":"llama","rope_scaling":{"type":"yarn","factor":4},` + base + `}`, "yarn"},
		{"gelu", `{"model_type":"llama","hidden_act":"gelu",` + base + `}`, "hidden_act"},
		{"mlp bias", `{"model_type":"llama","mlp_bias":true,` + base + `}`, "mlp_bias"},
		{"gqa mismatch", `{"model_type":"llama","num_key_value_heads":3,` + base + `}`, "multiple"},
		{"zero layers", `{"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":0,"num_attention_heads":4,"vocab_size":100}`, "num_hidden_layers"},
		{"wrong type", `{"model_type":"llama","hidden_size":"64"}`, "hidden_size"},
		{"eos outside vocab", `{"model_type":"llama","eos_token_id":100,` + base + `}`, "outside vocab"},
		{"partial rotary", `{"model_type":"llama","partial_rotary_factor":0.5,` + base + `}`, "partial_rotary_factor"},
		{"quantized", `{"model_type":"llama","quantization_config":{"quant_method":"gptq"},` + base + `}`, "quantization_config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.json))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
	_, err := ParseConfig([]byte(`{"model_type":"falcon",` + base + `}`))
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("unknown family should wrap ErrUnsupported: %v", err)
	}
}

// TestLlama3InvFreq checks the three bands of HF's _compute_llama3_parameters:
// high frequencies untouched, low ones divided by factor, the middle smoothed.
func TestLlama3InvFreq(t *testing.T) {
	c, err := ParseConfig([]byte(llama3Config))
	if err != nil {
		t.Fatal(err)
	}
	plain := *c
	plain.RopeScaling = nil
	base, scaled := plain.InvFreq(), c.InvFreq()
	if len(base) != 32 {
		t.Fatalf("%d frequencies", len(base))
	}
	if base[0] != 1 || scaled[0] != 1 {
		t.Fatalf("j=0: %v %v", base[0], scaled[0])
	}
	last := len(base) - 1
	if r := float64(base[last] / scaled[last]); math.Abs(r-32) > 1e-4 {
		t.Fatalf("lowest frequency ratio %v, want 32", r)
	}
	sawMiddle := false
	for j := range base {
		r := float64(base[j] / scaled[j])
		if r > 1.0001 && r < 31.99 {
			sawMiddle = true
		}
		if r < 0.9999 || r > 32.0001 {
			t.Fatalf("j=%d ratio %v out of [1, 32]", j, r)
		}
	}
	if !sawMiddle {
		t.Fatal("no smoothed middle band")
	}
}

func TestConfigJSONRoundTrip(t *testing.T) {
	c, err := ParseConfig([]byte(llama3Config))
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.HFJSON()
	if err != nil {
		t.Fatal(err)
	}
	c2, err := ParseConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	if c2.RopeScaling == nil || *c2.RopeScaling != *c.RopeScaling || c2.HeadDim != c.HeadDim || len(c2.EOSTokenIDs) != 3 {
		t.Fatalf("round trip changed the config:\n%+v\n%+v", c, c2)
	}
}

// FuzzParseConfig: any bytes give a config or an error, never a panic, and an
// accepted config always validates and renders back to a parseable config.json.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(llama3Config))
	if b, err := os.ReadFile("../models/tiny-brown/config.json"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"model_type":"qwen3","hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2,"vocab_size":9}`))
	f.Add([]byte(`{"model_type":"llama","rope_scaling":{"type":"linear","factor":2},"hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2,"vocab_size":9}`))
	f.Add([]byte(`{"model_type":"llama","hidden_size":-1}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"eos_token_id":[1,-2]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted config fails Validate: %v", err)
		}
		_ = c.InvFreq()
		b, err := c.HFJSON()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseConfig(b); err != nil {
			t.Fatalf("rendered config does not parse: %v\n%s", err, b)
		}
	})
}

func TestNamedShapes(t *testing.T) {
	for _, n := range ShapeNames() {
		if _, err := NamedShape(n); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	c, _ := NamedShape("smollm2-135m")
	if c.HiddenSize != 576 || c.NumLayers != 30 || c.HeadDim != 64 || !c.TieEmbeddings {
		t.Fatalf("%+v", c)
	}
}
