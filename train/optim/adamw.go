// Package optim holds the optimizer of LoRA training: AdamW exactly as
// torch.optim.AdamW (decoupled weight decay) computes it in float32.
package optim

import (
	"fmt"
	"math"
)

// AdamW keeps the first and second moments of every parameter tensor.
type AdamW struct {
	Beta1, Beta2 float64
	Eps          float64
	WeightDecay  float64
	Step         int         // updates done so far
	M, V         [][]float32 // moments, one slice per parameter tensor
}

// NewAdamW makes an optimizer for parameter tensors of the given sizes.
func NewAdamW(sizes []int, beta1, beta2, eps, weightDecay float64) *AdamW {
	o := &AdamW{Beta1: beta1, Beta2: beta2, Eps: eps, WeightDecay: weightDecay}
	for _, n := range sizes {
		o.M = append(o.M, make([]float32, n))
		o.V = append(o.V, make([]float32, n))
	}
	return o
}

// Update applies one step with learning rate lr to params from grads
// (torch 1.13 _single_tensor_adamw, in float32 with its operation order):
//
//	p  *= 1 − lr·wd
//	m   = m·β1 + (1−β1)·g
//	v   = v·β2 + (1−β2)·g·g
//	p  −= lr/(1−β1^t) · m / (√v / √(1−β2^t) + eps)
func (o *AdamW) Update(params, grads [][]float32, lr float64) error {
	if len(params) != len(o.M) || len(grads) != len(o.M) {
		return fmt.Errorf("adamw: %d params and %d grads for %d moment tensors", len(params), len(grads), len(o.M))
	}
	o.Step++
	t := float64(o.Step)
	stepSize := lr / (1 - math.Pow(o.Beta1, t))
	bc2sqrt := float32(math.Sqrt(1 - math.Pow(o.Beta2, t)))
	decay := float32(1 - lr*o.WeightDecay)
	b1, b2 := float32(o.Beta1), float32(o.Beta2)
	a1, a2 := float32(1-o.Beta1), float32(1-o.Beta2)
	eps := float32(o.Eps)
	negStep := float32(-stepSize)
	for k, p := range params {
		g, m, v := grads[k], o.M[k], o.V[k]
		if len(g) != len(p) || len(m) != len(p) {
			return fmt.Errorf("adamw: tensor %d has %d params, %d grads, %d moments", k, len(p), len(g), len(m))
		}
		for i := range p {
			if o.WeightDecay != 0 {
				p[i] *= decay
			}
			m[i] = m[i]*b1 + a1*g[i]
			v[i] = v[i]*b2 + a2*g[i]*g[i]
			denom := float32(math.Sqrt(float64(v[i])))/bc2sqrt + eps
			p[i] += negStep * (m[i] / denom)
		}
	}
	return nil
}
