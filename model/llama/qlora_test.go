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
// loadWithOracleAdapter loads tiny-brown and the oracle's adapter, with
// gradient buffers, not attached.
func loadWithOracleAdapter(t *testing.T) (*Model, *lora.Adapter) {
	t.Helper()
	dir := testutil.Path("testdata", "oracle", "tiny-brown")
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

func TestQLoRAMatchesDequantizedBase(t *testing.T) {
	load := func() (*Model, *lora.Adapter) { return loadWithOracleAdapter(t) }
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

// TestQLoRABF16Compute: with bnb_4bit_compute_dtype=bfloat16 the NF4
// products round their operands to BF16, so logits, loss and LoRA gradients
// move off the float32-compute values by about BF16's precision and no
// further; the setting survives a save and a reload through config.json.
func TestQLoRABF16Compute(t *testing.T) {
	load := func(bf16 bool) (*Model, *lora.Adapter) {
		m, a := loadWithOracleAdapter(t)
		if err := m.QuantizeNF4(); err != nil {
			t.Fatal(err)
		}
		if bf16 {
			if err := m.SetNF4ComputeDType("bf16"); err != nil {
				t.Fatal(err)
			}
		}
		m.Attach(a)
		return m, a
	}
	b, ba := load(true)
	f, fa := load(false)
	// 40 tokens per sequence: enough rows for the GEMM path (decode-sized
	// products stay float32 by design).
	var ids, targets [][]int
	for s := 0; s < 2; s++ {
		var r []int
		for i := 0; i < 40; i++ {
			r = append(r, (s*7919+i*104729)%b.Config.VocabSize)
		}
		ids, targets = append(ids, r), append(targets, nn.ShiftLabels(r))
	}
	lb, _ := b.Forward(&Step{Caches: []*kvcache.Seq{b.NewCache(), b.NewCache()}, Tokens: ids, AllLogits: true})
	lf, _ := f.Forward(&Step{Caches: []*kvcache.Seq{f.NewCache(), f.NewCache()}, Tokens: ids, AllLogits: true})
	maxL := 0.0
	for _, v := range lf {
		maxL = math.Max(maxL, math.Abs(float64(v)))
	}
	d := testutil.MaxAbsDiff(lb, lf)
	t.Logf("logits: max |bf16 − f32 compute| %.3g (max |logit| %.3g)", d, maxL)
	if d == 0 || d > 0.01*maxL {
		t.Fatalf("BF16-compute logits differ from float32 compute by %.3g (max |logit| %.3g): want a BF16-sized difference", d, maxL)
	}
	sb, n, err := b.LossAndGrad(ids, targets, 78)
	if err != nil {
		t.Fatal(err)
	}
	sf, _, _ := f.LossAndGrad(ids, targets, 78)
	t.Logf("loss: bf16 %.6f, f32 %.6f", sb/float64(n), sf/float64(n))
	if math.Abs(sb-sf)/math.Abs(sf) > 5e-3 {
		t.Fatalf("loss %v with BF16 compute vs %v", sb/float64(n), sf/float64(n))
	}
	for name, m := range ba.Modules {
		r := fa.Modules[name]
		for _, pair := range [][2][]float32{{m.GradA, r.GradA}, {m.GradB, r.GradB}} {
			var dot, nb, nf float64
			for i := range pair[0] {
				dot += float64(pair[0][i]) * float64(pair[1][i])
				nb += float64(pair[0][i]) * float64(pair[0][i])
				nf += float64(pair[1][i]) * float64(pair[1][i])
			}
			if cos := dot / math.Sqrt(nb*nf); !(cos > 0.99) {
				t.Fatalf("%s: gradient cosine %.4f between BF16 and float32 compute", name, cos)
			}
		}
	}

	out := t.TempDir()
	if err := b.Save(out, SaveOptions{KeepNF4: true}); err != nil {
		t.Fatal(err)
	}
	re, err := Load(model.Dir(out))
	if err != nil {
		t.Fatal(err)
	}
	if re.Config.QuantComputeDType != "bfloat16" {
		t.Fatalf("reloaded compute dtype %q, want bfloat16", re.Config.QuantComputeDType)
	}
	for _, l := range re.Layers {
		for _, p := range l.Projections() {
			if p.Linear.Q == nil || !p.Linear.ComputeBF16 {
				t.Fatalf("reloaded %s: NF4 %v, BF16 compute %v", p.Name, p.Linear.Q != nil, p.Linear.ComputeBF16)
			}
		}
	}
}
