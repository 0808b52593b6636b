package safetensors

import (
	"encoding/binary"
	"testing"
)

func TestParseCorrupt(t *testing.T) {
	const file = "bad.safetensors"
	lenOnly := func(n uint64, rest string) []byte {
		b := binary.LittleEndian.AppendUint64(nil, n)
		return append(b, rest...)
	}
	f32 := func(name, shape, offsets string) string {
		return `"` + name + `":{"dtype":"F32","shape":` + shape + `,"data_offsets":` + offsets + `}`
	}
	cases := []struct {
		name   string
		data   []byte
		tensor string // "" if the error is not about one tensor
		want   string
	}{
		{"empty file", nil, "", "shorter than the 8-byte"},
		{"7 bytes", []byte{1, 2, 3, 4, 5, 6, 7}, "", "shorter than the 8-byte"},
		{"header past end", lenOnly(100, "{}"), "", "exceeds the 2 bytes"},
		{"absurd header", lenOnly(1<<40, "{}"), "", "limit"},
		{"max uint64 header", lenOnly(^uint64(0), "{}"), "", "limit"},
		{"empty header", lenOnly(0, ""), "", "empty header"},
		{"not json", raw(`{not json}`, nil), "", "invalid JSON at byte"},
		{"array", raw(`[1,2]`, nil), "", "start with '{'"},
		{"leading space", raw(` {}`, nil), "", "start with '{'"},
		{"invalid utf8", raw("{\"a\xff\":1}", nil), "", "UTF-8"},
		{"trailing garbage", raw(`{} x`, nil), "", "header"},
		{"two objects", raw(`{}{}`, nil), "", "after the top-level object"},
		{"truncated", raw(`{"a":{"dtype":"F32"`, nil), "a", "truncated"},
		{"entry not object", raw(`{"a":1}`, nil), "a", "expected an object"},
		{"dtype not string", raw(`{"a":{"dtype":4,"shape":[],"data_offsets":[0,4]}}`, make([]byte, 4)), "a", "dtype"},
		{"unknown dtype", raw(`{"a":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}`, make([]byte, 1)), "a", "unsupported dtype"},
		{"lowercase dtype", raw(`{"a":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), "a", "unsupported dtype"},
		{"missing dtype", raw(`{"a":{"shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), "a", "missing dtype"},
		{"missing shape", raw(`{"a":{"dtype":"F32","data_offsets":[0,4]}}`, make([]byte, 4)), "a", "missing shape"},
		{"missing offsets", raw(`{"a":{"dtype":"F32","shape":[1]}}`, make([]byte, 4)), "a", "missing data_offsets"},
		{"shape not array", raw(`{`+f32("a", `1`, `[0,4]`)+`}`, make([]byte, 4)), "a", "shape: expected an array"},
		{"shape null", raw(`{`+f32("a", `null`, `[0,4]`)+`}`, make([]byte, 4)), "a", "shape"},
		{"negative dim", raw(`{`+f32("a", `[-1,2]`, `[0,4]`)+`}`, make([]byte, 4)), "a", "negative dimension"},
		{"float dim", raw(`{`+f32("a", `[2.0]`, `[0,8]`)+`}`, make([]byte, 8)), "a", "expected an integer"},
		{"exponent dim", raw(`{`+f32("a", `[1e1]`, `[0,40]`)+`}`, make([]byte, 40)), "a", "expected an integer"},
		{"string dim", raw(`{`+f32("a", `["2"]`, `[0,8]`)+`}`, make([]byte, 8)), "a", "expected an integer"},
		{"huge dim", raw(`{`+f32("a", `[100000000000000000000]`, `[0,4]`)+`}`, make([]byte, 4)), "a", "out of range"},
		{"shape overflow", raw(`{`+f32("a", `[4294967296,4294967296]`, `[0,4]`)+`}`, make([]byte, 4)), "a", "overflows"},
		{"bytes overflow", raw(`{`+f32("a", `[4611686018427387904]`, `[0,4]`)+`}`, make([]byte, 4)), "a", "overflows"},
		{"offsets 1", raw(`{`+f32("a", `[1]`, `[4]`)+`}`, make([]byte, 4)), "a", "want 2"},
		{"offsets 3", raw(`{`+f32("a", `[1]`, `[0,4,4]`)+`}`, make([]byte, 4)), "a", "want 2"},
		{"offsets object", raw(`{`+f32("a", `[1]`, `{"begin":0}`)+`}`, make([]byte, 4)), "a", "data_offsets"},
		{"negative offset", raw(`{`+f32("a", `[1]`, `[-4,0]`)+`}`, make([]byte, 4)), "a", "negative data_offsets"},
		{"begin after end", raw(`{`+f32("a", `[0]`, `[4,0]`)+`}`, make([]byte, 4)), "a", "begin after end"},
		{"end past data", raw(`{`+f32("a", `[2]`, `[0,8]`)+`}`, make([]byte, 4)), "a", "past the end"},
		{"size mismatch", raw(`{`+f32("a", `[2]`, `[0,4]`)+`}`, make([]byte, 4)), "a", "needs 8"},
		{"scalar wrong size", raw(`{`+f32("a", `[]`, `[0,0]`)+`}`, nil), "a", "needs 4"},
		{"overlap", raw(`{`+f32("a", `[2]`, `[0,8]`)+`,`+f32("b", `[2]`, `[4,12]`)+`}`, make([]byte, 12)), "b", `overlap tensor "a"`},
		{"same range", raw(`{`+f32("a", `[1]`, `[0,4]`)+`,`+f32("b", `[1]`, `[0,4]`)+`}`, make([]byte, 4)), "b", `overlap tensor "a"`},
		{"empty inside other", raw(`{`+f32("a", `[2]`, `[0,8]`)+`,`+f32("z", `[0]`, `[4,4]`)+`}`, make([]byte, 8)), "z", "overlap"},
		{"hole", raw(`{`+f32("a", `[1]`, `[0,4]`)+`,`+f32("b", `[1]`, `[8,12]`)+`}`, make([]byte, 12)), "b", "hole of 4 bytes"},
		{"hole at start", raw(`{`+f32("a", `[1]`, `[4,8]`)+`}`, make([]byte, 8)), "a", "hole"},
		{"trailing bytes", raw(`{`+f32("a", `[1]`, `[0,4]`)+`}`, make([]byte, 5)), "", "cover only 4"},
		{"no tensors, data", raw(`{}`, make([]byte, 1)), "", "cover only 0"},
		{"duplicate tensor", raw(`{`+f32("a", `[1]`, `[0,4]`)+`,`+f32("a", `[1]`, `[4,8]`)+`}`, make([]byte, 8)), "a", "declared twice"},
		{"duplicate field", raw(`{"a":{"dtype":"F32","dtype":"I32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), "a", `duplicate key "dtype"`},
		{"metadata not object", raw(`{"__metadata__":[1]}`, nil), "", "__metadata__"},
		{"metadata value number", raw(`{"__metadata__":{"k":1}}`, nil), "", `__metadata__: key "k"`},
		{"metadata value object", raw(`{"__metadata__":{"k":{}}}`, nil), "", `__metadata__: key "k"`},
		{"metadata duplicate", raw(`{"__metadata__":{"k":"1","k":"2"}}`, nil), "", `duplicate key "k"`},
		{"metadata twice", raw(`{"__metadata__":{},"__metadata__":{}}`, nil), "", "__metadata__ declared twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Parse(file, c.data)
			if err == nil {
				t.Fatalf("parsed: %v", f.Names())
			}
			want := []string{file, c.want}
			if c.tensor != "" {
				want = append(want, `tensor "`+c.tensor+`"`)
			}
			wantErr(t, err, want...)
			fe := asFormatError(t, err)
			if fe.File != file || fe.HasTensor != (c.tensor != "") || fe.Tensor != c.tensor {
				t.Errorf("FormatError{File: %q, Tensor: %q, HasTensor: %v}", fe.File, fe.Tensor, fe.HasTensor)
			}
		})
	}
}

// Things the format allows that a too-strict reader might reject.
func TestParseAccepts(t *testing.T) {
	cases := []struct {
		name string
		data []byte
		n    int
	}{
		{"empty object", raw(`{}`, nil), 0},
		{"padded", raw(`{}      `, nil), 0},
		{"newline padded", raw("{}\n\t\r ", nil), 0},
		{"null metadata", raw(`{"__metadata__":null}`, nil), 0},
		{"metadata only", raw(`{"__metadata__":{"a":"b"}}`, nil), 0},
		{"unknown field ignored", raw(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":{"x":[1,{}]}}}`, make([]byte, 4)), 1},
		{"any key order", raw(`{"a":{"data_offsets":[0,4],"shape":[],"dtype":"I32"}}`, make([]byte, 4)), 1},
		{"out-of-order entries", raw(`{"b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, make([]byte, 2)), 2},
		{"several empty at same offset", raw(`{"e1":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"e2":{"dtype":"I64","shape":[3,0],"data_offsets":[4,4]}}`, make([]byte, 4)), 3},
		{"empty name", raw(`{"":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, make([]byte, 1)), 1},
		{"escaped name", raw(`{"a\u00e9\n":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, make([]byte, 1)), 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Parse("ok", c.data)
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Names()) != c.n {
				t.Fatalf("%d tensors, want %d", len(f.Names()), c.n)
			}
		})
	}
	f, _ := Parse("ok", raw(`{"b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, []byte{10, 20}))
	if n := f.Names(); n[0] != "a" || n[1] != "b" {
		t.Errorf("names %v not in offset order", n)
	}
	if b, _ := f.Tensor("b"); b.Data[0] != 20 {
		t.Errorf("b = %v", b.Data)
	}
	if f, _ := Parse("ok", raw(`{"a\u00e9\n":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, []byte{1})); f != nil {
		if _, ok := f.Tensor("a\u00e9\n"); !ok {
			t.Error("escaped name not decoded")
		}
	}
}
