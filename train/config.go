// Package train is the LoRA training loop: data, batches, forward and
// backward, AdamW, schedules, evaluation, checkpoints and reports.
package train

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/lorakit/lorakit/lora"
)

// Config is one training run. The YAML config file uses the CLI flag names.
type Config struct {
	Model       string `yaml:"model"`
	Data        string `yaml:"data"`
	Out         string `yaml:"out"`
	EvalData    string `yaml:"eval-data"`
	InitAdapter string `yaml:"init-adapter"`

	Rank    int      `yaml:"rank"`
	Alpha   float64  `yaml:"alpha"`
	Dropout float64  `yaml:"dropout"`
	Targets []string `yaml:"targets"`
	RSLoRA  bool     `yaml:"rslora"`

	LR            float64 `yaml:"lr"`
	Schedule      string  `yaml:"schedule"`
	Warmup        float64 `yaml:"warmup"` // < 1: ratio of total steps; >= 1: steps
	Epochs        float64 `yaml:"epochs"`
	Steps         int     `yaml:"steps"` // > 0 overrides epochs
	BatchSize     int     `yaml:"batch-size"`
	GradAccum     int     `yaml:"grad-accum"`
	SeqLen        int     `yaml:"seq-len"`
	WeightDecay   float64 `yaml:"weight-decay"`
	Clip          float64 `yaml:"clip"` // 0 disables
	Seed          uint64  `yaml:"seed"`
	NoShuffle     bool    `yaml:"no-shuffle"`
	Packing       bool    `yaml:"packing"`
	TrainOnInputs bool    `yaml:"train-on-inputs"`

	ValSize         float64 `yaml:"val-size"`   // < 1: fraction of the data; >= 1: examples
	EvalEvery       int     `yaml:"eval-every"` // 0: about ten evaluations per run
	SaveEvery       int     `yaml:"save-every"` // 0: about ten checkpoints per run
	KeepCheckpoints int     `yaml:"keep-checkpoints"`
	Resume          bool    `yaml:"resume"`

	// GradientCheckpointing recomputes each decoder layer's activations in
	// the backward instead of keeping them (HF gradient_checkpointing): far
	// less memory for one more forward of the layers, same gradients bit for
	// bit. nil, the default, means on for a quantized (NF4, QLoRA) base and
	// off for float32, as QLoRA recipes do; see Checkpointing. It is not part
	// of the resume config hash: it does not change the result.
	GradientCheckpointing *bool `yaml:"gradient-checkpointing"`
}

// Defaults are chosen by experiment on tiny-brown's h_train (README,
// "Choosing the defaults"): r=16, alpha=32 on all seven projections, lr 1e-3,
// cosine with 3% warmup, two epochs, batches of 4 sequences.
func Defaults() Config {
	return Config{
		Rank: 16, Alpha: 32, Dropout: 0, Targets: []string{"all-linear"},
		LR: 1e-3, Schedule: "cosine", Warmup: 0.03, Epochs: 2,
		BatchSize: 4, GradAccum: 1, WeightDecay: 0, Clip: 1.0, Seed: 42,
		KeepCheckpoints: 2,
	}
}

// Checkpointing resolves GradientCheckpointing for a base model: an explicit
// value wins; by default it is on exactly when the base is quantized.
func (c *Config) Checkpointing(quantized bool) bool {
	if c.GradientCheckpointing != nil {
		return *c.GradientCheckpointing
	}
	return quantized
}

