package engine

import (
	"fmt"
	"strings"

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
	HeadDim      int          // values per attention head; 0 = unknown
	KVType       tensor.DType // the cache's element type ("" = F32): F32, BF16, F16 or kvcache.Q8_0
	Vocab        int          // logits per sequence
	MaxPositions int          // the model's context window; 0 = unknown
}

// SpecOf reads the Spec of a Llama-family model. The KV cache takes the
// type the weights are held in (KVType), like vLLM's kv_cache_dtype="auto";
// a caller may set another (see ParseKVCacheDType) before engine.New.
func SpecOf(m *llama.Model) Spec {
	return Spec{Layers: len(m.Layers), KVDim: m.Config.KVDim(), HeadDim: m.Config.HeadDim, KVType: KVType(m), Vocab: m.Config.VocabSize, MaxPositions: m.Config.MaxPositions}
}

// ParseKVCacheDType reads a --kv-cache-dtype value (vLLM's flag, llama.cpp's
// type names): "auto" (or "") is KVType(m), the weights' 16-bit type or
// F32; "f32", "bf16" and "f16" are those types; "q8_0" is llama.cpp's 8-bit
// cache (kvcache.Q8_0: 1.0625 bytes a value, against 2 for BF16 or F16 and
// 4 for F32), which needs m's head dim to be a multiple of 32.
func ParseKVCacheDType(name string, m *llama.Model) (tensor.DType, error) {
	var dt tensor.DType
	switch strings.ToLower(name) {
	case "", "auto":
		return KVType(m), nil
	case "f32", "float32":
		dt = tensor.F32
	case "bf16", "bfloat16":
		dt = tensor.BF16
	case "f16", "float16", "half":
		dt = tensor.F16
	case "q8_0":
		dt = kvcache.Q8_0
	default:
		return "", fmt.Errorf("KV cache dtype %q: want auto, f32, bf16, f16 or q8_0", name)
	}
	if err := checkKVType(dt, m.Config.KVDim(), m.Config.HeadDim); err != nil {
		return "", err
	}
	return dt, nil
}

// checkKVType reports whether a cache of type dt can serve a model of kv
// width kvDim and head dim headDim (0 = unknown).
func checkKVType(dt tensor.DType, kvDim, headDim int) error {
	switch {
	case dt == tensor.F32 || dt.Is16():
		return nil
	case dt == kvcache.Q8_0:
		if err := kvcache.CheckQ8(kvDim, headDim); err != nil {
			return fmt.Errorf("KV cache dtype q8_0: %w", err)
		}
		return nil
	}
	return fmt.Errorf("KV cache type %q (want F32, BF16, F16 or Q8_0)", dt)
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

// KVBytesPerToken is the cache memory one position takes (K and V): for
// Q8_0, 34 bytes per 32 values.
func (s Spec) KVBytesPerToken() int64 {
	return kvcache.BytesPerPosition(s.kvType(), s.Layers, s.KVDim)
}

// newCache is a running sequence's cache: room for its whole reservation
// (prompt + max_tokens), allocated once at admission (see kvcache.NewFixed).
func (s Spec) newCache(positions int) *kvcache.Seq {
	return kvcache.NewFixed(s.kvType(), s.Layers, s.KVDim, positions)
}
