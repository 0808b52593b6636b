// Package lora holds LoRA adapters with exact PEFT semantics: the
// configuration, the A and B matrices of every adapted module, reading and
// writing the PEFT format, merging and combining.
package lora

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"
)

// Projections are the seven linear layers of a Llama block, by PEFT's short
// module names; Attention are the default targets.
var (
	Projections = []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
	Attention   = []string{"q_proj", "k_proj", "v_proj", "o_proj"}
)

// Config is PEFT's LoraConfig as written to adapter_config.json.
type Config struct {
	PeftType          string             `json:"peft_type"`
	TaskType          string             `json:"task_type"`
	R                 int                `json:"r"`
	Alpha             float64            `json:"lora_alpha"`
	Dropout           float64            `json:"lora_dropout"`
	TargetModules     []string           `json:"target_modules"`
	Bias              string             `json:"bias"`
	UseRSLoRA         bool               `json:"use_rslora"`
	FanInFanOut       bool               `json:"fan_in_fan_out"`
	BaseModel         string             `json:"base_model_name_or_path"`
	InferenceMode     bool               `json:"inference_mode"`
	RankPattern       map[string]int     `json:"rank_pattern"`
	AlphaPattern      map[string]float64 `json:"alpha_pattern"`
	LayersToTransform []int              `json:"layers_to_transform"`
	InitLoraWeights   bool               `json:"init_lora_weights"`
	UseDora           bool               `json:"use_dora"`
	ModulesToSave     []string           `json:"modules_to_save"`
}

// ParseConfig decodes adapter_config.json. Fields that would change the math
// and that lorakit does not implement are errors, not silently ignored.
func ParseConfig(data []byte) (*Config, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("adapter_config.json: %w", err)
	}
	if raw == nil {
		return nil, fmt.Errorf("adapter_config.json: not a JSON object")
	}
	c := &Config{Bias: "none"}
	// target_modules is a list or a string (a regex in PEFT, or "all-linear").
	if tm, ok := raw["target_modules"]; ok {
		var s string
		if json.Unmarshal(tm, &s) == nil {
			if s != "all-linear" {
				return nil, fmt.Errorf("adapter_config.json: target_modules regex %q is not supported (give a list of module names or \"all-linear\")", s)
			}
			c.TargetModules = []string{"all-linear"}
			delete(raw, "target_modules")
		}
	}
	for _, k := range []string{"layers_to_transform"} { // an int or a list in PEFT
		if v, ok := raw[k]; ok {
			var one int
			if json.Unmarshal(v, &one) == nil {
				raw[k], _ = json.Marshal([]int{one})
			}
		}
	}
	b, _ := json.Marshal(raw)
	if err := json.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("adapter_config.json: %w", err)
	}
	// Options PEFT has that change the math and lorakit does not implement.
	for key, isDefault := range map[string]func(json.RawMessage) bool{
		"use_dora":                isFalse,
		"fan_in_fan_out":          isFalse,
		"lora_bias":               isFalse,
		"modules_to_save":         isEmpty,
		"layer_replication":       isEmpty,
		"target_parameters":       isEmpty,
		"trainable_token_indices": isEmpty,
		"layers_pattern":          func(json.RawMessage) bool { return true }, // only meaningful with layers_to_transform on non-Llama layouts
	} {
		if v, ok := raw[key]; ok && !isDefault(v) {
			return nil, fmt.Errorf("adapter_config.json: %s = %s is not supported", key, string(v))
		}
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("adapter_config.json: %w", err)
	}
	return c, nil
}

func isFalse(v json.RawMessage) bool { s := string(v); return s == "false" || s == "null" }

func isEmpty(v json.RawMessage) bool {
	s := strings.TrimSpace(string(v))
	return s == "null" || s == "[]" || s == "{}" || s == `""`
}

// Validate checks the fields lorakit uses.
func (c *Config) Validate() error {
	if c.PeftType != "LORA" {
		return fmt.Errorf("peft_type %q: only LORA adapters are supported", c.PeftType)
	}
	if c.TaskType != "" && c.TaskType != "CAUSAL_LM" {
		return fmt.Errorf("task_type %q: only CAUSAL_LM adapters are supported", c.TaskType)
	}
	if c.R <= 0 || c.R > 1<<16 {
		return fmt.Errorf("r = %d: must be a positive rank", c.R)
	}
	if math.IsNaN(c.Alpha) || math.IsInf(c.Alpha, 0) || c.Alpha == 0 {
		return fmt.Errorf("lora_alpha = %v: must be a finite non-zero number", c.Alpha)
	}
	if !(c.Dropout >= 0 && c.Dropout < 1) {
		return fmt.Errorf("lora_dropout = %v: must be in [0, 1)", c.Dropout)
	}
	if c.Bias != "none" && c.Bias != "" {
		return fmt.Errorf("bias = %q: only \"none\" is supported", c.Bias)
	}
	if len(c.TargetModules) == 0 {
		return fmt.Errorf("target_modules is empty")
	}
	for _, t := range c.TargetModules {
		if t != "all-linear" && !isProjection(t) {
			return fmt.Errorf("target module %q is not a Llama projection (%s)", t, strings.Join(Projections, ", "))
		}
	}
	for k, r := range c.RankPattern {
		if r <= 0 {
			return fmt.Errorf("rank_pattern[%q] = %d: must be positive", k, r)
		}
		if _, err := regexp.Compile(k); err != nil {
			return fmt.Errorf("rank_pattern key %q: %w", k, err)
		}
	}
	for k, a := range c.AlphaPattern {
		if math.IsNaN(a) || math.IsInf(a, 0) || a == 0 {
			return fmt.Errorf("alpha_pattern[%q] = %v: must be finite and non-zero", k, a)
		}
		if _, err := regexp.Compile(k); err != nil {
			return fmt.Errorf("alpha_pattern key %q: %w", k, err)
		}
	}
	return nil
}

