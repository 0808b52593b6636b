package sample

import (
	"fmt"
	"math"
	"strings"
)

// Params configures a Sampler. The zero value is greedy decoding.
type Params struct {
	// Temperature divides the logits before the softmax. 0 means greedy
	// (argmax, ties to the lowest id), as HF's do_sample=False: the
	// repetition penalty still applies, the warpers do not matter.
	Temperature float32
	// TopK keeps the K most likely tokens; 0 = off. (HF's GenerationConfig
	// defaults top_k to 50 when a generation_config.json omits it; whoever
	// translates such a config into Params must apply that default.)
	TopK int
	// TopP keeps the smallest most-likely prefix whose probability mass
	// reaches TopP (always at least one token); 0 or 1 = off.
	TopP float32
	// MinP keeps tokens with p >= MinP * p_max; 0 = off.
	MinP float32
	// RepetitionPenalty is HF's (CTRL paper) penalty: every token id present
	// in the history has its logit divided by the penalty if positive and
	// multiplied by it otherwise, once per distinct id. 0 or 1 = off.
	RepetitionPenalty float32
	// Seed seeds the PCG generator; equal seeds give equal draws.
	Seed uint64
}

func finite32(f float32) bool { return !math.IsNaN(float64(f)) && !math.IsInf(float64(f), 0) }

// Validate reports every out-of-range field. HF raises on the same inputs
// (e.g. top_p must be a float in [0, 1], temperature strictly positive when
// sampling); here 0 additionally means "off" where the brief of each field says so.
func (p Params) Validate() error {
	var bad []string
	if !finite32(p.Temperature) || p.Temperature < 0 {
		bad = append(bad, fmt.Sprintf("temperature %v: want a finite value >= 0", p.Temperature))
	}
	if p.TopK < 0 {
		bad = append(bad, fmt.Sprintf("top_k %d: want >= 0", p.TopK))
	}
	if !finite32(p.TopP) || p.TopP < 0 || p.TopP > 1 {
		bad = append(bad, fmt.Sprintf("top_p %v: want a value in [0, 1]", p.TopP))
	}
	if !finite32(p.MinP) || p.MinP < 0 || p.MinP > 1 {
		bad = append(bad, fmt.Sprintf("min_p %v: want a value in [0, 1]", p.MinP))
	}
	if !finite32(p.RepetitionPenalty) || p.RepetitionPenalty < 0 {
		bad = append(bad, fmt.Sprintf("repetition_penalty %v: want a finite value >= 0", p.RepetitionPenalty))
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("sample: invalid params: %s", strings.Join(bad, "; "))
}

func (p Params) penaltyOn() bool { return p.RepetitionPenalty != 0 && p.RepetitionPenalty != 1 }
func (p Params) topPOn() bool    { return p.TopP > 0 && p.TopP < 1 }
