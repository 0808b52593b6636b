package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
)

// Limits. The hard ones come from the spec; the others are sanity caps well
// above anything real files hold. Counts are in any case capped by the bytes
// left in the input, which is what actually bounds memory.
const (
	maxKeyLen    = 1<<16 - 1 // spec: keys are at most 65535 bytes
	maxNameLen   = 64        // spec: tensor names are at most 64 bytes
	maxDims      = 4         // spec: "currently at most 4" (GGML_MAX_DIMS)
	maxStringLen = 1 << 30   // tokenizer.huggingface.json can be many MB
	maxDepth     = 4         // nesting of arrays of arrays
	maxAlignment = 1 << 16   // 64 KiB pages; real files use 32

	defaultAlignment = 32 // spec: assume 32 when general.alignment is absent

	minKVSize     = 8 + 4 + 1         // empty key, type, 1-byte value
	minTensorSize = 8 + 4 + 0 + 4 + 8 // empty name, n_dims=0, type, offset
)

// File is a parsed GGUF file. Tensor Data slices point into the file's
// bytes: for a File from Open they are valid until Close.
type File struct {
	Path    string
	Version uint32
	// KV holds the metadata; Keys lists its keys in file order.
	KV   map[string]Value
	Keys []string
	// Tensors in file order.
	Tensors []TensorInfo
	// Alignment is general.alignment or the default 32.
	Alignment uint64
	// DataOffset is the absolute file offset of the tensor data section.
	DataOffset uint64

	index map[string]int
	unmap func() error
}

// Parse parses a GGUF image held in memory. name is used in errors (and as
// File.Path). The tensors' Data alias data, which must not change afterwards.
func Parse(name string, data []byte) (*File, error) {
	f := &File{Path: name}
	if err := f.parse(data); err != nil {
		return nil, err
	}
	return f, nil
}

// Tensor returns the tensor called name.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	i, ok := f.index[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Tensors[i], true
}

// Close releases the mapping of a File from Open; afterwards no tensor's
// Data may be used (those in f.Tensors are set to nil; copies are not).
// Close is a no-op for a File from Parse and may be called more than once.
func (f *File) Close() error {
	for i := range f.Tensors {
		f.Tensors[i].Data = nil
	}
	if f.unmap == nil {
		return nil
	}
	unmap := f.unmap
	f.unmap = nil
	if err := unmap(); err != nil {
		return fmt.Errorf("gguf %s: unmap: %w", f.Path, err)
	}
	return nil
}

func (f *File) errf(format string, args ...any) error {
	return fmt.Errorf("gguf %s: "+format, append([]any{f.Path}, args...)...)
}

func (f *File) parse(data []byte) error {
	c := &cursor{b: data}
	magic, err := c.take(4, "magic")
	if err != nil {
		return f.errf("header: %w", err)
	}
	if string(magic) != "GGUF" {
		return f.errf("not a GGUF file: magic %q at offset 0: %w", magic, ErrInvalid)
	}
	if f.Version, err = c.u32("version"); err != nil {
		return f.errf("header: %w", err)
	}
	switch v := f.Version; {
	case v == 2 || v == 3:
	case v == 1:
		return f.errf("version 1 (32-bit counts) at offset 4: %w", ErrUnsupported)
	case bits.ReverseBytes32(v) <= 3:
		return f.errf("version %#x at offset 4 looks big-endian: %w", v, ErrUnsupported)
	default:
		return f.errf("unknown version %d at offset 4: %w", v, ErrUnsupported)
	}
	nTensors, err := c.u64("tensor_count")
	if err != nil {
		return f.errf("header: %w", err)
	}
	nKV, err := c.u64("kv_count")
	if err != nil {
		return f.errf("header: %w", err)
	}
	// Each entry needs a minimum number of bytes, so larger counts cannot be
	// honest; checking here keeps the allocations below bounded by len(data).
	if nKV > c.remaining()/minKVSize {
		return f.errf("kv_count %d at offset 16 cannot fit in the %d bytes left: %w", nKV, c.remaining(), ErrInvalid)
	}
	if nTensors > c.remaining()/minTensorSize {
		return f.errf("tensor_count %d at offset 8 cannot fit in the %d bytes left: %w", nTensors, c.remaining(), ErrInvalid)
	}

	f.KV = make(map[string]Value, nKV)
	f.Keys = make([]string, 0, nKV)
	for i := range nKV {
		at := c.off
		key, err := c.str("key", maxKeyLen)
		if err != nil {
			return f.errf("key #%d: %w", i, err)
		}
		if _, dup := f.KV[key]; dup {
			return f.errf("key %q at offset %d: duplicate key: %w", key, at, ErrInvalid)
		}
		t, err := c.u32("value type")
		if err != nil {
			return f.errf("key %q: %w", key, err)
		}
		v, err := c.value(ValueType(t), 0)
		if err != nil {
			return f.errf("key %q: %w", key, err)
		}
		f.KV[key] = v
		f.Keys = append(f.Keys, key)
	}

	f.Tensors = make([]TensorInfo, 0, nTensors)
	f.index = make(map[string]int, nTensors)
	for i := range nTensors {
		at := c.off
		ti, err := c.tensorInfo()
		if err != nil {
			if ti.Name != "" {
				return f.errf("tensor %q: %w", ti.Name, err)
			}
			return f.errf("tensor #%d: %w", i, err)
		}
		if _, dup := f.index[ti.Name]; dup {
			return f.errf("tensor %q at offset %d: duplicate name: %w", ti.Name, at, ErrInvalid)
		}
		f.index[ti.Name] = len(f.Tensors)
		f.Tensors = append(f.Tensors, ti)
	}

	if err := f.setAlignment(); err != nil {
		return err
	}
	// The data section starts at the next multiple of the alignment. A file
	// whose tensors are all empty may end before that point.
	f.DataOffset = alignUp(c.off, f.Alignment)
	section := data[min(f.DataOffset, uint64(len(data))):]
	for i := range f.Tensors {
		f.Tensors[i].path = f.Path
		if err := f.Tensors[i].locate(section, f.Alignment, f.DataOffset); err != nil {
			return f.errf("tensor %q: %w", f.Tensors[i].Name, err)
		}
	}
	return nil
}

