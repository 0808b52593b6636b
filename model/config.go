// Package model holds what every Llama-family model shares: the configuration
// read from a Hugging Face config.json and the sources model files come from.
package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"

	"github.com/lorakit/lorakit/quant/nf4"
)

// ErrUnsupported marks a configuration lorakit refuses rather than approximates.
var ErrUnsupported = errors.New("unsupported")

// Config is the subset of a Hugging Face config.json that decides the math of a
// LlamaForCausalLM-family model. Every field that would change the numbers is
// either honoured here or rejected by Validate.
type Config struct {
	ModelType        string   `json:"model_type"`
	Architectures    []string `json:"architectures"`
	HiddenSize       int      `json:"hidden_size"`
	IntermediateSize int      `json:"intermediate_size"`
	NumLayers        int      `json:"num_hidden_layers"`
	NumHeads         int      `json:"num_attention_heads"`
	NumKVHeads       int      `json:"num_key_value_heads"`
	HeadDim          int      `json:"head_dim"`
	VocabSize        int      `json:"vocab_size"`
	MaxPositions     int      `json:"max_position_embeddings"`
	RMSNormEps       float64  `json:"rms_norm_eps"`
	RopeTheta        float64  `json:"rope_theta"`
	RopeScaling      *RopeScaling
	TieEmbeddings    bool `json:"tie_word_embeddings"`
	AttentionBias    bool `json:"attention_bias"` // biases on q, k, v (and o for llama's attention_bias)
	OutputBias       bool // o_proj bias: llama's attention_bias sets it, qwen2 has none
	MLPBias          bool `json:"mlp_bias"`
	QKNorm           bool // qwen3: RMSNorm over each q and k head before RoPE
	SlidingWindow    int  // 0 = full attention (mistral / qwen2 with use_sliding_window)
	HiddenAct        string
	BOSTokenID       int   // -1 when the model defines none
	EOSTokenIDs      []int // any of them ends generation
	TorchDType       string
	// Quantization is "nf4" for a folder whose projections are stored in
	// bitsandbytes 4-bit NF4 (quantization_config), "" otherwise.
	Quantization string
	// QuantComputeDType is quantization_config's bnb_4bit_compute_dtype
	// ("float32" when absent, as in transformers): "bfloat16" makes the NF4
	// products compute in BF16; any other value computes in float32.
	QuantComputeDType string
}

// RopeScaling is config.json's rope_scaling; only "llama3" (Llama 3.1+) and
// "linear" change the math and both are implemented; "default" is none.
type RopeScaling struct {
	Type                          string  `json:"rope_type"`
	Factor                        float64 `json:"factor"`
	LowFreqFactor                 float64 `json:"low_freq_factor"`
	HighFreqFactor                float64 `json:"high_freq_factor"`
	OriginalMaxPositionEmbeddings int     `json:"original_max_position_embeddings"`
}

// supported model_type values and the defaults that differ between them.
var families = map[string]struct {
	tieDefault  bool
	qkvBias     bool // hard-wired q/k/v biases (qwen2)
	qkNorm      bool
	archPattern string
}{
	"llama":   {archPattern: "LlamaForCausalLM"},
	"mistral": {archPattern: "MistralForCausalLM"},
	"qwen2":   {qkvBias: true, archPattern: "Qwen2ForCausalLM"},
	"qwen3":   {qkNorm: true, archPattern: "Qwen3ForCausalLM"},
}

