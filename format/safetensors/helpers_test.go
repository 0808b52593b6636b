package safetensors

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// raw assembles a file from a literal header (no padding) and data, so
// tests can express malformed headers directly.
func raw(header string, data []byte) []byte {
	b := make([]byte, 8, 8+len(header)+len(data))
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

// wantErr checks err is a FormatError-style message mentioning all of want.
func wantErr(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one mentioning %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

func asFormatError(t *testing.T, err error) *FormatError {
	t.Helper()
	var fe *FormatError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not a *FormatError", err, err)
	}
	return fe
}

// sampleTensors covers every dtype, a 0-dim scalar and empty tensors.
func sampleTensors() []Writable {
	return []Writable{
		{Name: "w.f32", DType: "F32", Shape: []int{2, 3}, Data: F32Bytes([]float32{1, -2, 3.5, 0, -0.25, 1e-20})},
		{Name: "w.bf16", DType: "BF16", Shape: []int{4}, Data: BF16Bytes([]float32{1, -2, 3.5, 1e30})},
		{Name: "w.f16", DType: "F16", Shape: []int{2, 2}, Data: F16Bytes([]float32{1, -2, 65504, 6e-8})},
		{Name: "ids", DType: "I64", Shape: []int{3}, Data: I64Bytes([]int64{-100, 0, 1 << 40})},
		{Name: "loss", DType: "F32", Shape: []int{}, Data: F32Bytes([]float32{4.25})},
		{Name: "empty", DType: "F32", Shape: []int{0, 5}, Data: []byte{}},
		{Name: "empty.i64", DType: "I64", Shape: []int{0}, Data: nil},
		{Name: "f64", DType: "F64", Shape: []int{1}, Data: []byte{0, 0, 0, 0, 0, 0, 0xf0, 0x3f}},
		{Name: "i32", DType: "I32", Shape: []int{2}, Data: []byte{0xff, 0xff, 0xff, 0xff, 7, 0, 0, 0}},
		{Name: "i16", DType: "I16", Shape: []int{1}, Data: []byte{0xfe, 0xff}},
		{Name: "i8", DType: "I8", Shape: []int{2}, Data: []byte{0x80, 0x7f}},
		{Name: "u8", DType: "U8", Shape: []int{2}, Data: []byte{0x80, 0xff}},
		{Name: "mask", DType: "BOOL", Shape: []int{3}, Data: []byte{1, 0, 1}},
	}
}
