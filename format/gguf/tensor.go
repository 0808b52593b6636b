package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"

	"github.com/lorakit/lorakit/tensor"
)

// TensorInfo describes one tensor and holds its bytes.
type TensorInfo struct {
	Name string
	// Dims in GGUF order: ne0 (the fastest-varying, contiguous dimension)
	// first, i.e. the reverse of a row-major/PyTorch shape.
	Dims []uint64
	Type GGMLType
	// Offset of the data relative to the start of the data section.
	Offset uint64
	// Data is the tensor's encoded bytes (exactly ByteSize long for a
	// parsed file); for a File from Open it aliases the mapping.
	Data []byte

	path string // file name, for errors
}

// Shape is the row-major shape (Dims reversed), as PyTorch and safetensors
// write it: a GGUF tensor with ne = [256, 4096] is a [4096, 256] matrix.
func (t TensorInfo) Shape() []int {
	s := make([]int, len(t.Dims))
	for i, d := range t.Dims {
		s[len(s)-1-i] = int(d)
	}
	return s
}

// NumElements is the product of Dims (1 for a 0-dimensional tensor).
func (t TensorInfo) NumElements() int {
	n := 1
	for _, d := range t.Dims {
		n *= int(d)
	}
	return n
}

// ByteSize is the size of the encoded data, or an error if the type is
// unknown, ne0 is not a whole number of blocks, or the size overflows.
func (t TensorInfo) ByteSize() (int, error) {
	n, err := t.byteSize()
	if err != nil {
		return 0, t.errf("%w", err)
	}
	return int(n), nil
}

func (t TensorInfo) errf(format string, args ...any) error {
	return fmt.Errorf("gguf %s: tensor %q: "+format, append([]any{t.path, t.Name}, args...)...)
}

// byteSize checks every dimension and product against overflow (ggml uses
// int64 counts; int must hold them here too) and the block structure.
func (t TensorInfo) byteSize() (uint64, error) {
	ti, ok := typeInfos[t.Type]
	if !ok {
		return 0, fmt.Errorf("unknown ggml type id %d: %w", uint32(t.Type), ErrInvalid)
	}
	if len(t.Dims) > maxDims {
		return 0, fmt.Errorf("%d dims exceed %d: %w", len(t.Dims), maxDims, ErrInvalid)
	}
	const limit = uint64(math.MaxInt)
	n := uint64(1)
	for _, d := range t.Dims {
		hi, lo := bits.Mul64(n, d)
		if hi != 0 || lo > limit {
			return 0, fmt.Errorf("dims %v: element count overflows: %w", t.Dims, ErrInvalid)
		}
		n = lo
	}
	// Blocks run along ne0 (ggml quantises rows), so ne0 itself must be a
	// whole number of blocks, not just the element count.
	ne0 := uint64(1)
	if len(t.Dims) > 0 {
		ne0 = t.Dims[0]
	}
	if ne0%ti.block != 0 {
		return 0, fmt.Errorf("ne0 = %d is not a multiple of the %v block size %d: %w", ne0, t.Type, ti.block, ErrInvalid)
	}
	hi, size := bits.Mul64(n/ti.block, ti.size)
	if hi != 0 || size > limit {
		return 0, fmt.Errorf("dims %v: byte size overflows: %w", t.Dims, ErrInvalid)
	}
	return size, nil
}

// Float32 decodes the tensor to float32 in row-major order (which is
// ggml's memory order: ne0 varies fastest). F32, F16, BF16, Q8_0 and Q4_0
// are supported; any other type is an error wrapping ErrUnsupported.
func (t TensorInfo) Float32() ([]float32, error) {
	switch t.Type {
	case F32, F16, BF16, Q8_0, Q4_0:
	default:
		return nil, t.errf("dequantising %v is not supported (F32, F16, BF16, Q8_0, Q4_0 are): %w", t.Type, ErrUnsupported)
	}
	size, err := t.byteSize()
	if err != nil {
		return nil, t.errf("%w", err)
	}
	if uint64(len(t.Data)) != size {
		return nil, t.errf("%v %v needs %d bytes of data, has %d: %w", t.Type, t.Dims, size, len(t.Data), ErrInvalid)
	}
	out := make([]float32, t.NumElements())
	le := binary.LittleEndian
	switch t.Type {
	case F32:
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(t.Data[4*i:]))
		}
	case F16:
		for i := range out {
			out[i] = tensor.F16ToF32(le.Uint16(t.Data[2*i:]))
		}
	case BF16:
		for i := range out {
			out[i] = tensor.BF16ToF32(le.Uint16(t.Data[2*i:]))
		}
	case Q8_0:
		dequantQ8_0(out, t.Data)
	case Q4_0:
		dequantQ4_0(out, t.Data)
	}
	return out, nil
}

// dequantQ8_0 decodes ggml's block_q8_0: an f16 scale d then 32 int8
// quants; x[j] = q[j] * d. len(b) == len(out)/32*34 is the caller's check.
func dequantQ8_0(out []float32, b []byte) {
	for blk := 0; blk < len(out)/32; blk++ {
		p := b[blk*34 : blk*34+34]
		d := tensor.F16ToF32(binary.LittleEndian.Uint16(p))
		o := out[blk*32 : blk*32+32]
		for j := range o {
			o[j] = float32(int8(p[2+j])) * d
		}
	}
}

// dequantQ4_0 decodes ggml's block_q4_0: an f16 scale d then 16 bytes of
// 4-bit quants. Byte j holds element j in its low nibble and element j+16
// in its high nibble; x = (q - 8) * d.
func dequantQ4_0(out []float32, b []byte) {
	for blk := 0; blk < len(out)/32; blk++ {
		p := b[blk*18 : blk*18+18]
		d := tensor.F16ToF32(binary.LittleEndian.Uint16(p))
		o := out[blk*32 : blk*32+32]
		for j := range 16 {
			q := p[2+j]
			o[j] = float32(int(q&0x0f)-8) * d
			o[j+16] = float32(int(q>>4)-8) * d
		}
	}
}
