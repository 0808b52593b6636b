package gguf

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"

	"github.com/lorakit/lorakit/tensor"
)

// raw assembles GGUF bytes by hand, including ones the writer refuses to
// produce, for the error and fuzz tests.
type raw struct{ b []byte }

func header(version uint32, nTensors, nKV uint64) *raw {
	r := &raw{b: []byte("GGUF")}
	return r.u32(version).u64(nTensors).u64(nKV)
}

func (r *raw) u8(x uint8) *raw { r.b = append(r.b, x); return r }
func (r *raw) u32(x uint32) *raw {
	r.b = binary.LittleEndian.AppendUint32(r.b, x)
	return r
}
func (r *raw) u64(x uint64) *raw {
	r.b = binary.LittleEndian.AppendUint64(r.b, x)
	return r
}
func (r *raw) str(s string) *raw { r.u64(uint64(len(s))); r.b = append(r.b, s...); return r }

// kvU32 appends a u32 key-value pair.
func (r *raw) kvU32(key string, v uint32) *raw { return r.str(key).u32(uint32(TypeUint32)).u32(v) }

// tensor appends a tensor info.
func (r *raw) tensor(name string, dims []uint64, typ GGMLType, off uint64) *raw {
	r.str(name).u32(uint32(len(dims)))
	for _, d := range dims {
		r.u64(d)
	}
	return r.u32(uint32(typ)).u64(off)
}

func (r *raw) pad(align int) *raw {
	for len(r.b)%align != 0 {
		r.b = append(r.b, 0)
	}
	return r
}

func (r *raw) zeros(n int) *raw { r.b = append(r.b, make([]byte, n)...); return r }

// q8Block is one block_q8_0: f16 scale then 32 int8.
func q8Block(d float32, q [32]int8) []byte {
	b := binary.LittleEndian.AppendUint16(nil, tensor.F32ToF16(d))
	for _, x := range q {
		b = append(b, byte(x))
	}
	return b
}

// q4Block is one block_q4_0: f16 scale then 16 bytes, element j in the
// low nibble of byte j, element j+16 in its high nibble.
func q4Block(d float32, q [32]uint8) []byte {
	b := binary.LittleEndian.AppendUint16(nil, tensor.F32ToF16(d))
	for j := range 16 {
		b = append(b, q[j]&0x0f|q[j+16]<<4)
	}
	return b
}

// sampleKV covers every value type, arrays of each kind and a nested array.
func sampleKV() []KeyValue {
	return []KeyValue{
		{"general.architecture", NewString("llama")},
		{"general.name", NewString("ünïcode ✓")},
		{"test.u8", NewUint8(250)},
		{"test.i8", NewInt8(-100)},
		{"test.u16", NewUint16(65000)},
		{"test.i16", NewInt16(-32000)},
		{"test.u32", NewUint32(4_000_000_000)},
		{"test.i32", NewInt32(-2_000_000_000)},
		{"test.u64", NewUint64(math.MaxUint64)},
		{"test.i64", NewInt64(math.MinInt64)},
		{"test.f32", NewFloat32(1e-5)},
		{"test.f64", NewFloat64(math.Pi)},
		{"test.bool", NewBool(true)},
		{"test.empty_string", NewString("")},
		{"tokenizer.ggml.tokens", NewStrings([]string{"<s>", "</s>", "", "hello", "Ġworld"})},
		{"tokenizer.ggml.token_type", NewInt32s([]int32{3, 3, 1, 1, -1})},
		{"tokenizer.ggml.scores", NewFloat32s([]float32{0, -1.5, float32(math.Inf(-1)), 2, 3})},
		{"test.u32s", NewUint32s([]uint32{1, 2, math.MaxUint32})},
		{"test.i64s", NewInt64s([]int64{math.MinInt64, 0, math.MaxInt64})},
		{"test.bools", NewArray(TypeBool, []Value{NewBool(false), NewBool(true)})},
		{"test.empty", NewStrings(nil)},
		{"test.nested", NewArray(TypeArray, []Value{NewInt32s([]int32{1, 2}), NewStrings([]string{"a"})})},
	}
}

func f32s(n int, f func(i int) float32) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = f(i)
	}
	return x
}

// sampleTensors has an F32 matrix, an F16 vector, a 3-D tensor and an
// empty one, with sizes that are not multiples of the alignment.
func sampleTensors() []WriteTensor {
	return []WriteTensor{
		F32Tensor("token_embd.weight", []int{3, 5}, f32s(15, func(i int) float32 { return float32(i) - 7.5 })),
		F16Tensor("output_norm.weight", []int{7}, f32s(7, func(i int) float32 { return 1 / float32(i+1) })),
		F32Tensor("blk.0.cube", []int{2, 3, 4}, f32s(24, func(i int) float32 { return float32(i * i) })),
		F32Tensor("empty", []int{0, 4}, nil),
	}
}

func encode(t testing.TB, kv []KeyValue, tensors []WriteTensor) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Encode(&buf, kv, tensors); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
