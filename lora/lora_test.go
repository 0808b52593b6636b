package lora

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/lorakit/lorakit/format/safetensors"
	"github.com/lorakit/lorakit/internal/testutil"
)

func oracleAdapters(t *testing.T) []string {
	dirs, _ := filepath.Glob(testutil.Path("testdata", "oracle", "*", "adapter*"))
	if len(dirs) == 0 {
		t.Fatal("no oracle adapters")
	}
	return dirs
}

func keys(t *testing.T, path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// TestSaveMatchesPEFTLayout: reading each oracle (PEFT-written) adapter and
// writing it back gives exactly PEFT's tensor names, shapes, dtypes, values
// and config keys.
func TestSaveMatchesPEFTLayout(t *testing.T) {
	for _, dir := range oracleAdapters(t) {
		t.Run(filepath.Base(filepath.Dir(dir))+"/"+filepath.Base(dir), func(t *testing.T) {
			a, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			out := t.TempDir()
			if err := a.Save(out); err != nil {
				t.Fatal(err)
			}
			want, err := safetensors.Open(filepath.Join(dir, "adapter_model.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			defer want.Close()
			got, err := safetensors.Open(filepath.Join(out, "adapter_model.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			defer got.Close()
			wn, gn := want.Names(), got.Names()
			sort.Strings(wn)
			sort.Strings(gn)
			if strings.Join(wn, ",") != strings.Join(gn, ",") {
				t.Fatalf("tensor names differ:\n got %v\nwant %v", gn, wn)
			}
			for _, n := range wn {
				w, _ := want.Tensor(n)
				g, _ := got.Tensor(n)
				if w.DType != g.DType || !equalInts(w.Shape, g.Shape) || string(w.Data) != string(g.Data) {
					t.Fatalf("%s: got %s %v, want %s %v (or data differs)", n, g.DType, g.Shape, w.DType, w.Shape)
				}
			}
			if k1, k2 := keys(t, filepath.Join(dir, "adapter_config.json")), keys(t, filepath.Join(out, "adapter_config.json")); strings.Join(k1, ",") != strings.Join(k2, ",") {
				t.Fatalf("config keys differ:\n got %v\nwant %v", k2, k1)
			}
			b, _ := os.ReadFile(filepath.Join(out, "adapter_config.json"))
			c, err := ParseConfig(b)
			if err != nil {
				t.Fatal(err)
			}
			if c.R != a.Config.R || c.Alpha != a.Config.Alpha || c.UseRSLoRA != a.Config.UseRSLoRA || c.PeftType != "LORA" || c.TaskType != "CAUSAL_LM" {
				t.Fatalf("config did not round-trip: %+v", c)
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestParseConfigRejects(t *testing.T) {
	base := `"peft_type":"LORA","task_type":"CAUSAL_LM","r":8,"lora_alpha":16,"target_modules":["q_proj"]`
	for _, tc := range []struct{ name, json, want string }{
		{"dora", `{` + base + `,"use_dora":true}`, "use_dora"},
		{"fan_in_fan_out", `{` + base + `,"fan_in_fan_out":true}`, "fan_in_fan_out"},
		{"modules_to_save", `{` + base + `,"modules_to_save":["lm_head"]}`, "modules_to_save"},
		{"bias", `{` + base + `,"bias":"all"}`, "bias"},
		{"prefix tuning", `{"peft_type":"PREFIX_TUNING","r":8,"lora_alpha":16,"target_modules":["q_proj"]}`, "peft_type"},
		{"zero rank", `{"peft_type":"LORA","r":0,"lora_alpha":16,"target_modules":["q_proj"]}`, "r = 0"},
		{"regex targets", `{"peft_type":"LORA","r":8,"lora_alpha":16,"target_modules":".*proj"}`, "regex"},
		{"unknown module", `{"peft_type":"LORA","r":8,"lora_alpha":16,"target_modules":["c_attn"]}`, "c_attn"},
		{"seq cls", `{` + base + `,"task_type":"SEQ_CLS"}`, "task_type"},
		{"not json", `{"peft_type":`, "adapter_config.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.json))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestRankAlphaPatterns(t *testing.T) {
	c, err := ParseConfig([]byte(`{"peft_type":"LORA","r":8,"lora_alpha":16,"target_modules":"all-linear",
		"rank_pattern":{"layers.1.self_attn.q_proj":4},"alpha_pattern":{"down_proj":64},"use_rslora":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if r, a := c.RankAlpha("model.layers.1.self_attn.q_proj"); r != 4 || a != 16 {
		t.Fatalf("q_proj layer 1: r=%d alpha=%v", r, a)
	}
	if r, a := c.RankAlpha("model.layers.11.self_attn.q_proj"); r != 8 || a != 16 {
		t.Fatalf("layer 11 must not match the layer-1 pattern: r=%d alpha=%v", r, a)
	}
	if r, a := c.RankAlpha("model.layers.0.mlp.down_proj"); r != 8 || a != 64 {
		t.Fatalf("down_proj: r=%d alpha=%v", r, a)
	}
	if s := c.Scale(16, 16); math.Abs(float64(s)-4) > 1e-6 {
		t.Fatalf("rsLoRA scale %v, want alpha/sqrt(r) = 4", s)
	}
	if len(c.Targets()) != 7 {
		t.Fatalf("all-linear expands to %v", c.Targets())
	}
}

// fakeBase is a two-layer model shape for New/Check tests.
type fakeBase struct{ d, f int }

func (b fakeBase) Linear(module string) (int, int, bool) {
	for _, n := range b.LinearModules() {
		if n == module {
			switch {
			case strings.HasSuffix(n, "gate_proj"), strings.HasSuffix(n, "up_proj"):
				return b.f, b.d, true
			case strings.HasSuffix(n, "down_proj"):
				return b.d, b.f, true
			}
			return b.d, b.d, true
		}
	}
	return 0, 0, false
}

func (b fakeBase) LinearModules() []string {
	var ns []string
	for i := 0; i < 2; i++ {
		for _, p := range []string{"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"} {
			ns = append(ns, "model.layers."+string(rune('0'+i))+"."+p)
		}
	}
	return ns
}

func TestNewInitialisation(t *testing.T) {
	c := Config{PeftType: "LORA", R: 4, Alpha: 8, TargetModules: Attention}
	a, err := New(c, fakeBase{64, 96}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Modules) != 8 {
		t.Fatalf("%d modules, want 8 (q,k,v,o × 2 layers)", len(a.Modules))
	}
	bound := float32(1 / math.Sqrt(64))
	for _, m := range a.Modules {
		for _, v := range m.B {
			if v != 0 {
				t.Fatal("B must start at zero")
			}
		}
		for _, v := range m.A {
			if v < -bound || v > bound {
				t.Fatalf("A value %v outside ±1/sqrt(in)", v)
			}
		}
	}
	c.R = 65
	if _, err := New(c, fakeBase{64, 96}, 1); err == nil || !strings.Contains(err.Error(), "larger than the layer") {
		t.Fatalf("rank larger than the layer: err = %v", err)
	}
}

func TestCheckAgainstOtherBase(t *testing.T) {
	a, err := Load(testutil.Path("testdata", "oracle", "micro", "adapter"))
	if err != nil {
		t.Fatal(err)
	}
	err = a.Check(fakeBase{32, 96})
	if err == nil || !strings.Contains(err.Error(), "lora_") || !strings.Contains(err.Error(), "another base") {
		t.Fatalf("err = %v, want a shape mismatch naming the tensor", err)
	}
}

// TestCombineIsSumOfDeltas: the combined adapter's merged update equals the
// weighted sum of the parts' updates.
func TestCombineIsSumOfDeltas(t *testing.T) {
	a1, _ := Load(testutil.Path("testdata", "oracle", "micro", "adapter"))
	a2, _ := Load(testutil.Path("testdata", "oracle", "micro-rslora", "adapter"))
	c, err := Combine([]*Adapter{a1, a2}, []float64{0.5, 2})
	if err != nil {
		t.Fatal(err)
	}
	for name, m := range c.Modules {
		got := make([]float32, m.Out*m.In)
		m.Delta(got, 1)
		want := make([]float32, m.Out*m.In)
		a1.Modules[name].Delta(want, 0.5)
		a2.Modules[name].Delta(want, 2)
		if msg := testutil.AllClose(got, want, 1e-5, 1e-7); msg != "" {
			t.Fatalf("%s: %s", name, msg)
		}
	}
	// It saves and loads back as a valid PEFT adapter with the same modules.
	dir := t.TempDir()
	if err := c.Save(dir); err != nil {
		t.Fatal(err)
	}
	back, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for name, m := range back.Modules {
		if m.Scale != 1 || m.R != c.Modules[name].R {
			t.Fatalf("%s: scale %v rank %d after reload", name, m.Scale, m.R)
		}
	}
}

// FuzzParseConfig: any bytes give a config or an error, never a panic; an
// accepted config renders back to one that parses to the same settings.
func FuzzParseConfig(f *testing.F) {
	for _, p := range []string{"micro/adapter", "micro-rslora/adapter", "tiny-brown/adapter"} {
		if b, err := os.ReadFile(filepath.Join("..", "testdata", "oracle", p, "adapter_config.json")); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"peft_type":"LORA","r":4,"lora_alpha":8,"target_modules":"all-linear","layers_to_transform":1}`))
	f.Add([]byte(`{"peft_type":"LORA","r":4,"lora_alpha":8,"target_modules":["q_proj"],"rank_pattern":{"(":2}}`))
	f.Add([]byte(`{"peft_type":"LORA","r":-1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			return
		}
		b, err := c.JSON()
		if err != nil {
			t.Fatal(err)
		}
		c2, err := ParseConfig(b)
		if err != nil {
			t.Fatalf("rendered config does not parse: %v\n%s", err, b)
		}
		if c2.R != c.R || c2.Alpha != c.Alpha || len(c2.Targets()) != len(c.Targets()) {
			t.Fatalf("round trip changed the config: %+v vs %+v", c, c2)
		}
	})
}
