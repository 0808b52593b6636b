// Package sched holds learning-rate schedules with Hugging Face semantics
// (transformers.get_scheduler): the multiplier at optimizer step k (0-based)
// is lambda(k), so with warmup the first update uses lr 0, as HF Trainer does.
package sched

import (
	"fmt"
	"math"
)

// Kind names a schedule.
type Kind string

const (
	Constant Kind = "constant"
	Linear   Kind = "linear"
	Cosine   Kind = "cosine"
)

// Schedule maps an optimizer step to a learning rate.
type Schedule struct {
	Kind   Kind
	LR     float64
	Warmup int // warmup steps
	Total  int // total optimizer steps
}

// New validates a schedule.
func New(kind string, lr float64, warmup, total int) (Schedule, error) {
	k := Kind(kind)
	switch k {
	case Constant, Linear, Cosine:
	default:
		return Schedule{}, fmt.Errorf("schedule %q: want constant, linear or cosine", kind)
	}
	if !(lr > 0) || math.IsInf(lr, 0) {
		return Schedule{}, fmt.Errorf("learning rate %v must be positive", lr)
	}
	if warmup < 0 || total <= 0 {
		return Schedule{}, fmt.Errorf("warmup %d / total %d steps out of range", warmup, total)
	}
	return Schedule{Kind: k, LR: lr, Warmup: warmup, Total: total}, nil
}

// At is the learning rate of optimizer step k (0-based).
func (s Schedule) At(k int) float64 { return s.LR * s.lambda(k) }

func (s Schedule) lambda(k int) float64 {
	if k < s.Warmup {
		return float64(k) / float64(max(1, s.Warmup))
	}
	switch s.Kind {
	case Linear: // get_linear_schedule_with_warmup
		return math.Max(0, float64(s.Total-k)/float64(max(1, s.Total-s.Warmup)))
	case Cosine: // get_cosine_schedule_with_warmup, num_cycles 0.5
		progress := float64(k-s.Warmup) / float64(max(1, s.Total-s.Warmup))
		return math.Max(0, 0.5*(1+math.Cos(math.Pi*progress)))
	}
	return 1 // get_constant_schedule_with_warmup
}

// WarmupSteps turns --warmup into steps: a value below 1 is a ratio of the
// total steps (HF warmup_ratio, rounded up as HF's get_warmup_steps does),
// 1 or more is a step count (HF warmup_steps).
func WarmupSteps(warmup float64, total int) (int, error) {
	switch {
	case warmup < 0 || math.IsNaN(warmup) || math.IsInf(warmup, 0):
		return 0, fmt.Errorf("warmup %v must be >= 0", warmup)
	case warmup < 1:
		return int(math.Ceil(warmup * float64(total))), nil
	}
	return int(warmup), nil
}