// LoadYAML overlays a YAML file on c. Unknown keys are errors (a typo must not
// silently leave a default in place). A key may also be spelled with
// underscores (gradient_checkpointing for gradient-checkpointing, as Hugging
// Face and Axolotl configs write it).
func (c *Config) LoadYAML(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if b, err = hyphenateKeys(b); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Validate checks ranges and combinations.
func (c *Config) Validate() error {
	var bad []string
	check := func(ok bool, format string, args ...any) {
		if !ok {
			bad = append(bad, fmt.Sprintf(format, args...))
		}
	}
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	check(c.Data != "", "data: a JSONL file is required")
	check(c.Out != "", "out: an output folder is required")
	check(c.Rank > 0, "rank %d must be positive", c.Rank)
	check(c.Alpha != 0 && finite(c.Alpha), "alpha %v must be finite and non-zero", c.Alpha)
	check(c.Dropout >= 0 && c.Dropout < 1, "dropout %v must be in [0, 1)", c.Dropout)
	check(c.LR > 0 && finite(c.LR), "lr %v must be positive", c.LR)
	check(c.Warmup >= 0 && finite(c.Warmup), "warmup %v must be >= 0", c.Warmup)
	check(c.Steps > 0 || (c.Epochs > 0 && finite(c.Epochs)), "epochs %v or steps %d must be positive", c.Epochs, c.Steps)
	check(c.Steps >= 0, "steps %d must not be negative", c.Steps)
	check(c.BatchSize > 0, "batch-size %d must be positive", c.BatchSize)
	check(c.GradAccum > 0, "grad-accum %d must be positive", c.GradAccum)
	check(c.SeqLen >= 0, "seq-len %d must not be negative", c.SeqLen)
	check(c.WeightDecay >= 0 && finite(c.WeightDecay), "weight-decay %v must be >= 0", c.WeightDecay)
	check(c.Clip >= 0 && finite(c.Clip), "clip %v must be >= 0 (0 disables)", c.Clip)
	check(c.ValSize >= 0 && finite(c.ValSize), "val-size %v must be >= 0", c.ValSize)
	check(c.EvalEvery >= 0 && c.SaveEvery >= 0, "eval-every and save-every must not be negative")
	check(!(c.ValSize > 0 && c.EvalData != ""), "give val-size or eval-data, not both")
	for _, t := range c.Targets {
		check(t == "all-linear" || isProjection(t), "target %q is not one of %s or all-linear", t, strings.Join(lora.Projections, ","))
	}
	check(len(c.Targets) > 0 || c.InitAdapter != "", "targets: at least one module")
	switch c.Schedule {
	case "constant", "linear", "cosine":
	default:
		bad = append(bad, fmt.Sprintf("schedule %q: want constant, linear or cosine", c.Schedule))
	}
	if len(bad) > 0 {
		return fmt.Errorf("training config: %s", strings.Join(bad, "; "))
	}
	return nil
}

// hyphenateKeys renames the top-level keys spelled with underscores whose
// hyphenated form is a Config field. Other keys are left as written (an
// unknown key is reported by its own name), and a file with nothing to rename
// is returned unchanged.
func hyphenateKeys(b []byte) ([]byte, error) {
	if !bytes.Contains(b, []byte("_")) {
		return b, nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return b, nil
	}
	known := map[string]bool{}
	t := reflect.TypeOf(Config{})
	for i := 0; i < t.NumField(); i++ {
		known[strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]] = true
	}
	renamed := false
	kv := doc.Content[0].Content
	for i := 0; i < len(kv); i += 2 {
		if h := strings.ReplaceAll(kv[i].Value, "_", "-"); h != kv[i].Value && known[h] && !known[kv[i].Value] {
			kv[i].Value, renamed = h, true
		}
	}
	if !renamed {
		return b, nil
	}
	return yaml.Marshal(&doc)
}

func isProjection(s string) bool {
	for _, p := range lora.Projections {
		if p == s {
			return true
		}
	}
	return false
}

// LoRAConfig is the PEFT adapter config of a fresh adapter for this run.
func (c *Config) LoRAConfig(base string) lora.Config {
	return lora.Config{
		PeftType: "LORA", TaskType: "CAUSAL_LM", R: c.Rank, Alpha: c.Alpha, Dropout: c.Dropout,
		TargetModules: c.Targets, Bias: "none", UseRSLoRA: c.RSLoRA, BaseModel: base, InferenceMode: true,
	}
}
