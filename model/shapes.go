package model

import (
	"fmt"
	"sort"
	"strings"
)

// shapes are named model shapes for benchmarks on random weights.
var shapes = map[string]string{
	// SmolLM2-135M: hidden 576, 30 layers, 9 heads, 3 kv heads, ffn 1536, vocab 49152, tied.
	"smollm2-135m": `{"model_type":"llama","hidden_size":576,"intermediate_size":1536,"num_hidden_layers":30,
		"num_attention_heads":9,"num_key_value_heads":3,"vocab_size":49152,"max_position_embeddings":8192,
		"rms_norm_eps":1e-5,"rope_theta":100000,"tie_word_embeddings":true}`,
	// tiny-brown: the embedded default model's shape.
	"tiny-brown": `{"model_type":"llama","hidden_size":256,"intermediate_size":768,"num_hidden_layers":6,
		"num_attention_heads":8,"num_key_value_heads":4,"head_dim":32,"vocab_size":4096,"max_position_embeddings":512,
		"rms_norm_eps":1e-5,"rope_theta":10000,"tie_word_embeddings":true}`,
	// TinyLlama-1.1B.
	"tinyllama-1.1b": `{"model_type":"llama","hidden_size":2048,"intermediate_size":5632,"num_hidden_layers":22,
		"num_attention_heads":32,"num_key_value_heads":4,"vocab_size":32000,"max_position_embeddings":2048,
		"rms_norm_eps":1e-5,"rope_theta":10000,"tie_word_embeddings":false}`,
	// Qwen2.5-0.5B (q/k/v biases).
	"qwen2.5-0.5b": `{"model_type":"qwen2","hidden_size":896,"intermediate_size":4864,"num_hidden_layers":24,
		"num_attention_heads":14,"num_key_value_heads":2,"vocab_size":151936,"max_position_embeddings":32768,
		"rms_norm_eps":1e-6,"rope_theta":1000000,"tie_word_embeddings":true}`,
}

// NamedShape returns the config of a named benchmark shape.
func NamedShape(name string) (*Config, error) {
	s, ok := shapes[strings.ToLower(name)]
	if !ok {
		return nil, fmt.Errorf("unknown shape %q (known: %s)", name, strings.Join(ShapeNames(), ", "))
	}
	return ParseConfig([]byte(s))
}

// ShapeNames lists the named shapes.
func ShapeNames() []string {
	var ns []string
	for n := range shapes {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return ns
}
