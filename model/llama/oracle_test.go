package llama

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/lorakit/lorakit/format/safetensors"
	"github.com/lorakit/lorakit/internal/testutil"
	"github.com/lorakit/lorakit/kvcache"
	"github.com/lorakit/lorakit/model"
	"github.com/lorakit/lorakit/nn"
)

// oracleCase is one folder of testdata/oracle (PyTorch golden vectors); the
// test discovers shapes and settings from its files, never hard-codes them.
type oracleCase struct {
	dir      string
	ModelDir string `json:"model_dir"`
}

func oracleCases(t *testing.T) []oracleCase {
	t.Helper()
	paths, _ := filepath.Glob(testutil.Path("testdata", "oracle", "*", "case.json"))
	if len(paths) == 0 {
		t.Fatal("no oracle cases under testdata/oracle")
	}
	var cases []oracleCase
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var c oracleCase
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		c.dir = filepath.Dir(p)
		cases = append(cases, c)
	}
	return cases
}

func mustOpen(t *testing.T, path string) *safetensors.File {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func f32(t *testing.T, f *safetensors.File, name string) ([]float32, []int) {
	t.Helper()
	tt, ok := f.Tensor(name)
	if !ok {
		t.Fatalf("%s: no tensor %q", f.Path, name)
	}
	v, err := tt.Float32()
	if err != nil {
		t.Fatal(err)
	}
	return v, tt.Shape
}

func i64rows(t *testing.T, f *safetensors.File, name string) [][]int {
	t.Helper()
	tt, ok := f.Tensor(name)
	if !ok {
		t.Fatalf("%s: no tensor %q", f.Path, name)
	}
	v, err := tt.Int64()
	if err != nil {
		t.Fatal(err)
	}
	B, T := tt.Shape[0], tt.Shape[1]
	rows := make([][]int, B)
	for b := range rows {
		for j := 0; j < T; j++ {
			rows[b] = append(rows[b], int(v[b*T+j]))
		}
	}
	return rows
}

// TestOracleBaseLogits checks the forward pass against PyTorch's logits and
// loss for every oracle case, within the README's tolerances
// (allclose rtol 1e-4, atol 1e-5; loss within 1e-5).
func TestOracleBaseLogits(t *testing.T) {
	for _, oc := range oracleCases(t) {
		t.Run(filepath.Base(oc.dir), func(t *testing.T) {
			m, err := Load(model.Dir(filepath.Join(oc.dir, oc.ModelDir)))
			if err != nil {
				t.Fatal(err)
			}
			in := mustOpen(t, filepath.Join(oc.dir, "inputs.safetensors"))
			exp := mustOpen(t, filepath.Join(oc.dir, "expected.safetensors"))
			ids := i64rows(t, in, "input_ids")
			labels := i64rows(t, in, "labels")
			want, shape := f32(t, exp, "logits_base")
			caches := make([]*kvcache.Seq, len(ids))
			for i := range caches {
				caches[i] = m.NewCache()
			}
			got, err := m.Forward(&Step{Caches: caches, Tokens: ids, AllLogits: true})
			if err != nil {
				t.Fatal(err)
			}
			if msg := testutil.AllClose(got, want, 1e-4, 1e-5); msg != "" {
				t.Fatalf("logits_base %v: %s (max |diff| %.3g)", shape, msg, testutil.MaxAbsDiff(got, want))
			}
			t.Logf("logits_base %v: max |diff| %.3g", shape, testutil.MaxAbsDiff(got, want))
			var targets []int
			for _, row := range labels {
				targets = append(targets, nn.ShiftLabels(row)...)
			}
			sum, n := nn.CrossEntropy(got, targets, m.Config.VocabSize)
			wantLoss, _ := f32(t, exp, "loss_base")
			if d := sum/float64(n) - float64(wantLoss[0]); d > 1e-5 || d < -1e-5 {
				t.Fatalf("loss_base %.7f, want %.7f", sum/float64(n), wantLoss[0])
			}
		})
	}
}

// TestIncrementalDecodeMatchesFullForward checks the KV-cache path: feeding a
// sequence in chunks gives the logits of the full forward at each position.
func TestIncrementalDecodeMatchesFullForward(t *testing.T) {
	oc := oracleCases(t)[0]
	m, err := Load(model.Dir(filepath.Join(oc.dir, oc.ModelDir)))
	if err != nil {
		t.Fatal(err)
	}
	ids := i64rows(t, mustOpen(t, filepath.Join(oc.dir, "inputs.safetensors")), "input_ids")[0]
	full, err := m.Forward(&Step{Caches: []*kvcache.Seq{m.NewCache()}, Tokens: [][]int{ids}, AllLogits: true})
	if err != nil {
		t.Fatal(err)
	}
	V := m.Config.VocabSize
	cache := m.NewCache()
	for _, chunk := range [][2]int{{0, 7}, {7, 8}, {8, 20}, {20, len(ids)}} {
		got, err := m.Forward(&Step{Caches: []*kvcache.Seq{cache}, Tokens: [][]int{ids[chunk[0]:chunk[1]]}})
		if err != nil {
			t.Fatal(err)
		}
		want := full[(chunk[1]-1)*V : chunk[1]*V]
		if msg := testutil.AllClose(got, want, 1e-5, 1e-5); msg != "" {
			t.Fatalf("chunk %v: %s", chunk, msg)
		}
	}
}
