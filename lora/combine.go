package lora

import (
	"fmt"
	"math"
)

// Combine makes one adapter whose update is Σ wᵢ·ΔWᵢ of the given adapters
// (weights default to 1), by concatenating ranks: A = [A₁; A₂; …],
// B = [w₁s₁B₁/s, w₂s₂B₂/s, …], which is exact (PEFT's add_weighted_adapter
// with combination_type "cat"). The result's scale is 1 (alpha = r) so every
// module's own scale is folded into B.
func Combine(as []*Adapter, weights []float64) (*Adapter, error) {
	if len(as) == 0 {
		return nil, fmt.Errorf("combine: no adapters")
	}
	if weights == nil {
		weights = make([]float64, len(as))
		for i := range weights {
			weights[i] = 1
		}
	}
	if len(weights) != len(as) {
		return nil, fmt.Errorf("combine: %d weights for %d adapters", len(weights), len(as))
	}
	type part struct {
		m *Module
		w float64
	}
	parts := map[string][]part{}
	for i, a := range as {
		for name, m := range a.Modules {
			parts[name] = append(parts[name], part{m, weights[i]})
		}
	}
	out := &Adapter{Modules: map[string]*Module{}}
	maxR := 0
	targets := map[string]bool{}
	for name, ps := range parts {
		in, outDim := ps[0].m.In, ps[0].m.Out
		r := 0
		for _, p := range ps {
			if p.m.In != in || p.m.Out != outDim {
				return nil, fmt.Errorf("combine: module %s is %d×%d in one adapter and %d×%d in another", name, outDim, in, p.m.Out, p.m.In)
			}
			r += p.m.R
		}
		c := &Module{Name: name, R: r, In: in, Out: outDim, A: make([]float32, r*in), B: make([]float32, outDim*r), Scale: 1}
		off := 0
		for _, p := range ps {
			copy(c.A[off*in:], p.m.A)
			f := float32(p.w) * p.m.Scale
			for o := 0; o < outDim; o++ {
				for k := 0; k < p.m.R; k++ {
					c.B[o*r+off+k] = f * p.m.B[o*p.m.R+k]
				}
			}
			off += p.m.R
		}
		out.Modules[name] = c
		maxR = max(maxR, r)
		targets[name[lastDot(name)+1:]] = true
	}
	// A config whose rank_pattern gives every module its concatenated rank
	// and whose alpha equals the rank, so the PEFT scale is exactly 1.
	cfg := as[0].Config
	cfg.R, cfg.Alpha, cfg.UseRSLoRA = maxR, float64(maxR), false
	cfg.RankPattern, cfg.AlphaPattern = map[string]int{}, map[string]float64{}
	for name, m := range out.Modules {
		if m.R != maxR {
			cfg.RankPattern[name] = m.R
			cfg.AlphaPattern[name] = float64(m.R)
		}
	}
	cfg.TargetModules = cfg.TargetModules[:0:0]
	for t := range targets {
		cfg.TargetModules = append(cfg.TargetModules, t)
	}
	cfg.LayersToTransform = nil
	out.Config = cfg
	for _, m := range out.Modules {
		if math.Abs(float64(cfg.Scale(m.R, float64(m.R)))-1) > 1e-7 {
			return nil, fmt.Errorf("combine: internal scale error")
		}
	}
	return out, nil
}

func lastDot(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '.' {
			return i
		}
	}
	return -1
}
