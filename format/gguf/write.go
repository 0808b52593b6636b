package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/lorakit/lorakit/tensor"
)

// KeyValue is one metadata entry for Write; entries are written in order.
type KeyValue struct {
	Key   string
	Value Value
}

// WriteTensor is one tensor for Write.
type WriteTensor struct {
	Name string
	// Shape is row-major (PyTorch order); it is written reversed as ne.
	Shape []int
	Type  GGMLType
	// Data is the encoded little-endian data, exactly the size Type and
	// Shape imply (any known type: a test can write hand-built Q8_0 blocks).
	Data []byte
}

// F32Tensor encodes x as an F32 tensor.
func F32Tensor(name string, shape []int, x []float32) WriteTensor {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return WriteTensor{Name: name, Shape: shape, Type: F32, Data: b}
}

// F16Tensor rounds x to binary16 (nearest even) as an F16 tensor.
func F16Tensor(name string, shape []int, x []float32) WriteTensor {
	b := make([]byte, 2*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint16(b[2*i:], tensor.F32ToF16(v))
	}
	return WriteTensor{Name: name, Shape: shape, Type: F16, Data: b}
}

// Write writes a GGUF v3 file at path, atomically: to a temporary file in
// the same directory, renamed over path once complete.
func Write(path string, kv []KeyValue, tensors []WriteTensor) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("gguf %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := Encode(tmp, kv, tensors); err != nil {
		return fmt.Errorf("gguf %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("gguf %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("gguf %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("gguf %s: %w", path, err)
	}
	return nil
}

// writeNameMax is llama.cpp's limit (GGML_MAX_NAME = 64 including the NUL),
// one byte stricter than the spec's 64 that the reader accepts, so that
// whatever we write llama.cpp can load.
const writeNameMax = 63

// Encode writes a GGUF v3 image to w. Everything is validated before the
// first byte is written. The alignment is general.alignment if kv sets it
// (as a u32 power of two, as llama.cpp requires, at most 64 KiB), else 32.
func Encode(w io.Writer, kv []KeyValue, tensors []WriteTensor) error {
	align := uint64(defaultAlignment)
	seen := make(map[string]bool, len(kv))
	for _, e := range kv {
		if e.Key == "" || len(e.Key) > maxKeyLen {
			return fmt.Errorf("key %q: length %d, want 1..%d", e.Key, len(e.Key), maxKeyLen)
		}
		if seen[e.Key] {
			return fmt.Errorf("key %q: duplicate", e.Key)
		}
		seen[e.Key] = true
		if err := checkValue(e.Value, 0); err != nil {
			return fmt.Errorf("key %q: %w", e.Key, err)
		}
		if e.Key == "general.alignment" {
			a, _ := e.Value.Uint()
			if e.Value.Type != TypeUint32 || a == 0 || a&(a-1) != 0 || a > maxAlignment {
				return fmt.Errorf("key %q: want a u32 power of two up to %d", e.Key, maxAlignment)
			}
			align = a
		}
	}

	infos := make([]TensorInfo, len(tensors))
	names := make(map[string]bool, len(tensors))
	var off uint64
	for i, t := range tensors {
		if len(t.Name) > writeNameMax {
			return fmt.Errorf("tensor %q: name longer than %d bytes", t.Name, writeNameMax)
		}
		if names[t.Name] {
			return fmt.Errorf("tensor %q: duplicate name", t.Name)
		}
		names[t.Name] = true
		if len(t.Shape) == 0 || len(t.Shape) > maxDims {
			return fmt.Errorf("tensor %q: shape %v: want 1 to %d dims", t.Name, t.Shape, maxDims)
		}
		ti := TensorInfo{Name: t.Name, Type: t.Type, Dims: make([]uint64, len(t.Shape)), Offset: off}
		for j, s := range t.Shape {
			if s < 0 {
				return fmt.Errorf("tensor %q: negative dim in shape %v", t.Name, t.Shape)
			}
			ti.Dims[len(t.Shape)-1-j] = uint64(s)
		}
		size, err := ti.byteSize()
		if err != nil {
			return fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		if uint64(len(t.Data)) != size {
			return fmt.Errorf("tensor %q: %v %v needs %d bytes of data, got %d", t.Name, t.Type, t.Shape, size, len(t.Data))
		}
		infos[i] = ti
		off = alignUp(off+size, align)
	}

	e := &encoder{w: bufio.NewWriterSize(w, 1<<16)}
	e.bytes([]byte("GGUF"))
	e.u32(3)
	e.u64(uint64(len(tensors)))
	e.u64(uint64(len(kv)))
	for _, x := range kv {
		e.str(x.Key)
		e.u32(uint32(x.Value.Type))
		e.value(x.Value)
	}
	for _, ti := range infos {
		e.str(ti.Name)
		e.u32(uint32(len(ti.Dims)))
		for _, d := range ti.Dims {
			e.u64(d)
		}
		e.u32(uint32(ti.Type))
		e.u64(ti.Offset)
	}
	e.pad(align)
	e.n = 0 // tensor padding is relative to the data section
	for _, t := range tensors {
		e.bytes(t.Data)
		e.pad(align)
	}
	if e.err != nil {
		return e.err
	}
	return e.w.Flush()
}

// checkValue rejects Values that cannot be encoded (unknown types, arrays
// nested too deep for our own reader).
func checkValue(v Value, depth int) error {
	if !v.valid {
		return errors.New("zero Value (build values with the New* constructors)")
	}
	if v.Type.scalarSize() > 0 || v.Type == TypeString {
		return nil
	}
	if v.Type != TypeArray {
		return fmt.Errorf("unknown value type %d", uint32(v.Type))
	}
	if depth >= maxDepth {
		return errors.New("arrays nested too deep")
	}
	if v.Elem.scalarSize() == 0 && v.Elem != TypeString && v.Elem != TypeArray {
		return fmt.Errorf("unknown array element type %d", uint32(v.Elem))
	}
	for _, x := range v.vals {
		if x.Type != TypeArray {
			return fmt.Errorf("array of arrays holds a %v", x.Type)
		}
		if err := checkValue(x, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// encoder writes little-endian fields, remembering the first error and the
// byte count (for padding).
type encoder struct {
	w   *bufio.Writer
	n   uint64
	err error
	buf [8]byte
}

func (e *encoder) bytes(b []byte) {
	if e.err != nil {
		return
	}
	var k int
	k, e.err = e.w.Write(b)
	e.n += uint64(k)
}

func (e *encoder) u32(x uint32) {
	binary.LittleEndian.PutUint32(e.buf[:4], x)
	e.bytes(e.buf[:4])
}

func (e *encoder) u64(x uint64) {
	binary.LittleEndian.PutUint64(e.buf[:8], x)
	e.bytes(e.buf[:8])
}

func (e *encoder) str(s string) {
	e.u64(uint64(len(s)))
	if e.err == nil {
		var k int
		k, e.err = e.w.WriteString(s)
		e.n += uint64(k)
	}
}

var zeros [64]byte

func (e *encoder) pad(align uint64) {
	for k := alignUp(e.n, align) - e.n; k > 0; {
		c := min(k, uint64(len(zeros)))
		e.bytes(zeros[:c])
		k -= c
	}
}

// scalar writes num in t's encoding (the inverse of decodeScalar).
func (e *encoder) scalar(t ValueType, num uint64) {
	binary.LittleEndian.PutUint64(e.buf[:], num)
	e.bytes(e.buf[:t.scalarSize()])
}

func (e *encoder) value(v Value) {
	switch {
	case v.Type.scalarSize() > 0:
		e.scalar(v.Type, v.num)
	case v.Type == TypeString:
		e.str(v.str)
	case v.Type == TypeArray:
		e.u32(uint32(v.Elem))
		e.u64(uint64(v.Len()))
		switch v.Elem {
		case TypeString:
			for _, s := range v.strs {
				e.str(s)
			}
		case TypeArray:
			for _, x := range v.vals {
				e.value(x)
			}
		default:
			for _, n := range v.nums {
				e.scalar(v.Elem, n)
			}
		}
	}
}
