package llama

import (
	"testing"
	"unsafe"

	"github.com/lorakit/lorakit/kvcache"
)

// TestReserveCoversServingSteps: after Reserve(tokens, seqs), inference
// steps within those limits (prefill chunks, decode batches, a mix) run in
// the reserved buffers: not one of them is reallocated. A buffer Reserve
// forgot, or sized too small, moves.
func TestReserveCoversServingSteps(t *testing.T) {
	for _, qkNorm := range []bool{false, true} {
		cfg := tiedConfig(t)
		cfg.QKNorm = qkNorm
		m := NewRandom(cfg, 9)
		const tokens, seqs = 40, 4
		m.Reserve(tokens, seqs)
		sc := &m.scratch
		a := &sc.layer
		bufs := map[string]*[]float32{
			"x": &sc.x, "kv": &sc.kv, "tmp": &sc.tmp, "headXN": &sc.headXN, "logits": &sc.logits,
			"XNorm1": &a.XNorm1, "Rstd1": &a.Rstd1, "Q": &a.Q, "AttnOut": &a.AttnOut,
			"XNorm2": &a.XNorm2, "Rstd2": &a.Rstd2, "Gate": &a.Gate, "Up": &a.Up,
		}
		if qkNorm {
			bufs["QRstd"], bufs["KRstd"] = &a.QRstd, &a.KRstd
		}
		at := map[string]unsafe.Pointer{}
		for name, b := range bufs {
			if cap(*b) == 0 {
				t.Fatalf("QKNorm %v: Reserve left %s empty", qkNorm, name)
			}
			at[name] = unsafe.Pointer(unsafe.SliceData(*b))
		}
		caches := make([]*kvcache.Seq, seqs)
		for i := range caches {
			caches[i] = kvcache.New(len(m.Layers), cfg.KVDim())
		}
		ids := func(n int) []int {
			s := make([]int, n)
			for i := range s {
				s[i] = (7*i + n) % cfg.VocabSize
			}
			return s
		}
		steps := [][][]int{
			{ids(tokens)},                             // one prompt, the whole budget
			{ids(1), ids(13), ids(13), ids(13)},       // a decode token and three prompt chunks
			{ids(1), ids(1), ids(1), ids(1)},          // a decode batch
			{ids(1), ids(1), ids(1), ids(tokens - 3)}, // decode plus a long chunk
		}
		for si, toks := range steps {
			st := &Step{Caches: caches[:len(toks)], Tokens: toks}
			if _, err := m.Forward(st); err != nil {
				t.Fatal(err)
			}
			for name, b := range bufs {
				if p := unsafe.Pointer(unsafe.SliceData(*b)); p != at[name] {
					t.Errorf("QKNorm %v step %d: %s was reallocated (capacity %d)", qkNorm, si, name, cap(*b))
					at[name] = p
				}
			}
		}
	}
}