// setAlignment reads general.alignment. The spec calls it a u32 that is a
// multiple of 8; llama.cpp requires a u32 power of two. Any integer type is
// accepted here, a power of two is required (the padding arithmetic and
// every writer assume it).
func (f *File) setAlignment() error {
	f.Alignment = defaultAlignment
	v, ok := f.KV["general.alignment"]
	if !ok {
		return nil
	}
	a, ok := v.Uint()
	if !ok {
		return f.errf("key \"general.alignment\": type %v, want an unsigned integer: %w", v.Type, ErrInvalid)
	}
	if a == 0 || a&(a-1) != 0 || a > maxAlignment {
		return f.errf("key \"general.alignment\": %d is not a power of two up to %d: %w", a, maxAlignment, ErrInvalid)
	}
	f.Alignment = a
	return nil
}

// alignUp rounds off up to a multiple of align (a power of two). off is at
// most the input length, so this cannot overflow.
func alignUp(off, align uint64) uint64 { return (off + align - 1) &^ (align - 1) }

// value decodes one metadata value of type t.
func (c *cursor) value(t ValueType, depth int) (Value, error) {
	v := Value{Type: t, valid: true}
	if n := t.scalarSize(); n > 0 {
		at := c.off
		b, err := c.take(uint64(n), t.String())
		if err != nil {
			return v, err
		}
		v.num = decodeScalar(t, b)
		if t == TypeBool && v.num > 1 {
			return v, fmt.Errorf("bool at offset %d is %d, want 0 or 1: %w", at, v.num, ErrInvalid)
		}
		return v, nil
	}
	switch t {
	case TypeString:
		s, err := c.str("string", maxStringLen)
		v.str = s
		return v, err
	case TypeArray:
		return c.array(depth)
	}
	return v, fmt.Errorf("unknown value type %d at offset %d: %w", uint32(t), c.off-4, ErrInvalid)
}

// array decodes an array header and its elements. Its count is checked
// against the smallest encoding of its element type times the bytes left,
// so a 150k-entry token list is fine and a lying count fails before any
// allocation.
func (c *cursor) array(depth int) (Value, error) {
	at := c.off
	if depth >= maxDepth {
		return Value{}, fmt.Errorf("array at offset %d nested deeper than %d: %w", at, maxDepth, ErrInvalid)
	}
	et, err := c.u32("array element type")
	if err != nil {
		return Value{}, err
	}
	elem := ValueType(et)
	n, err := c.u64("array length")
	if err != nil {
		return Value{}, err
	}
	v := Value{Type: TypeArray, Elem: elem, valid: true}
	var minSize uint64
	switch {
	case elem.scalarSize() > 0:
		minSize = uint64(elem.scalarSize())
	case elem == TypeString:
		minSize = 8
	case elem == TypeArray:
		minSize = 4 + 8
	default:
		return v, fmt.Errorf("array at offset %d: unknown element type %d: %w", at, et, ErrInvalid)
	}
	if n > c.remaining()/minSize {
		return v, fmt.Errorf("array at offset %d: %d elements of type %v cannot fit in the %d bytes left: %w", at, n, elem, c.remaining(), ErrInvalid)
	}
	switch elem {
	case TypeString:
		v.strs = make([]string, n)
		for i := range v.strs {
			if v.strs[i], err = c.str("string", maxStringLen); err != nil {
				return v, fmt.Errorf("array element %d: %w", i, err)
			}
		}
	case TypeArray:
		v.vals = make([]Value, n)
		for i := range v.vals {
			if v.vals[i], err = c.array(depth + 1); err != nil {
				return v, fmt.Errorf("array element %d: %w", i, err)
			}
		}
	default:
		size := minSize
		b, err := c.take(n*size, "array data") // n*size <= remaining: no overflow
		if err != nil {
			return v, err
		}
		v.nums = make([]uint64, n)
		for i := range v.nums {
			x := decodeScalar(elem, b[uint64(i)*size:])
			if elem == TypeBool && x > 1 {
				return v, fmt.Errorf("array element %d: bool at offset %d is %d, want 0 or 1: %w", i, at+12+uint64(i), x, ErrInvalid)
			}
			v.nums[i] = x
		}
	}
	return v, nil
}

