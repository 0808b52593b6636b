package gguf

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lorakit/lorakit/tensor"
)

func TestWriteOpenRoundTrip(t *testing.T) {
	for _, align := range []uint32{0, 8, 64} {
		kv := sampleKV()
		if align != 0 {
			kv = append(kv, KeyValue{"general.alignment", NewUint32(align)})
		}
		tensors := sampleTensors()
		path := filepath.Join(t.TempDir(), "rt.gguf")
		if err := Write(path, kv, tensors); err != nil {
			t.Fatal(err)
		}
		f, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		wantAlign := uint64(32)
		if align != 0 {
			wantAlign = uint64(align)
		}
		if f.Version != 3 || f.Alignment != wantAlign || f.DataOffset%wantAlign != 0 {
			t.Errorf("align %d: version %d alignment %d data offset %d", align, f.Version, f.Alignment, f.DataOffset)
		}
		if len(f.Keys) != len(kv) {
			t.Fatalf("%d keys, want %d", len(f.Keys), len(kv))
		}
		for i, e := range kv {
			if f.Keys[i] != e.Key {
				t.Errorf("key %d = %q, want %q (order lost)", i, f.Keys[i], e.Key)
			}
			if got := f.KV[e.Key]; !got.Equal(e.Value) {
				t.Errorf("%s = %+v, want %+v", e.Key, got, e.Value)
			}
		}
		if len(f.Tensors) != len(tensors) {
			t.Fatalf("%d tensors, want %d", len(f.Tensors), len(tensors))
		}
		for i, w := range tensors {
			ti := f.Tensors[i]
			got, ok := f.Tensor(w.Name)
			if !ok || got.Name != ti.Name {
				t.Errorf("Tensor(%q) not found", w.Name)
			}
			if ti.Name != w.Name || ti.Type != w.Type || !slices.Equal(ti.Shape(), w.Shape) {
				t.Errorf("tensor %d: %s %v %v, want %s %v %v", i, ti.Name, ti.Type, ti.Shape(), w.Name, w.Type, w.Shape)
			}
			if ti.Offset%wantAlign != 0 {
				t.Errorf("tensor %s: offset %d not aligned to %d", ti.Name, ti.Offset, wantAlign)
			}
			if !slices.Equal(ti.Data, w.Data) {
				t.Errorf("tensor %s: data differs", ti.Name)
			}
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if f.Tensors[0].Data != nil {
			t.Error("Close left Data pointing at the unmapped file")
		}
	}
}

func TestAccessors(t *testing.T) {
	f, err := Parse("mem.gguf", encode(t, sampleKV(), nil))
	if err != nil {
		t.Fatal(err)
	}
	kv := f.KV
	ints := map[string]int64{
		"test.u8": 250, "test.i8": -100, "test.u16": 65000, "test.i16": -32000,
		"test.u32": 4_000_000_000, "test.i32": -2_000_000_000, "test.i64": math.MinInt64,
	}
	for k, want := range ints {
		if got, ok := kv[k].Int(); !ok || got != want {
			t.Errorf("%s.Int() = %d, %v; want %d", k, got, ok, want)
		}
	}
	if _, ok := kv["test.u64"].Int(); ok {
		t.Error("u64 MaxUint64 .Int() succeeded")
	}
	if u, ok := kv["test.u64"].Uint(); !ok || u != math.MaxUint64 {
		t.Errorf("u64.Uint() = %d, %v", u, ok)
	}
	if _, ok := kv["test.i8"].Uint(); ok {
		t.Error("negative i8 .Uint() succeeded")
	}
	if x, ok := kv["test.f32"].Float(); !ok || float32(x) != 1e-5 {
		t.Errorf("f32.Float() = %v, %v", x, ok)
	}
	if x, ok := kv["test.f64"].Float(); !ok || x != math.Pi {
		t.Errorf("f64.Float() = %v, %v", x, ok)
	}
	if b, ok := kv["test.bool"].Bool(); !ok || !b {
		t.Errorf("bool.Bool() = %v, %v", b, ok)
	}
	if s, ok := kv["general.name"].String(); !ok || s != "ünïcode ✓" {
		t.Errorf("general.name.String() = %q, %v", s, ok)
	}
	// Mismatched accessors fail rather than convert.
	if _, ok := kv["test.u32"].String(); ok {
		t.Error("u32.String() succeeded")
	}
	if _, ok := kv["test.u32"].Float(); ok {
		t.Error("u32.Float() succeeded")
	}
	if _, ok := kv["test.f32"].Int(); ok {
		t.Error("f32.Int() succeeded")
	}
	if _, ok := kv["general.name"].Bool(); ok {
		t.Error("string.Bool() succeeded")
	}
	if s, ok := kv["tokenizer.ggml.tokens"].Strings(); !ok || !slices.Equal(s, []string{"<s>", "</s>", "", "hello", "Ġworld"}) {
		t.Errorf("tokens = %q, %v", s, ok)
	}
	if x, ok := kv["tokenizer.ggml.token_type"].Ints(); !ok || !slices.Equal(x, []int64{3, 3, 1, 1, -1}) {
		t.Errorf("token_type = %v, %v", x, ok)
	}
	if x, ok := kv["tokenizer.ggml.scores"].Floats(); !ok || !slices.Equal(x, []float32{0, -1.5, float32(math.Inf(-1)), 2, 3}) {
		t.Errorf("scores = %v, %v", x, ok)
	}
	if x, ok := kv["test.u32s"].Ints(); !ok || !slices.Equal(x, []int64{1, 2, math.MaxUint32}) {
		t.Errorf("u32s = %v, %v", x, ok)
	}
	if _, ok := kv["tokenizer.ggml.tokens"].Ints(); ok {
		t.Error("strings.Ints() succeeded")
	}
	if _, ok := kv["test.u32"].Strings(); ok {
		t.Error("scalar.Strings() succeeded")
	}
	if s, ok := kv["test.empty"].Strings(); !ok || len(s) != 0 {
		t.Errorf("empty array = %v, %v", s, ok)
	}
	// A missing key yields the zero Value, on which every accessor fails.
	missing := kv["no.such.key"]
	if _, ok := missing.Int(); ok || missing.Valid() {
		t.Error("missing key: Int() succeeded")
	}
	if _, ok := missing.Uint(); ok {
		t.Error("missing key: Uint() succeeded")
	}
	if _, ok := missing.Bool(); ok {
		t.Error("missing key: Bool() succeeded")
	}
	if _, ok := missing.Values(); ok {
		t.Error("missing key: Values() succeeded")
	}
	nested, ok := kv["test.nested"].Values()
	if !ok || len(nested) != 2 {
		t.Fatalf("nested = %v, %v", nested, ok)
	}
	if x, ok := nested[0].Ints(); !ok || !slices.Equal(x, []int64{1, 2}) {
		t.Errorf("nested[0] = %v, %v", x, ok)
	}
	if x, ok := nested[1].Strings(); !ok || !slices.Equal(x, []string{"a"}) {
		t.Errorf("nested[1] = %v, %v", x, ok)
	}
	if bs, ok := kv["test.bools"].Values(); !ok || len(bs) != 2 {
		t.Errorf("bools = %v, %v", bs, ok)
	} else if b, _ := bs[1].Bool(); !b {
		t.Error("bools[1] false")
	}
}

func TestFloat32PlainTypes(t *testing.T) {
	x := []float32{0, 1, -2.5, 65504, 1e-3, float32(math.Inf(-1)), 3.14159}
	bf := make([]byte, 2*len(x))
	for i, v := range x {
		h := tensor.F32ToBF16(v)
		bf[2*i], bf[2*i+1] = byte(h), byte(h>>8)
	}
	tensors := []WriteTensor{
		F32Tensor("f32", []int{len(x)}, x),
		F16Tensor("f16", []int{len(x)}, x),
		{Name: "bf16", Shape: []int{len(x)}, Type: BF16, Data: bf},
	}
	f, err := Parse("mem.gguf", encode(t, nil, tensors))
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range f.Tensors {
		got, err := ti.Float32()
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range x {
			want := v
			switch ti.Type {
			case F16:
				want = tensor.F16ToF32(tensor.F32ToF16(v))
			case BF16:
				want = tensor.BF16ToF32(tensor.F32ToBF16(v))
			}
			if got[i] != want {
				t.Errorf("%s[%d] = %v, want %v", ti.Name, i, got[i], want)
			}
		}
	}
}

func TestWriteRejects(t *testing.T) {
	ok := F32Tensor("w", []int{2}, []float32{1, 2})
	tests := []struct {
		name    string
		kv      []KeyValue
		tensors []WriteTensor
		want    string
	}{
		{"duplicate key", []KeyValue{{"a", NewUint8(1)}, {"a", NewUint8(2)}}, nil, "duplicate"},
		{"empty key", []KeyValue{{"", NewUint8(1)}}, nil, "length"},
		{"alignment not u32", []KeyValue{{"general.alignment", NewUint64(32)}}, nil, "u32 power of two"},
		{"alignment not power of two", []KeyValue{{"general.alignment", NewUint32(24)}}, nil, "u32 power of two"},
		{"unknown value type", []KeyValue{{"x", Value{Type: 42, valid: true}}}, nil, "unknown value type"},
		{"zero value", []KeyValue{{"x", Value{}}}, nil, "zero Value"},
		{"duplicate tensor", nil, []WriteTensor{ok, ok}, "duplicate"},
		{"long name", nil, []WriteTensor{F32Tensor(strings.Repeat("n", 64), []int{1}, []float32{0})}, "name longer"},
		{"scalar", nil, []WriteTensor{F32Tensor("s", nil, []float32{0})}, "dims"},
		{"five dims", nil, []WriteTensor{F32Tensor("s", []int{1, 1, 1, 1, 1}, []float32{0})}, "dims"},
		{"negative dim", nil, []WriteTensor{{Name: "s", Shape: []int{-1}, Type: F32}}, "negative"},
		{"short data", nil, []WriteTensor{{Name: "s", Shape: []int{3}, Type: F32, Data: make([]byte, 8)}}, "needs 12 bytes"},
		{"partial block", nil, []WriteTensor{{Name: "q", Shape: []int{2, 48}, Type: Q8_0, Data: make([]byte, 102)}}, "multiple of the Q8_0 block size"},
		{"unknown type", nil, []WriteTensor{{Name: "q", Shape: []int{1}, Type: 4}}, "unknown ggml type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.gguf")
			err := Write(path, tt.kv, tt.tensors)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Write = %v, want error containing %q", err, tt.want)
			}
			if _, statErr := os.Stat(path); !errors.Is(statErr, os.ErrNotExist) {
				t.Errorf("failed Write left %s behind", path)
			}
			if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "*")); len(left) != 0 {
				t.Errorf("failed Write left %v", left)
			}
		})
	}
}