func isProjection(name string) bool {
	for _, p := range Projections {
		if p == name {
			return true
		}
	}
	return false
}

// Targets expands target_modules ("all-linear" → the seven projections),
// sorted as PEFT writes them.
func (c *Config) Targets() []string {
	set := map[string]bool{}
	for _, t := range c.TargetModules {
		if t == "all-linear" {
			for _, p := range Projections {
				set[p] = true
			}
		} else {
			set[t] = true
		}
	}
	out := make([]string, 0, len(set))
	for t := range set {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Targets reports whether a module ("model.layers.3.self_attn.q_proj") is
// adapted: its last name component is a target and its layer is transformed.
func (c *Config) Targeted(module string) bool {
	short := module[strings.LastIndexByte(module, '.')+1:]
	ok := false
	for _, t := range c.Targets() {
		if t == short {
			ok = true
		}
	}
	if !ok {
		return false
	}
	if len(c.LayersToTransform) > 0 {
		layer, found := LayerIndex(module)
		if !found {
			return false
		}
		for _, l := range c.LayersToTransform {
			if l == layer {
				return true
			}
		}
		return false
	}
	return true
}

// LayerIndex extracts i from "...layers.{i}...".
func LayerIndex(module string) (int, bool) {
	i := strings.Index(module, "layers.")
	if i < 0 {
		return 0, false
	}
	n, j := 0, i+len("layers.")
	for ; j < len(module) && module[j] >= '0' && module[j] <= '9'; j++ {
		n = n*10 + int(module[j]-'0')
	}
	return n, j > i+len("layers.")
}

// RankAlpha is the rank and alpha of one module, after rank_pattern and
// alpha_pattern. PEFT matches a pattern key against the module name with
// re.match(rf"(.*\.)?({key})$", name) and takes the first key that matches.
func (c *Config) RankAlpha(module string) (int, float64) {
	r, a := c.R, c.Alpha
	if k, ok := matchPattern(keysOf(c.RankPattern), module); ok {
		r = c.RankPattern[k]
	}
	if k, ok := matchPattern(keysOf(c.AlphaPattern), module); ok {
		a = c.AlphaPattern[k]
	}
	return r, a
}

// Scale is s in W + s·B·A: alpha/r, or alpha/sqrt(r) with rsLoRA.
func (c *Config) Scale(r int, alpha float64) float32 {
	if c.UseRSLoRA {
		return float32(alpha / math.Sqrt(float64(r)))
	}
	return float32(alpha / float64(r))
}

func keysOf[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks) // Go maps are unordered; PEFT uses insertion order: sorted is our documented choice
	return ks
}

func matchPattern(keys []string, module string) (string, bool) {
	for _, k := range keys {
		re, err := regexp.Compile(`^(.*\.)?(` + k + `)$`)
		if err == nil && re.MatchString(module) {
			return k, true
		}
	}
	return "", false
}

// JSON renders adapter_config.json with the keys PEFT writes.
func (c *Config) JSON() ([]byte, error) {
	rp, ap := c.RankPattern, c.AlphaPattern
	if rp == nil {
		rp = map[string]int{}
	}
	if ap == nil {
		ap = map[string]float64{}
	}
	var layers any
	if len(c.LayersToTransform) > 0 {
		layers = c.LayersToTransform
	}
	m := map[string]any{
		"alpha_pattern":           ap,
		"auto_mapping":            nil,
		"base_model_name_or_path": c.BaseModel,
		"bias":                    "none",
		"fan_in_fan_out":          false,
		"inference_mode":          true,
		"init_lora_weights":       true,
		"layers_pattern":          nil,
		"layers_to_transform":     layers,
		"lora_alpha":              c.Alpha,
		"lora_dropout":            c.Dropout,
		"modules_to_save":         nil,
		"peft_type":               "LORA",
		"r":                       c.R,
		"rank_pattern":            rp,
		"revision":                nil,
		"target_modules":          c.Targets(),
		"task_type":               "CAUSAL_LM",
		"use_dora":                false,
		"use_rslora":              c.UseRSLoRA,
	}
	return json.MarshalIndent(m, "", "  ")
}