// LoadConfig reads and validates a config.json file.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParseConfig decodes and validates config.json bytes.
func ParseConfig(data []byte) (*Config, error) {
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	if raw == nil {
		return nil, fmt.Errorf("config.json: not a JSON object")
	}
	c := &Config{BOSTokenID: -1}
	get := func(key string, dst any) error {
		v, ok := raw[key]
		if !ok || string(v) == "null" {
			return nil
		}
		if err := json.Unmarshal(v, dst); err != nil {
			return fmt.Errorf("config.json: field %q: %w", key, err)
		}
		return nil
	}
	var useSliding *bool
	var sliding *int
	var partialRotary *float64
	var tie *bool
	var bos json.RawMessage
	var eos json.RawMessage
	var dtype string
	var quant json.RawMessage
	fields := []struct {
		key string
		dst any
	}{
		{"model_type", &c.ModelType}, {"architectures", &c.Architectures},
		{"hidden_size", &c.HiddenSize}, {"intermediate_size", &c.IntermediateSize},
		{"num_hidden_layers", &c.NumLayers}, {"num_attention_heads", &c.NumHeads},
		{"num_key_value_heads", &c.NumKVHeads}, {"head_dim", &c.HeadDim},
		{"vocab_size", &c.VocabSize}, {"max_position_embeddings", &c.MaxPositions},
		{"rms_norm_eps", &c.RMSNormEps}, {"rope_theta", &c.RopeTheta},
		{"rope_scaling", &c.RopeScaling}, {"tie_word_embeddings", &tie},
		{"attention_bias", &c.AttentionBias}, {"mlp_bias", &c.MLPBias},
		{"hidden_act", &c.HiddenAct}, {"sliding_window", &sliding},
		{"use_sliding_window", &useSliding}, {"partial_rotary_factor", &partialRotary},
		{"bos_token_id", &bos}, {"eos_token_id", &eos}, {"torch_dtype", &c.TorchDType},
		{"dtype", &dtype}, {"quantization_config", &quant},
	}
	for _, f := range fields {
		if err := get(f.key, f.dst); err != nil {
			return nil, err
		}
	}
	if c.TorchDType == "" {
		c.TorchDType = dtype
	}
	fam, ok := families[c.ModelType]
	if !ok {
		return nil, fmt.Errorf("config.json: model_type %q: %w (lorakit runs llama, mistral, qwen2, qwen3)", c.ModelType, ErrUnsupported)
	}
	for _, a := range c.Architectures {
		if !strings.HasSuffix(a, "ForCausalLM") {
			return nil, fmt.Errorf("config.json: architecture %q: %w (need a *ForCausalLM model)", a, ErrUnsupported)
		}
	}
	if len(quant) > 0 && string(quant) != "null" {
		hq, ok, err := nf4.ParseHFQuantizationConfig(quant)
		if err != nil || !ok {
			return nil, fmt.Errorf("config.json: quantization_config: %w (lorakit reads bitsandbytes 4-bit NF4 only): %v", ErrUnsupported, err)
		}
		c.Quantization = "nf4"
		c.QuantComputeDType = hq.ComputeDType
	}
	if c.HiddenAct == "" {
		c.HiddenAct = "silu"
	}
	if c.NumKVHeads == 0 {
		c.NumKVHeads = c.NumHeads
	}
	if c.HeadDim == 0 && c.NumHeads > 0 {
		c.HeadDim = c.HiddenSize / c.NumHeads
	}
	if c.RopeTheta == 0 {
		c.RopeTheta = 10000
	}
	if c.RMSNormEps == 0 {
		c.RMSNormEps = 1e-6
	}
	c.TieEmbeddings = fam.tieDefault
	if tie != nil {
		c.TieEmbeddings = *tie
	}
	c.OutputBias = c.AttentionBias && c.ModelType != "qwen3"
	if fam.qkvBias {
		c.AttentionBias, c.OutputBias = true, false
	}
	c.QKNorm = fam.qkNorm
	if sliding != nil && *sliding > 0 {
		// Mistral always slides; Qwen2/3 only when use_sliding_window is set.
		if c.ModelType == "mistral" || (useSliding != nil && *useSliding) {
			c.SlidingWindow = *sliding
		}
	}
	if partialRotary != nil && *partialRotary != 1 {
		return nil, fmt.Errorf("config.json: partial_rotary_factor %g: %w", *partialRotary, ErrUnsupported)
	}
	var err error
	if c.BOSTokenID, err = parseOptionalID(bos); err != nil {
		return nil, fmt.Errorf("config.json: bos_token_id: %w", err)
	}
	if c.EOSTokenIDs, err = ParseIDList(eos); err != nil {
		return nil, fmt.Errorf("config.json: eos_token_id: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	return c, nil
}

func parseOptionalID(raw json.RawMessage) (int, error) {
	ids, err := ParseIDList(raw)
	if err != nil || len(ids) == 0 {
		return -1, err
	}
	return ids[0], nil
}

// ParseIDList reads a token id field that Hugging Face allows as an int, a list
// of ints or null (eos_token_id in Llama 3 configs is a list).
func ParseIDList(raw json.RawMessage) ([]int, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one int
	if err := json.Unmarshal(raw, &one); err == nil {
		if one < 0 {
			return nil, fmt.Errorf("negative token id %d", one)
		}
		return []int{one}, nil
	}
	var many []int
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, fmt.Errorf("want an int or a list of ints, got %s", truncate(string(raw), 40))
	}
	for _, id := range many {
		if id < 0 {
			return nil, fmt.Errorf("negative token id %d", id)
		}
	}
	return many, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// Validate checks that the shapes are consistent and every math-changing
// option is one lorakit implements.
func (c *Config) Validate() error {
	pos := []struct {
		name string
		v    int
	}{
		{"hidden_size", c.HiddenSize}, {"intermediate_size", c.IntermediateSize},
		{"num_hidden_layers", c.NumLayers}, {"num_attention_heads", c.NumHeads},
		{"num_key_value_heads", c.NumKVHeads}, {"head_dim", c.HeadDim}, {"vocab_size", c.VocabSize},
	}
	for _, p := range pos {
		if p.v <= 0 {
			return fmt.Errorf("%s must be positive, got %d", p.name, p.v)
		}
		if p.v > 1<<20 {
			return fmt.Errorf("%s = %d is implausibly large", p.name, p.v)
		}
	}
	if c.VocabSize > 1<<22 {
		return fmt.Errorf("vocab_size = %d is implausibly large", c.VocabSize)
	}
	if c.NumHeads%c.NumKVHeads != 0 {
		return fmt.Errorf("num_attention_heads %d is not a multiple of num_key_value_heads %d", c.NumHeads, c.NumKVHeads)
	}
	if c.HeadDim%2 != 0 {
		return fmt.Errorf("head_dim %d must be even for RoPE", c.HeadDim)
	}
	if c.MaxPositions < 0 {
		return fmt.Errorf("max_position_embeddings must not be negative, got %d", c.MaxPositions)
	}
	if !(c.RMSNormEps > 0 && c.RMSNormEps < 1) {
		return fmt.Errorf("rms_norm_eps %g out of range", c.RMSNormEps)
	}
	if !(c.RopeTheta > 0) || math.IsInf(c.RopeTheta, 0) {
		return fmt.Errorf("rope_theta %g out of range", c.RopeTheta)
	}
	if c.HiddenAct != "silu" {
		return fmt.Errorf("hidden_act %q: %w (SwiGLU with silu only)", c.HiddenAct, ErrUnsupported)
	}
	if c.MLPBias {
		return fmt.Errorf("mlp_bias: %w", ErrUnsupported)
	}
	for _, id := range append([]int{c.BOSTokenID}, c.EOSTokenIDs...) {
		if id >= c.VocabSize {
			return fmt.Errorf("special token id %d outside vocab_size %d", id, c.VocabSize)
		}
	}
	if rs := c.RopeScaling; rs != nil {
		switch rs.Type {
		case "", "default":
			c.RopeScaling = nil
		case "linear":
			if !(rs.Factor >= 1) {
				return fmt.Errorf("rope_scaling linear: factor %g must be >= 1", rs.Factor)
			}
		case "llama3":
			if !(rs.Factor >= 1) || !(rs.LowFreqFactor > 0) || !(rs.HighFreqFactor > rs.LowFreqFactor) || rs.OriginalMaxPositionEmbeddings <= 0 {
				return fmt.Errorf("rope_scaling llama3: need factor >= 1, 0 < low_freq_factor < high_freq_factor, original_max_position_embeddings > 0; got %+v", *rs)
			}
		default:
			return fmt.Errorf("rope_scaling type %q: %w (llama3 and linear are implemented)", rs.Type, ErrUnsupported)
		}
	}
	return nil
}

// UnmarshalJSON accepts both spellings of the scaling type ("rope_type" in new
// configs, "type" in older ones).
func (r *RopeScaling) UnmarshalJSON(data []byte) error {
	type plain RopeScaling
	var p plain
	if err := json.Unmarshal(data, &p); err != nil {
		return err
	}
	if p.Type == "" {
		var old struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(data, &old); err != nil {
			return err
		}
		p.Type = old.Type
	}
	*r = RopeScaling(p)
	return nil
}

// InvFreq returns RoPE's inverse frequencies theta^(-2j/d), j < d/2, with the
// configured scaling applied. It matches HF's _compute_default_rope_parameters
// (computed in float32 from an int64 arange) and _compute_llama3_parameters.
func (c *Config) InvFreq() []float32 {
	d := c.HeadDim
	inv := make([]float32, d/2)
	for j := range inv {
		// HF: 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim)), in float32.
		exponent := float32(2*j) / float32(d)
		inv[j] = float32(1.0 / math.Pow(c.RopeTheta, float64(exponent)))
	}
	rs := c.RopeScaling
	if rs == nil {
		return inv
	}
	switch rs.Type {
	case "linear":
		for j := range inv {
			inv[j] /= float32(rs.Factor)
		}
	case "llama3":
		lowWavelen := float64(rs.OriginalMaxPositionEmbeddings) / rs.LowFreqFactor
		highWavelen := float64(rs.OriginalMaxPositionEmbeddings) / rs.HighFreqFactor
		for j, f := range inv {
			wavelen := 2 * math.Pi / float64(f)
			switch {
			case wavelen > lowWavelen:
				inv[j] = float32(float64(f) / rs.Factor)
			case wavelen >= highWavelen:
				smooth := (float64(rs.OriginalMaxPositionEmbeddings)/wavelen - rs.LowFreqFactor) / (rs.HighFreqFactor - rs.LowFreqFactor)
				inv[j] = float32((1-smooth)*float64(f)/rs.Factor + smooth*float64(f))
			}
		}
	}
	return inv
}

// KVDim is the width of the k and v projections.
func (c *Config) KVDim() int { return c.NumKVHeads * c.HeadDim }

// QDim is the width of the q projection (and the input of o_proj).
func (c *Config) QDim() int { return c.NumHeads * c.HeadDim }

// HFJSON renders the config as a Hugging Face config.json with the fields
// lorakit reads, so a folder lorakit writes loads back here and in transformers.
func (c *Config) HFJSON() ([]byte, error) {
	arch := families[c.ModelType].archPattern
	m := map[string]any{
		"architectures":           []string{arch},
		"model_type":              c.ModelType,
		"hidden_size":             c.HiddenSize,
		"intermediate_size":       c.IntermediateSize,
		"num_hidden_layers":       c.NumLayers,
		"num_attention_heads":     c.NumHeads,
		"num_key_value_heads":     c.NumKVHeads,
		"head_dim":                c.HeadDim,
		"vocab_size":              c.VocabSize,
		"max_position_embeddings": c.MaxPositions,
		"rms_norm_eps":            c.RMSNormEps,
		"rope_theta":              c.RopeTheta,
		"rope_scaling":            nil,
		"tie_word_embeddings":     c.TieEmbeddings,
		"hidden_act":              c.HiddenAct,
		"torch_dtype":             c.TorchDType,
	}
	if c.ModelType == "llama" || c.ModelType == "qwen3" {
		m["attention_bias"] = c.AttentionBias
		m["mlp_bias"] = false
	}
	if c.RopeScaling != nil {
		m["rope_scaling"] = c.RopeScaling
	}
	if c.Quantization == "nf4" {
		m["quantization_config"] = nf4.HFQuantizationConfig(true, c.QuantComputeDType, []string{"lm_head"})
	}
	if c.SlidingWindow > 0 {
		m["sliding_window"] = c.SlidingWindow
		if c.ModelType != "mistral" {
			m["use_sliding_window"] = true
		}
	}
	if c.BOSTokenID >= 0 {
		m["bos_token_id"] = c.BOSTokenID
	}
	switch len(c.EOSTokenIDs) {
	case 0:
	case 1:
		m["eos_token_id"] = c.EOSTokenIDs[0]
	default:
		m["eos_token_id"] = c.EOSTokenIDs
	}
	return json.MarshalIndent(m, "", "  ")
}
