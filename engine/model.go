package engine

import (
	"github.com/lorakit/lorakit/model/llama"
)

// Model is what the scheduler needs of a model: one forward over a batch of
// sequences. *llama.Model satisfies it; scheduler tests use a fake. A Model
// is called from the scheduler's goroutine only (llama.Model reuses scratch
// buffers and the kernels share one worker pool), so it need not be safe for
// concurrent use.
type Model interface {
	Forward(st *llama.Step) ([]float32, error)
}

// Spec is what the scheduler plans with: the KV cache's shape, the
// vocabulary the logits span and the context window.
type Spec struct {
	Layers       int // KV cache layers
	KVDim        int // floats of K (and of V) per position and layer
	Vocab        int // logits per sequence
	MaxPositions int // the model's context window; 0 = unknown
}

// SpecOf reads the Spec of a Llama-family model.
func SpecOf(m *llama.Model) Spec {
	return Spec{Layers: len(m.Layers), KVDim: m.Config.KVDim(), Vocab: m.Config.VocabSize, MaxPositions: m.Config.MaxPositions}
}

// KVBytesPerToken is the cache memory one position takes (K and V, float32).
func (s Spec) KVBytesPerToken() int64 { return int64(s.Layers) * int64(s.KVDim) * 2 * 4 }
