package engine

import (
	"github.com/lorakit/lorakit/kvcache"
	"github.com/lorakit/lorakit/model/llama"
	"github.com/lorakit/lorakit/tensor"
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
	Layers       int          // KV cache layers
	KVDim        int          // values of K (and of V) per position and layer
	KVType       tensor.DType // the cache's element type ("" = F32)
	Vocab        int          // logits per sequence
	MaxPositions int          // the model's context window; 0 = unknown
}

// SpecOf reads the Spec of a Llama-family model. The KV cache takes the
// type the weights are held in (KVType), like vLLM's kv_cache_dtype="auto".
func SpecOf(m *llama.Model) Spec {
	return Spec{Layers: len(m.Layers), KVDim: m.Config.KVDim(), KVType: KVType(m), Vocab: m.Config.VocabSize, MaxPositions: m.Config.MaxPositions}
}

// KVType is the element type of a serving KV cache for m: BF16 or F16 when
// m holds weights in that type (--dtype bf16, or a 16-bit checkpoint; an NF4
// base's embedding and lm_head count), else F32. vLLM's kv_cache_dtype
// "auto" and llama.cpp's F16 cache do the same: the cache then takes half
// the memory, which at serving batch sizes is more than the weights (64
// SmolLM2-135M sequences of 144 positions: 424 MB in float32). Keys and
// values are rounded once as they are stored; attention widens them back
// exactly. Training and evaluation keep float32 caches (llama.NewCache).
func KVType(m *llama.Model) tensor.DType {
	if dt := m.WeightDType(); dt.Is16() {
		return dt
	}
	return tensor.F32
}

// kvType is s.KVType with "" read as F32.
func (s Spec) kvType() tensor.DType {
	if s.KVType == "" {
		return tensor.F32
	}
	return s.KVType
}

// KVBytesPerToken is the cache memory one position takes (K and V).
func (s Spec) KVBytesPerToken() int64 {
	return kvcache.BytesPerPosition(s.kvType(), s.Layers, s.KVDim)
}

// newCache is a running sequence's cache: room for its whole reservation
// (prompt + max_tokens), allocated once at admission (see kvcache.NewFixed).
func (s Spec) newCache(positions int) *kvcache.Seq {
	return kvcache.NewFixed(s.kvType(), s.Layers, s.KVDim, positions)
}
