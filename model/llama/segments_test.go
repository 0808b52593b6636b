package llama

import (
	"path/filepath"
	"testing"

	"github.com/lorakit/lorakit/internal/testutil"
	"github.com/lorakit/lorakit/kvcache"
	"github.com/lorakit/lorakit/lora"
	"github.com/lorakit/lorakit/model"
)

// TestMixedAdapterBatch: one forward over sequences with different adapters
// (and none) gives each sequence the logits it gets alone with its adapter
// attached — no cross-talk between segments — in prefill and in decode.
func TestMixedAdapterBatch(t *testing.T) {
	dir := testutil.Path("testdata", "oracle")
	m, err := Load(model.Dir(filepath.Join(dir, "micro", "model")))
	if err != nil {
		t.Fatal(err)
	}
	a1, err := lora.Load(filepath.Join(dir, "micro", "adapter"))
	if err != nil {
		t.Fatal(err)
	}
	a2, err := lora.Load(filepath.Join(dir, "micro-rslora", "adapter"))
	if err != nil {
		t.Fatal(err)
	}
	adapters := []*lora.Adapter{a1, a1, nil, a2, a1}
	prompts := [][]int{{1, 2, 3, 4, 5, 6, 7, 8, 9}, {9, 8, 7}, {5, 5, 5, 5}, {100, 3, 17, 250, 42, 42, 1, 2, 3, 4}, {7}}
	V := m.Config.VocabSize
	// Alone, attached.
	want := make([][]float32, len(prompts))
	for i, p := range prompts {
		m.Detach()
		if adapters[i] != nil {
			if err := m.Attach(adapters[i]); err != nil {
				t.Fatal(err)
			}
		}
		c := m.NewCache()
		l1, _ := m.Forward(&Step{Caches: []*kvcache.Seq{c}, Tokens: [][]int{p}})
		l2, _ := m.Forward(&Step{Caches: []*kvcache.Seq{c}, Tokens: [][]int{{11}}})
		want[i] = append(l1, l2...)
	}
	m.Detach()
	caches := make([]*kvcache.Seq, len(prompts))
	for i := range caches {
		caches[i] = m.NewCache()
	}
	l1, err := m.Forward(&Step{Caches: caches, Tokens: prompts, Adapters: adapters})
	if err != nil {
		t.Fatal(err)
	}
	next := make([][]int, len(prompts))
	for i := range next {
		next[i] = []int{11}
	}
	l2, err := m.Forward(&Step{Caches: caches, Tokens: next, Adapters: adapters})
	if err != nil {
		t.Fatal(err)
	}
	for i := range prompts {
		got := append(append([]float32(nil), l1[i*V:(i+1)*V]...), l2[i*V:(i+1)*V]...)
		if msg := testutil.AllClose(got, want[i], 1e-5, 1e-6); msg != "" {
			t.Fatalf("sequence %d: %s", i, msg)
		}
	}
}
