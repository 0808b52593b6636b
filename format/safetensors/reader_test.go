package safetensors

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/lorakit/lorakit/internal/testutil"
)

var (
	tinyBrown    = testutil.Path("models", "tiny-brown", "model.safetensors")
	microInputs  = testutil.Path("testdata", "oracle", "micro", "inputs.safetensors")
	tinyExpected = testutil.Path("testdata", "oracle", "tiny-brown", "expected.safetensors")
)

func TestOpenTinyBrown(t *testing.T) {
	f, err := Open(tinyBrown)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !f.mapped {
		t.Error("file was read, not mapped")
	}
	names := f.Names()
	if len(names) != 56 {
		t.Fatalf("%d tensors, want 56", len(names))
	}
	if f.Metadata["format"] != "pt" {
		t.Errorf("metadata %v, want format=pt", f.Metadata)
	}
	emb, ok := f.Tensor("model.embed_tokens.weight")
	if !ok {
		t.Fatal("no model.embed_tokens.weight")
	}
	if emb.DType != "F32" || !reflect.DeepEqual(emb.Shape, []int{4096, 256}) || len(emb.Data) != 4096*256*4 {
		t.Fatalf("embed_tokens: %s %v %d bytes", emb.DType, emb.Shape, len(emb.Data))
	}
	if names[0] != "model.embed_tokens.weight" {
		t.Errorf("first tensor by offset %q", names[0])
	}
	var total int
	for _, n := range names {
		tt, _ := f.Tensor(n)
		if tt.DType != "F32" {
			t.Errorf("%s: dtype %s", n, tt.DType)
		}
		total += len(tt.Data)
	}
	st, _ := os.Stat(tinyBrown)
	if int64(total) >= st.Size() || st.Size()-int64(total) > 8+1<<16 {
		t.Errorf("tensors cover %d of %d bytes", total, st.Size())
	}
	v, err := emb.Float32()
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != 4096*256 {
		t.Fatalf("%d floats", len(v))
	}
	for _, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			t.Fatal("non-finite weight")
		}
	}

	// Parse of the same bytes gives the same tensors.
	b, err := os.ReadFile(tinyBrown)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse("embedded", b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p.Names(), names) {
		t.Error("Parse and Open disagree on names")
	}
	pe, _ := p.Tensor("model.embed_tokens.weight")
	if string(pe.Data) != string(emb.Data) {
		t.Error("Parse and Open disagree on data")
	}

	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, ok := f.Tensor("model.embed_tokens.weight"); ok {
		t.Error("Tensor after Close")
	}
}

func TestOpenInputsI64(t *testing.T) {
	f, err := Open(microInputs)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := []string{"attention_mask", "input_ids", "labels", "position_ids"}
	if got := f.Names(); !reflect.DeepEqual(got, want) {
		t.Fatalf("names %v, want %v", got, want)
	}
	for _, n := range want {
		tt, _ := f.Tensor(n)
		if tt.DType != "I64" || !reflect.DeepEqual(tt.Shape, []int{2, 24}) {
			t.Fatalf("%s: %s %v", n, tt.DType, tt.Shape)
		}
	}
	pos, _ := f.Tensor("position_ids")
	p, err := pos.Int64()
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range p {
		if v != int64(i%24) {
			t.Fatalf("position_ids[%d] = %d", i, v)
		}
	}
	lab, _ := f.Tensor("labels")
	l, _ := lab.Int64()
	for i := 0; i < 5; i++ {
		if l[i] != -100 || l[24+i] != -100 {
			t.Fatalf("labels row starts %v", l[:5])
		}
	}
	if _, err := lab.Float32(); err == nil {
		t.Error("Float32 of an I64 tensor succeeded")
	} else {
		wantErr(t, err, `"labels"`, "I64")
	}
}

func TestOpenScalars(t *testing.T) {
	f, err := Open(tinyExpected)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Metadata["case"] != "tiny-brown" {
		t.Errorf("metadata %v", f.Metadata)
	}
	loss, ok := f.Tensor("loss_base")
	if !ok {
		t.Fatal("no loss_base")
	}
	if loss.Shape == nil || len(loss.Shape) != 0 || loss.NumElements() != 1 || len(loss.Data) != 4 {
		t.Fatalf("loss_base shape %#v, %d bytes", loss.Shape, len(loss.Data))
	}
	v, err := loss.Float32()
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(float64(v[0])-4.9839091) > 1e-5 {
		t.Errorf("loss_base %v, want 4.9839091 (README)", v[0])
	}
	if _, err := loss.Int64(); err == nil {
		t.Error("Int64 of an F32 tensor succeeded")
	}
}

func TestConversions(t *testing.T) {
	b, err := Marshal(sampleTensors(), nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse("conv", b)
	if err != nil {
		t.Fatal(err)
	}
	floats := map[string][]float32{
		"w.f32":  {1, -2, 3.5, 0, -0.25, 1e-20},
		"w.bf16": {1, -2, 3.5, math.Float32frombits(0x714a0000)}, // 1e30 = 0x7149f2ca rounds up,
		"w.f16":  {1, -2, 65504, float32(math.Ldexp(1, -24))},    // 6e-8 rounds to the smallest subnormal
		"loss":   {4.25},
		"empty":  {},
		"f64":    {1},
	}
	for name, want := range floats {
		tt, _ := f.Tensor(name)
		got, err := tt.Float32()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %v, want %v", name, got, want)
		}
	}
	ints := map[string][]int64{
		"ids":       {-100, 0, 1 << 40},
		"empty.i64": {},
		"i32":       {-1, 7},
		"i16":       {-2},
		"i8":        {-128, 127},
		"u8":        {128, 255},
		"mask":      {1, 0, 1},
	}
	for name, want := range ints {
		tt, _ := f.Tensor(name)
		got, err := tt.Int64()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %v, want %v", name, got, want)
		}
	}
	// Hand-built tensors with inconsistent data must error, not panic.
	for _, bad := range []Tensor{
		{Name: "short", DType: "F32", Shape: []int{3}, Data: make([]byte, 11)},
		{Name: "neg", DType: "I64", Shape: []int{-1}, Data: nil},
		{Name: "unknown", DType: "Q4", Shape: []int{1}, Data: make([]byte, 1)},
	} {
		if _, err := bad.Float32(); err == nil {
			t.Errorf("%s: Float32 succeeded", bad.Name)
		}
		if _, err := bad.Int64(); err == nil {
			t.Errorf("%s: Int64 succeeded", bad.Name)
		}
	}
}

func TestOpenErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.safetensors")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(empty)
	wantErr(t, err, empty, "shorter")

	bad := filepath.Join(dir, "bad.safetensors")
	if err := os.WriteFile(bad, raw(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 4)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Open(bad)
	wantErr(t, err, bad, `"x"`, "past the end")

	_, err = Open(filepath.Join(dir, "missing.safetensors"))
	wantErr(t, err, "missing.safetensors")
	_, err = Open(dir)
	wantErr(t, err, dir, "not a regular file")
}
