package engine

import (
	"math/rand/v2"

	"github.com/lorakit/lorakit/lora"
)

// RandomAdapter makes an adapter for base whose B matrices are random
// normals with standard deviation std (lora.New leaves B at zero, which
// would make every adapter the base model): test and benchmark adapters
// that each change the output in their own way.
func RandomAdapter(base lora.Shape, rank int, targets []string, seed uint64, std float64) (*lora.Adapter, error) {
	cfg := lora.Config{PeftType: "LORA", TaskType: "CAUSAL_LM", R: rank, Alpha: float64(2 * rank), TargetModules: targets}
	a, err := lora.New(cfg, base, seed)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 0xb0b))
	for _, name := range a.Names() {
		m := a.Modules[name]
		for i := range m.B {
			m.B[i] = float32(rng.NormFloat64() * std)
		}
	}
	return a, nil
}
