package nf4

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestHFQuantizationConfig(t *testing.T) {
	b, err := json.Marshal(HFQuantizationConfig(true, "bfloat16", []string{"lm_head"}))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"_load_in_4bit":true,"_load_in_8bit":false,"bnb_4bit_compute_dtype":"bfloat16","bnb_4bit_quant_storage":"uint8",` +
		`"bnb_4bit_quant_type":"nf4","bnb_4bit_use_double_quant":true,"llm_int8_enable_fp32_cpu_offload":false,` +
		`"llm_int8_has_fp16_weight":false,"llm_int8_skip_modules":["lm_head"],"llm_int8_threshold":6.0,` +
		`"load_in_4bit":true,"load_in_8bit":false,"quant_method":"bitsandbytes"}`
	if string(b) != want {
		t.Errorf("got\n%s\nwant\n%s", b, want)
	}
	q, ok, err := ParseHFQuantizationConfig(b)
	if err != nil || !ok || !q.DoubleQuant || q.ComputeDType != "bfloat16" || len(q.SkipModules) != 1 {
		t.Errorf("round trip: %+v %v %v", q, ok, err)
	}
	if b, _ := json.Marshal(HFQuantizationConfig(false, "", nil)); !strings.Contains(string(b), `"llm_int8_skip_modules":null`) || !strings.Contains(string(b), `"bnb_4bit_compute_dtype":"float32"`) {
		t.Errorf("defaults: %s", b)
	}
	if _, ok, err := ParseHFQuantizationConfig(nil); ok || err != nil {
		t.Error("missing config")
	}
	if _, ok, err := ParseHFQuantizationConfig(json.RawMessage("null")); ok || err != nil {
		t.Error("null config")
	}
	for _, bad := range []string{
		`{"quant_method": "gptq", "bits": 4}`,
		`{"quant_method": "bitsandbytes", "load_in_8bit": true}`,
		`{"quant_method": "bitsandbytes", "load_in_4bit": true}`,
		`{"quant_method": "bitsandbytes", "load_in_4bit": true, "bnb_4bit_quant_type": "fp4"}`,
		`{"quant_method": "bitsandbytes", "load_in_4bit": true, "bnb_4bit_quant_type": "nf4", "bnb_4bit_quant_storage": "float64"}`,
		`{"quant_method": "bitsandbytes"}`,
		`[1, 2]`,
	} {
		if _, _, err := ParseHFQuantizationConfig(json.RawMessage(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}
