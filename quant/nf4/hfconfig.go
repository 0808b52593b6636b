package nf4

import (
	"encoding/json"
	"fmt"
)

// HFQuantizationConfig is the "quantization_config" object transformers
// writes into config.json for a model quantized with
// BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
// bnb_4bit_use_double_quant=doubleQuant, bnb_4bit_compute_dtype=computeDType)
// (BitsAndBytesConfig.to_dict). skipModules lists modules left unquantized
// (llm_int8_skip_modules, e.g. "lm_head"); nil writes null. computeDType ""
// means "float32". Marshal it with encoding/json: keys come out sorted, as
// transformers writes them, and llm_int8_threshold as 6.0, since
// transformers rejects an integer there.
func HFQuantizationConfig(doubleQuant bool, computeDType string, skipModules []string) map[string]any {
	if computeDType == "" {
		computeDType = "float32"
	}
	var skip any
	if skipModules != nil {
		skip = skipModules
	}
	return map[string]any{
		"_load_in_4bit":                    true,
		"_load_in_8bit":                    false,
		"bnb_4bit_compute_dtype":           computeDType,
		"bnb_4bit_quant_storage":           "uint8",
		"bnb_4bit_quant_type":              "nf4",
		"bnb_4bit_use_double_quant":        doubleQuant,
		"llm_int8_enable_fp32_cpu_offload": false,
		"llm_int8_has_fp16_weight":         false,
		"llm_int8_skip_modules":            skip,
		"llm_int8_threshold":               json.RawMessage("6.0"),
		"load_in_4bit":                     true,
		"load_in_8bit":                     false,
		"quant_method":                     "bitsandbytes",
	}
}

// HFQuant is what a config.json's quantization_config says about a
// bitsandbytes 4-bit model.
type HFQuant struct {
	DoubleQuant  bool
	ComputeDType string
	SkipModules  []string
}

// ParseHFQuantizationConfig reads a config.json "quantization_config"
// object. It returns ok = false (and no error) for a missing or null object,
// and an error for any quantization lorakit cannot load as NF4 (another
// method, 8-bit, FP4).
func ParseHFQuantizationConfig(raw json.RawMessage) (q HFQuant, ok bool, err error) {
	if len(raw) == 0 || string(raw) == "null" {
		return q, false, nil
	}
	var c struct {
		QuantMethod   string   `json:"quant_method"`
		LoadIn4bit    *bool    `json:"load_in_4bit"`
		LoadIn4bitU   *bool    `json:"_load_in_4bit"`
		LoadIn8bit    *bool    `json:"load_in_8bit"`
		LoadIn8bitU   *bool    `json:"_load_in_8bit"`
		QuantType     *string  `json:"bnb_4bit_quant_type"`
		DoubleQuant   bool     `json:"bnb_4bit_use_double_quant"`
		ComputeDType  string   `json:"bnb_4bit_compute_dtype"`
		QuantStorage  *string  `json:"bnb_4bit_quant_storage"`
		LLMSkipModule []string `json:"llm_int8_skip_modules"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return q, false, fmt.Errorf("nf4: quantization_config: %v", err)
	}
	if c.QuantMethod != "bitsandbytes" {
		return q, false, fmt.Errorf("nf4: quantization_config: quant_method %q is not supported (only bitsandbytes NF4)", c.QuantMethod)
	}
	is := func(a, b *bool) bool { return (a != nil && *a) || (b != nil && *b) }
	if is(c.LoadIn8bit, c.LoadIn8bitU) {
		return q, false, fmt.Errorf("nf4: quantization_config: 8-bit bitsandbytes models are not supported (only NF4)")
	}
	if !is(c.LoadIn4bit, c.LoadIn4bitU) {
		return q, false, fmt.Errorf("nf4: quantization_config: bitsandbytes config without load_in_4bit")
	}
	// transformers' default bnb_4bit_quant_type is "fp4".
	if c.QuantType == nil || *c.QuantType != "nf4" {
		t := "fp4 (the default)"
		if c.QuantType != nil {
			t = *c.QuantType
		}
		return q, false, fmt.Errorf("nf4: quantization_config: bnb_4bit_quant_type %s is not supported (only nf4)", t)
	}
	if c.QuantStorage != nil && storageSize[dtypeOfTorch(*c.QuantStorage)] == 0 {
		return q, false, fmt.Errorf("nf4: quantization_config: bnb_4bit_quant_storage %q is not supported", *c.QuantStorage)
	}
	if c.ComputeDType == "" {
		c.ComputeDType = "float32"
	}
	return HFQuant{DoubleQuant: c.DoubleQuant, ComputeDType: c.ComputeDType, SkipModules: c.LLMSkipModule}, true, nil
}

// dtypeOfTorch maps a torch dtype name to its safetensors name.
func dtypeOfTorch(name string) string {
	switch name {
	case "uint8":
		return "U8"
	case "int8":
		return "I8"
	case "float16":
		return "F16"
	case "bfloat16":
		return "BF16"
	case "float32":
		return "F32"
	}
	return ""
}