// decodeScalar widens a fixed-size value to Value.num's encoding: integers
// sign- or zero-extended, floats as their own bits (exact round trips, NaN
// payloads included).
func decodeScalar(t ValueType, b []byte) uint64 {
	le := binary.LittleEndian
	switch t {
	case TypeUint8, TypeBool:
		return uint64(b[0])
	case TypeInt8:
		return uint64(int64(int8(b[0])))
	case TypeUint16:
		return uint64(le.Uint16(b))
	case TypeInt16:
		return uint64(int64(int16(le.Uint16(b))))
	case TypeUint32, TypeFloat32:
		return uint64(le.Uint32(b))
	case TypeInt32:
		return uint64(int64(int32(le.Uint32(b))))
	}
	return le.Uint64(b) // u64, i64, f64
}

// tensorInfo decodes one gguf_tensor_info_t and checks what can be checked
// without the data section: dims, type, block divisibility, byte size.
func (c *cursor) tensorInfo() (TensorInfo, error) {
	var ti TensorInfo
	name, err := c.str("tensor name", maxNameLen)
	if err != nil {
		return ti, err
	}
	ti.Name = name
	shapeAt := c.off
	nd, err := c.u32("n_dims")
	if err != nil {
		return ti, err
	}
	if nd > maxDims {
		return ti, fmt.Errorf("n_dims %d at offset %d exceeds %d: %w", nd, shapeAt, maxDims, ErrInvalid)
	}
	ti.Dims = make([]uint64, nd)
	for j := range ti.Dims {
		at := c.off
		if ti.Dims[j], err = c.u64("dimension"); err != nil {
			return ti, err
		}
		// ggml stores ne as int64; the product is checked in byteSize.
		if ti.Dims[j] > math.MaxInt64 {
			return ti, fmt.Errorf("dimension %d = %d at offset %d is negative as int64: %w", j, ti.Dims[j], at, ErrInvalid)
		}
	}
	at := c.off
	t, err := c.u32("type")
	if err != nil {
		return ti, err
	}
	ti.Type = GGMLType(t)
	if !ti.Type.Known() {
		return ti, fmt.Errorf("unknown ggml type id %d at offset %d: %w", t, at, ErrInvalid)
	}
	if _, err := ti.byteSize(); err != nil {
		return ti, fmt.Errorf("tensor info at offset %d: %w", shapeAt, err)
	}
	if ti.Offset, err = c.u64("data offset"); err != nil {
		return ti, err
	}
	return ti, nil
}

// locate checks the tensor's offset against the data section, which starts
// at file offset base, and sets Data.
func (ti *TensorInfo) locate(section []byte, align, base uint64) error {
	size, err := ti.byteSize()
	if err != nil {
		return err
	}
	if ti.Offset%align != 0 {
		return fmt.Errorf("data offset %d is not a multiple of the alignment %d: %w", ti.Offset, align, ErrInvalid)
	}
	if ti.Offset > uint64(len(section)) {
		return fmt.Errorf("data offset %d is past the end of the %d-byte data section at file offset %d: %w",
			ti.Offset, len(section), base, ErrInvalid)
	}
	if size > uint64(len(section))-ti.Offset {
		return fmt.Errorf("%d bytes of %v %v data at file offset %d run past the end of the file (%d bytes): %w",
			size, ti.Type, ti.Dims, base+ti.Offset, base+uint64(len(section)), ErrInvalid)
	}
	ti.Data = section[ti.Offset : ti.Offset+size : ti.Offset+size]
	return nil
}
