package safetensors

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"sync"

	"github.com/lorakit/lorakit/tensor"
)

// Tensor is one tensor of a File. Data is the raw little-endian, row-major
// bytes: a read-only view into the file's memory map or the buffer given to
// Parse. Do not modify it (a mapped file is read-only and writing faults),
// and do not use it after the File is closed.
type Tensor struct {
	Name  string
	DType tensor.DType
	Shape []int
	Data  []byte
}

// NumElements is the product of Shape (1 for a 0-dim scalar), or 0 if the
// shape is invalid; tensors from a File always have valid shapes.
func (t Tensor) NumElements() int {
	n, err := tensor.NumElements(t.Shape)
	if err != nil {
		return 0
	}
	return n
}

// Writable converts t for Write, e.g. to re-save tensors read from a file.
func (t Tensor) Writable() Writable {
	return Writable{Name: t.Name, DType: t.DType, Shape: t.Shape, Data: t.Data}
}

// check guards the conversions against hand-built Tensors whose Data does not
// match their Shape, so they return an error instead of panicking.
func (t Tensor) check() (int, error) {
	size := t.DType.Size()
	if size == 0 {
		return 0, fmt.Errorf("safetensors: tensor %q: unsupported dtype %q", t.Name, t.DType)
	}
	n, err := tensor.NumElements(t.Shape)
	if err != nil {
		return 0, fmt.Errorf("safetensors: tensor %q: %w", t.Name, err)
	}
	if n > math.MaxInt/size || len(t.Data) != n*size {
		return 0, fmt.Errorf("safetensors: tensor %q: %d data bytes do not match %s%v", t.Name, len(t.Data), t.DType, t.Shape)
	}
	return n, nil
}

// Float32 returns the elements as a new []float32, widening F16/BF16 exactly
// and rounding F64 to nearest.
func (t Tensor) Float32() ([]float32, error) {
	switch t.DType {
	case tensor.F32, tensor.F16, tensor.BF16, tensor.F64:
	default:
		return nil, fmt.Errorf("safetensors: tensor %q: dtype %s is not a float type", t.Name, t.DType)
	}
	n, err := t.check()
	if err != nil {
		return nil, err
	}
	out := make([]float32, n)
	d := t.Data
	le := binary.LittleEndian
	switch t.DType {
	case tensor.F32:
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(d[4*i:]))
		}
	case tensor.F16:
		for i := range out {
			out[i] = tensor.F16ToF32(le.Uint16(d[2*i:]))
		}
	case tensor.BF16:
		for i := range out {
			out[i] = tensor.BF16ToF32(le.Uint16(d[2*i:]))
		}
	case tensor.F64:
		for i := range out {
			out[i] = float32(math.Float64frombits(le.Uint64(d[8*i:])))
		}
	}
	return out, nil
}

// Int64 returns the elements as a new []int64, sign-extending I32/I16/I8 and
// zero-extending U8 and BOOL.
func (t Tensor) Int64() ([]int64, error) {
	switch t.DType {
	case tensor.I64, tensor.I32, tensor.I16, tensor.I8, tensor.U8, tensor.BOOL:
	default:
		return nil, fmt.Errorf("safetensors: tensor %q: dtype %s is not an integer type", t.Name, t.DType)
	}
	n, err := t.check()
	if err != nil {
		return nil, err
	}
	out := make([]int64, n)
	d := t.Data
	le := binary.LittleEndian
	switch t.DType {
	case tensor.I64:
		for i := range out {
			out[i] = int64(le.Uint64(d[8*i:]))
		}
	case tensor.I32:
		for i := range out {
			out[i] = int64(int32(le.Uint32(d[4*i:])))
		}
	case tensor.I16:
		for i := range out {
			out[i] = int64(int16(le.Uint16(d[2*i:])))
		}
	case tensor.I8:
		for i := range out {
			out[i] = int64(int8(d[i]))
		}
	case tensor.U8, tensor.BOOL:
		for i := range out {
			out[i] = int64(d[i])
		}
	}
	return out, nil
}

// File is one parsed safetensors file.
type File struct {
	Path     string            // the path given to Open, or the name given to Parse
	Metadata map[string]string // the header's __metadata__; empty, never nil, if absent

	mu      sync.Mutex
	raw     []byte // the whole file (mapped or in memory)
	mapped  bool
	names   []string // data-offset order
	tensors map[string]Tensor
}

// Open reads path with a read-only memory map, so opening a multi-GB model
// costs page-table entries, not RAM; if mapping fails (empty file, a
// filesystem without mmap, a platform without it) it reads the file instead.
// The whole file is validated before Open returns.
//
// The mapping reflects the file on disk: truncating or rewriting it in place
// while it is open makes reads fault (SIGBUS). Replace files atomically
// (Write, WriteFileAtomic) instead; a rename leaves open mappings intact.
func Open(path string) (*File, error) {
	// I/O errors are *fs.PathError, which already name the file.
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fileErr(path, "not a regular file")
	}
	if st.Size() > math.MaxInt {
		return nil, fileErr(path, "file of %d bytes is too large for this platform", st.Size())
	}
	var raw []byte
	mapped := false
	if st.Size() > 0 {
		if m, err := mmapFile(f, int(st.Size())); err == nil {
			raw, mapped = m, true
		}
	}
	if !mapped {
		// Read through the open descriptor rather than os.ReadFile(path) so
		// we read the same file we stat'ed even if path is replaced meanwhile.
		if raw, err = io.ReadAll(f); err != nil {
			return nil, fmt.Errorf("safetensors: %w", err)
		}
	}
	sf, err := Parse(path, raw)
	if err != nil {
		if mapped {
			_ = munmap(raw)
		}
		return nil, err
	}
	sf.mapped = mapped
	return sf, nil
}

// Parse parses a whole safetensors file held in memory, e.g. an embedded
// model. name is used as the file name in errors and as File.Path. The
// returned tensors alias data, which must not be modified afterwards.
func Parse(name string, data []byte) (*File, error) {
	meta, entries, buf, err := layout(name, data)
	if err != nil {
		return nil, err
	}
	f := &File{
		Path:     name,
		Metadata: meta,
		raw:      data,
		names:    make([]string, len(entries)),
		tensors:  make(map[string]Tensor, len(entries)),
	}
	for i, e := range entries {
		f.names[i] = e.name
		// Full slice expression: an append to Data must not scribble over the
		// next tensor.
		f.tensors[e.name] = Tensor{Name: e.name, DType: e.dtype, Shape: e.shape, Data: buf[e.begin:e.end:e.end]}
	}
	return f, nil
}

// Names lists the tensors in data-offset order (file order, which is also
// the cheapest order to read a mapped file in).
func (f *File) Names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.names...)
}

// Tensor looks a tensor up by name. It reports false after Close.
func (f *File) Tensor(name string) (Tensor, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.tensors[name]
	return t, ok
}

// Close unmaps the file. Tensor.Data slices obtained earlier become invalid:
// touching them after Close crashes the process (it is unmapped memory, not
// a Go panic), so close only when nothing uses the tensors any more. There is
// deliberately no finalizer doing this, since Tensors do not keep the File
// reachable. Close is idempotent.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	raw, mapped := f.raw, f.mapped
	f.raw, f.mapped, f.names, f.tensors = nil, false, nil, nil
	if mapped {
		if err := munmap(raw); err != nil {
			return fmt.Errorf("safetensors %s: munmap: %w", f.Path, err)
		}
	}
	return nil
}
