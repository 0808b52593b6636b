package gguf

import (
	"errors"
	"strings"
	"testing"

	"github.com/lorakit/lorakit/tensor"
)

// Hand-built blocks, decoded with the formulas of ggml's
// dequantize_row_q8_0 / dequantize_row_q4_0 written out independently.

func TestDequantQ8_0(t *testing.T) {
	// Shape [2, 64]: two rows of two blocks each, distinct scales, so a
	// wrong block stride or scale pick shows.
	scales := []float32{0.5, -0.25, 3, 0.0078125} // all exact in f16
	var data []byte
	var want []float32
	for b, d := range scales {
		var q [32]int8
		for j := range q {
			q[j] = int8(-128 + (b*61+j*37)%256) // covers -128 and 127
		}
		data = append(data, q8Block(d, q)...)
		for _, x := range q {
			want = append(want, float32(x)*tensor.F16ToF32(tensor.F32ToF16(d)))
		}
	}
	checkDequant(t, WriteTensor{Name: "q8", Shape: []int{2, 64}, Type: Q8_0, Data: data}, want)
}

func TestDequantQ4_0(t *testing.T) {
	scales := []float32{2, -0.5, 0.125}
	var data []byte
	var want []float32
	for b, d := range scales {
		var q [32]uint8
		for j := range q {
			q[j] = uint8((j*7 + b*3) % 16) // nibbles 0..15, low and high halves differ
		}
		data = append(data, q4Block(d, q)...)
		for _, x := range q {
			want = append(want, float32(int(x)-8)*d)
		}
	}
	// The nibble layout, spelled out for the first block: byte 0 is
	// q[0] | q[16]<<4, so element 0 comes from its low and element 16
	// from its high nibble.
	if data[2] != uint8(0|(16*7%16)<<4) {
		t.Fatalf("test block layout: byte 0 = %#x", data[2])
	}
	checkDequant(t, WriteTensor{Name: "q4", Shape: []int{96}, Type: Q4_0, Data: data}, want)
}

func checkDequant(t *testing.T, w WriteTensor, want []float32) {
	t.Helper()
	f, err := Parse("mem.gguf", encode(t, nil, []WriteTensor{w}))
	if err != nil {
		t.Fatal(err)
	}
	ti, _ := f.Tensor(w.Name)
	got, err := ti.Float32()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d values, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s[%d] = %v, want %v", w.Name, i, got[i], want[i])
		}
	}
}

func TestFloat32Unsupported(t *testing.T) {
	w := WriteTensor{Name: "k", Shape: []int{256}, Type: Q4_K, Data: make([]byte, 144)}
	f, err := Parse("mem.gguf", encode(t, nil, []WriteTensor{w}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Tensors[0].Float32()
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "Q4_K") || !strings.Contains(err.Error(), `"k"`) {
		t.Fatalf("Float32 of Q4_K: %v", err)
	}
	// A hand-made TensorInfo whose Data does not match its dims.
	bad := TensorInfo{Name: "x", Dims: []uint64{4}, Type: F32, Data: make([]byte, 12)}
	if _, err := bad.Float32(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Float32 with short data: %v", err)
	}
}
