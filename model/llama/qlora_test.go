package llama

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/lorakit/lorakit/internal/testutil"
	"github.com/lorakit/lorakit/kvcache"
	"github.com/lorakit/lorakit/lora"
	"github.com/lorakit/lorakit/model"
	"github.com/lorakit/lorakit/nn"
)

// TestQLoRAMatchesDequantizedBase: with the projections held in NF4, the
// forward, the loss and every LoRA gradient equal those of the same model
// whose weights are the dequantized NF4 values in float32 — the fused kernels
// compute exactly QLoRA's math without materialising the matrices.
func TestQLoRAMatchesDequantizedBase(t *testing.T) {
	dir := testutil.Path("testdata", "oracle", "tiny-brown")
	load := func() (*Model, *lora.Adapter) {
		m, err := Load(model.Dir(filepath.Join(dir, "../../../models/tiny-brown")))
		if err != nil {
			t.Fatal(err)
		}
		a, err := lora.Load(filepath.Join(dir, "adapter"))
		if err != nil {
			t.Fatal(err)
		}
		for _, mod := range a.Modules {
			mod.GradA, mod.GradB = make([]float32, len(mod.A)), make([]float32, len(mod.B))
		}
		return m, a
	}
	q, qa := load()
	if err := q.QuantizeNF4(); err != nil {
		t.Fatal(err)
	}
	ref, ra := load()
	for li, l := range ref.Layers { // the reference: float32 copies of the NF4 values
		for pi, p := range l.Projections() {
			qq := q.Layers[li].Projections()[pi].Linear.Q
			qq.Dequantize(p.Linear.W)
		}
	}
	if fb, qb := ref.WeightBytes(), q.WeightBytes(); float64(qb) > 0.5*float64(fb) {
		t.Fatalf("NF4 model holds %d bytes, float32 %d", qb, fb)
	}
	q.Attach(qa)
	ref.Attach(ra)
	ids := [][]int{{0, 464, 1201, 318, 257, 1332, 286, 262, 3390, 11, 290, 340}, {0, 37, 91, 1003, 77}}
	var targets [][]int
	for _, r := range ids {
		targets = append(targets, nn.ShiftLabels(r))
	}
	lq, _ := q.Forward(&Step{Caches: []*kvcache.Seq{q.NewCache(), q.NewCache()}, Tokens: ids, AllLogits: true})
	lr, _ := ref.Forward(&Step{Caches: []*kvcache.Seq{ref.NewCache(), ref.NewCache()}, Tokens: ids, AllLogits: true})
	if msg := testutil.AllClose(lq, lr, 1e-4, 1e-4); msg != "" {
		t.Fatalf("logits: %s", msg)
	}
	sq, nq, err := q.LossAndGrad(ids, targets, 15)
	if err != nil {
		t.Fatal(err)
	}
	sr, _, _ := ref.LossAndGrad(ids, targets, 15)
	if math.Abs(sq-sr)/float64(nq) > 1e-5 {
		t.Fatalf("loss %v vs %v", sq/float64(nq), sr/float64(nq))
	}
	for name, m := range qa.Modules {
		r := ra.Modules[name]
		for _, pair := range [][2][]float32{{m.GradA, r.GradA}, {m.GradB, r.GradB}} {
			maxW := 0.0
			for _, v := range pair[1] {
				maxW = math.Max(maxW, math.Abs(float64(v)))
			}
			if d := testutil.MaxAbsDiff(pair[0], pair[1]); d > 1e-3*maxW+1e-9 {
				t.Fatalf("%s: gradient differs by %.3g (max %.3g)", name, d, maxW)
			}
		}
	}
}
