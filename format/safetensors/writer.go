package safetensors

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"unicode/utf8"

	"github.com/lorakit/lorakit/tensor"
)

// Writable is a tensor to write. Data holds NumElements(Shape) × DType.Size()
// little-endian bytes; the helpers below produce it from Go slices.
type Writable struct {
	Name  string
	DType tensor.DType
	Shape []int
	Data  []byte
}

// F32Bytes encodes v as little-endian float32.
func F32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// BF16Bytes encodes v as little-endian bfloat16, rounding to nearest even
// as torch does.
func BF16Bytes(v []float32) []byte {
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[2*i:], tensor.F32ToBF16(x))
	}
	return b
}

// F16Bytes encodes v as little-endian IEEE binary16, rounding to nearest
// even, overflowing to ±Inf.
func F16Bytes(v []float32) []byte {
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[2*i:], tensor.F32ToF16(x))
	}
	return b
}

// I64Bytes encodes v as little-endian int64.
func I64Bytes(v []int64) []byte {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(x))
	}
	return b
}

// dtypeRank is the position of each dtype in the Rust reference's Dtype enum
// (BOOL < U8 < I8 < ... < F32 < F64 < I64), which it documents as
// "increasing alignment order".
var dtypeRank = map[tensor.DType]int{
	tensor.BOOL: 0, tensor.U8: 1, tensor.I8: 2, tensor.I16: 3, tensor.F16: 4,
	tensor.BF16: 5, tensor.I32: 6, tensor.F32: 7, tensor.F64: 8, tensor.I64: 9,
}

// checkWritables validates tensors for writing to file and returns the
// total data size.
func checkWritables(file string, tensors []Writable) (int64, error) {
	seen := make(map[string]struct{}, len(tensors))
	var total int64
	for _, t := range tensors {
		bad := func(format string, args ...any) error {
			return fmt.Errorf("safetensors %s: tensor %q: %s", file, t.Name, fmt.Sprintf(format, args...))
		}
		switch {
		case t.Name == "":
			return 0, bad("empty name")
		case t.Name == metadataKey:
			return 0, bad("reserved name")
		case !utf8.ValidString(t.Name):
			return 0, bad("name is not valid UTF-8")
		case !t.DType.Valid():
			return 0, bad("unsupported dtype %q", t.DType)
		}
		if _, dup := seen[t.Name]; dup {
			return 0, bad("duplicate name")
		}
		seen[t.Name] = struct{}{}
		n, err := tensor.NumElements(t.Shape)
		if err != nil {
			return 0, bad("%v", err)
		}
		if n > math.MaxInt/t.DType.Size() || len(t.Data) != n*t.DType.Size() {
			return 0, bad("%d data bytes, but %s%v needs %d", len(t.Data), t.DType, t.Shape, n*t.DType.Size())
		}
		total += int64(len(t.Data))
	}
	return total, nil
}

// header builds the padded JSON header and returns the tensors in the order
// their data must follow it.
//
// Order: as the Rust/Python safetensors writer (serialize/save_file) does,
// by dtype in decreasing alignment order, then by name. With the header padded
// to a multiple of 8 this keeps every tensor's data aligned to its element
// size within the file, so a mapped tensor can be reinterpreted in place; and
// it makes our output byte-identical to Python's for the same tensors and
// metadata (metadata keys are written sorted; Python's order is a HashMap's).
func header(file string, tensors []Writable, metadata map[string]string) ([]byte, []Writable, error) {
	keys := make([]string, 0, len(metadata))
	for k, v := range metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return nil, nil, fmt.Errorf("safetensors %s: metadata %q: not valid UTF-8", file, k)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)

	order := append([]Writable(nil), tensors...)
	sort.SliceStable(order, func(i, j int) bool {
		ri, rj := dtypeRank[order[i].DType], dtypeRank[order[j].DType]
		if ri != rj {
			return ri > rj
		}
		return order[i].Name < order[j].Name
	})

	b := []byte{'{'}
	if len(keys) > 0 { // like the reference, omit __metadata__ rather than write {}
		b = appendSerdeString(b, metadataKey)
		b = append(b, ':', '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendSerdeString(b, k)
			b = append(b, ':')
			b = appendSerdeString(b, metadata[k])
		}
		b = append(b, '}')
	}
	offset := 0
	for i, t := range order {
		if i > 0 || len(keys) > 0 {
			b = append(b, ',')
		}
		b = appendSerdeString(b, t.Name)
		b = append(b, `:{"dtype":`...)
		b = appendSerdeString(b, string(t.DType))
		b = append(b, `,"shape":[`...)
		for j, d := range t.Shape {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(d), 10)
		}
		b = append(b, `],"data_offsets":[`...)
		b = strconv.AppendInt(b, int64(offset), 10)
		b = append(b, ',')
		offset += len(t.Data)
		b = strconv.AppendInt(b, int64(offset), 10)
		b = append(b, ']', '}')
	}
	b = append(b, '}')
	// Pad with spaces (valid trailing JSON whitespace) so the data buffer
	// starts 8-aligned, as the reference writer does.
	for len(b)%8 != 0 {
		b = append(b, ' ')
	}
	if len(b) > MaxHeaderSize {
		return nil, nil, fmt.Errorf("safetensors %s: header of %d bytes exceeds the %d-byte limit readers enforce", file, len(b), MaxHeaderSize)
	}
	return b, order, nil
}

// Write writes tensors and metadata (the header's __metadata__, e.g.
// {"format": "pt"} as transformers writes; nil or empty writes none) to path
// atomically (see WriteFileAtomic). Tensor data is streamed, not copied.
func Write(path string, tensors []Writable, metadata map[string]string) error {
	hdr, order, err := prepare(path, tensors, metadata)
	if err != nil {
		return err
	}
	return writeAtomic(path, func(w io.Writer) error { return writeTo(w, hdr, order) })
}

// Marshal returns the bytes Write would write, for in-memory use (tests,
// embedding, sending over the network).
func Marshal(tensors []Writable, metadata map[string]string) ([]byte, error) {
	hdr, order, err := prepare("(memory)", tensors, metadata)
	if err != nil {
		return nil, err
	}
	size := 8 + len(hdr)
	for _, t := range order {
		size += len(t.Data)
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	if err := writeTo(buf, hdr, order); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func prepare(file string, tensors []Writable, metadata map[string]string) ([]byte, []Writable, error) {
	if _, err := checkWritables(file, tensors); err != nil {
		return nil, nil, err
	}
	return header(file, tensors, metadata)
}

func writeTo(w io.Writer, hdr []byte, order []Writable) error {
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(hdr)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	for _, t := range order {
		if _, err := w.Write(t.Data); err != nil {
			return err
		}
	}
	return nil
}
