package nf4

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Entry is one tensor of a safetensors file, in plain types so that this
// package does not depend on the file format's package.
type Entry struct {
	Name  string
	DType string // safetensors dtype: "U8" or "F32" here
	Shape []int
	Data  []byte // little-endian
}

// Key suffixes of the tensors bitsandbytes writes beside a 4-bit weight W
// (Linear4bit._save_to_state_dict → QuantState.as_dict(packed=True)):
//
//	W                                    U8  [(n+1)/2, 1]   packed codes
//	W.absmax                             U8  [blocks]       (F32 without double quantization)
//	W.quant_map                          F32 [16]           Code
//	W.nested_absmax                      F32 [ceil(blocks/256)]
//	W.nested_quant_map                   F32 [256]          DynamicCode
//	W.quant_state.bitsandbytes__nf4      U8  [len]          JSON of the rest
//
// The JSON blob is json.dumps of {"quant_type", "blocksize", "dtype",
// "shape", "nested_blocksize", "nested_dtype", "nested_offset"} (the nested
// keys only when double quantized), encoded as UTF-8 bytes.
const (
	SuffixAbsmax         = ".absmax"
	SuffixQuantMap       = ".quant_map"
	SuffixNestedAbsmax   = ".nested_absmax"
	SuffixNestedQuantMap = ".nested_quant_map"
	SuffixQuantState     = ".quant_state.bitsandbytes__nf4"
)

// quantState is the JSON blob; field order is bitsandbytes'.
type quantState struct {
	QuantType       string   `json:"quant_type"`
	Blocksize       int      `json:"blocksize"`
	DType           string   `json:"dtype"`
	Shape           []int    `json:"shape"`
	NestedBlocksize *int     `json:"nested_blocksize,omitempty"`
	NestedDType     *string  `json:"nested_dtype,omitempty"`
	NestedOffset    *float64 `json:"nested_offset,omitempty"`
}

// IsQuantized reports whether a safetensors file that has key reports W as
// an NF4 weight (it has W's quant state blob).
func IsQuantized(name string, has func(key string) bool) bool {
	return has(name + SuffixQuantState)
}

// Entries lists the tensors that store t under the weight name (for example
// "model.layers.0.self_attn.q_proj.weight"), as bitsandbytes and
// transformers write a 4-bit model. Data slices alias t's where the layout
// allows (Packed, QAbsmax).
func (t *Tensor) Entries(name string) []Entry {
	nb := t.Blocks()
	dtype := t.DType
	if dtype == "" {
		dtype = "float32"
	}
	es := []Entry{{Name: name, DType: "U8", Shape: []int{len(t.Packed), 1}, Data: t.Packed}}
	if t.DoubleQuant() {
		es = append(es, Entry{Name: name + SuffixAbsmax, DType: "U8", Shape: []int{nb}, Data: t.QAbsmax})
	} else {
		es = append(es, Entry{Name: name + SuffixAbsmax, DType: "F32", Shape: []int{nb}, Data: f32Bytes(t.Absmax)})
	}
	es = append(es, Entry{Name: name + SuffixQuantMap, DType: "F32", Shape: []int{16}, Data: f32Bytes(Code[:])})
	var blob bytes.Buffer
	fmt.Fprintf(&blob, `{"quant_type": "nf4", "blocksize": %d, "dtype": %q, "shape": [%d, %d]`, BlockSize, dtype, t.Rows, t.Cols)
	if t.DoubleQuant() {
		es = append(es,
			Entry{Name: name + SuffixNestedAbsmax, DType: "F32", Shape: []int{len(t.NestedAbsmax)}, Data: f32Bytes(t.NestedAbsmax)},
			Entry{Name: name + SuffixNestedQuantMap, DType: "F32", Shape: []int{256}, Data: f32Bytes(t.nestedCode()[:])})
		fmt.Fprintf(&blob, `, "nested_blocksize": %d, "nested_dtype": "float32", "nested_offset": %s`, NestedBlockSize, pyFloat(float64(t.Offset)))
	}
	blob.WriteString("}")
	es = append(es, Entry{Name: name + SuffixQuantState, DType: "U8", Shape: []int{blob.Len()}, Data: blob.Bytes()})
	return es
}

// pyFloat formats v as Python's repr(float) does (json.dumps uses it):
// shortest round-trip digits, exponent form below 1e-4 and from 1e16.
func pyFloat(v float64) string {
	if v == 0 {
		if math.Signbit(v) {
			return "-0.0"
		}
		return "0.0"
	}
	s := strconv.FormatFloat(v, 'e', -1, 64) // d.ddde±XX
	mant, expStr, _ := strings.Cut(s, "e")
	exp, _ := strconv.Atoi(expStr)
	neg := strings.HasPrefix(mant, "-")
	digits := strings.Replace(strings.TrimPrefix(mant, "-"), ".", "", 1)
	sign := ""
	if neg {
		sign = "-"
	}
	if exp < -4 || exp >= 16 {
		m := digits[:1]
		if len(digits) > 1 {
			m += "." + digits[1:]
		}
		es := "+"
		if exp < 0 {
			es, exp = "-", -exp
		}
		return fmt.Sprintf("%s%se%s%02d", sign, m, es, exp)
	}
	if exp < 0 {
		return sign + "0." + strings.Repeat("0", -exp-1) + digits
	}
	if len(digits) <= exp+1 {
		return sign + digits + strings.Repeat("0", exp+1-len(digits)) + ".0"
	}
	return sign + digits[:exp+1] + "." + digits[exp+1:]
}

func f32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return b
}

func f32FromBytes(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// storageSize is the element size of the dtypes bitsandbytes' quant_storage
// may view the packed bytes as.
var storageSize = map[string]int{"U8": 1, "I8": 1, "F16": 2, "BF16": 2, "F32": 4}

// maxBlob bounds the quant state JSON accepted from a file.
const maxBlob = 1 << 16

// FromEntries reads the NF4 weight name from the tensors get returns (key →
// safetensors dtype, shape, little-endian data), as Entries writes them or
// bitsandbytes/transformers save them. Every size, shape, dtype and field of
// the JSON blob is checked; errors name the tensor. Packed and QAbsmax alias
// the returned data, which must stay unmodified while the tensor is used.
func FromEntries(name string, get func(key string) (dtype string, shape []int, data []byte, ok bool)) (*Tensor, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("nf4: tensor %q: %s", name, fmt.Sprintf(format, args...))
	}
	// load fetches key and checks its dtype and that shape matches data.
	load := func(suffix string, want string) (shape []int, data []byte, ok bool, err error) {
		dtype, shape, data, ok := get(name + suffix)
		if !ok {
			return nil, nil, false, nil
		}
		if dtype != want {
			return nil, nil, true, fail("%s has dtype %s, want %s", name+suffix, dtype, want)
		}
		size := 1
		if want == "F32" {
			size = 4
		}
		count := 1
		for _, d := range shape {
			if d < 0 || (d > 0 && count > math.MaxInt32/d) {
				return nil, nil, true, fail("%s has an invalid shape %v", name+suffix, shape)
			}
			count *= d
		}
		if len(data) != count*size {
			return nil, nil, true, fail("%s has %d bytes for shape %v (want %d)", name+suffix, len(data), shape, count*size)
		}
		return shape, data, true, nil
	}

	// The quant state blob.
	_, blob, ok, err := load(SuffixQuantState, "U8")
	if err != nil {
		return nil, err
	}
	if !ok {
		if _, _, _, fp4 := get(name + ".quant_state.bitsandbytes__fp4"); fp4 {
			return nil, fail("is FP4-quantized; only NF4 is supported")
		}
		return nil, fail("missing %s (not an NF4 weight)", name+SuffixQuantState)
	}
	if len(blob) > maxBlob {
		return nil, fail("quant state is %d bytes (at most %d)", len(blob), maxBlob)
	}
	var qs quantState
	dec := json.NewDecoder(bytes.NewReader(blob))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&qs); err != nil {
		return nil, fail("bad quant state JSON: %v", err)
	}
	if qs.QuantType != "nf4" {
		return nil, fail("quant_type %q, want \"nf4\"", qs.QuantType)
	}
	if qs.Blocksize != BlockSize {
		return nil, fail("blocksize %d is not supported (only %d)", qs.Blocksize, BlockSize)
	}
	switch qs.DType {
	case "float32", "float16", "bfloat16":
	default:
		return nil, fail("quant state dtype %q, want float32, float16 or bfloat16", qs.DType)
	}
	if len(qs.Shape) != 2 || qs.Shape[0] <= 0 || qs.Shape[1] <= 0 || qs.Shape[0] > math.MaxInt32/qs.Shape[1] {
		return nil, fail("quant state shape %v: want two positive dimensions", qs.Shape)
	}
	t := &Tensor{Rows: qs.Shape[0], Cols: qs.Shape[1], DType: qs.DType}
	n := t.Len()
	nb := t.Blocks()

	// Packed codes: U8 [(n+1)/2, 1], or the same bytes viewed as another
	// dtype (bitsandbytes' quant_storage option).
	dtype, shape, data, ok := get(name)
	if !ok {
		return nil, fail("missing the packed weight")
	}
	if _, known := storageSize[dtype]; !known {
		return nil, fail("packed weight has dtype %s, want U8", dtype)
	}
	count := 1
	for _, d := range shape {
		if d < 0 || (d > 0 && count > math.MaxInt32/d) {
			return nil, fail("packed weight has an invalid shape %v", shape)
		}
		count *= d
	}
	if want := (n + 1) / 2; len(data) != want || count*storageSize[dtype] != want || !(len(shape) == 2 && shape[1] == 1 || len(shape) == 1) {
		return nil, fail("packed weight is %s %v (%d bytes), want U8 [%d, 1] for [%d, %d]", dtype, shape, len(data), want, t.Rows, t.Cols)
	}
	t.Packed = data

	// quant_map must be NF4's.
	_, data, ok, err = load(SuffixQuantMap, "F32")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fail("missing %s", name+SuffixQuantMap)
	}
	qm := f32FromBytes(data)
	if len(qm) != 16 {
		return nil, fail("%s has %d values, want 16", name+SuffixQuantMap, len(qm))
	}
	for i, v := range qm {
		if v != Code[i] {
			return nil, fail("%s[%d] = %v is not the NF4 code value %v", name+SuffixQuantMap, i, v, Code[i])
		}
	}

	nested := qs.NestedOffset != nil || qs.NestedBlocksize != nil || qs.NestedDType != nil
	absDType := "F32"
	if nested {
		absDType = "U8"
	}
	shape, data, ok, err = load(SuffixAbsmax, absDType)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fail("missing %s", name+SuffixAbsmax)
	}
	elem := 4
	if nested {
		elem = 1
	}
	if len(data)/elem != nb || len(shape) != 1 {
		return nil, fail("%s has shape %v, want [%d]", name+SuffixAbsmax, shape, nb)
	}
	if !nested {
		t.Absmax = f32FromBytes(data)
		for b, v := range t.Absmax {
			if !(v >= 0) || math.IsInf(float64(v), 0) {
				return nil, fail("absmax[%d] = %v is not a finite non-negative number", b, v)
			}
		}
		return t, nil
	}
	t.QAbsmax = data
	if qs.NestedOffset == nil || qs.NestedBlocksize == nil || qs.NestedDType == nil {
		return nil, fail("quant state has only some of nested_offset, nested_blocksize, nested_dtype")
	}
	if *qs.NestedBlocksize != NestedBlockSize {
		return nil, fail("nested_blocksize %d is not supported (only %d)", *qs.NestedBlocksize, NestedBlockSize)
	}
	if *qs.NestedDType != "float32" {
		return nil, fail("nested_dtype %q, want float32", *qs.NestedDType)
	}
	off := float32(*qs.NestedOffset)
	if math.IsNaN(float64(off)) || math.IsInf(float64(off), 0) {
		return nil, fail("nested_offset %v is not finite", *qs.NestedOffset)
	}
	t.Offset = off

	shape, data, ok, err = load(SuffixNestedAbsmax, "F32")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fail("missing %s", name+SuffixNestedAbsmax)
	}
	if want := (nb + NestedBlockSize - 1) / NestedBlockSize; len(data)/4 != want || len(shape) != 1 {
		return nil, fail("%s has shape %v, want [%d]", name+SuffixNestedAbsmax, shape, want)
	}
	t.NestedAbsmax = f32FromBytes(data)
	for i, v := range t.NestedAbsmax {
		if !(v >= 0) || math.IsInf(float64(v), 0) {
			return nil, fail("nested_absmax[%d] = %v is not a finite non-negative number", i, v)
		}
	}

	shape, data, ok, err = load(SuffixNestedQuantMap, "F32")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fail("missing %s", name+SuffixNestedQuantMap)
	}
	if len(data) != 4*256 || len(shape) != 1 {
		return nil, fail("%s has shape %v, want [256]", name+SuffixNestedQuantMap, shape)
	}
	nqm := f32FromBytes(data)
	same := true
	for i, v := range nqm {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) || v < -1 || v > 1 {
			return nil, fail("%s[%d] = %v is outside [-1, 1]", name+SuffixNestedQuantMap, i, v)
		}
		same = same && v == DynamicCode[i]
	}
	if !same {
		t.NestedCode = nqm
	}
	return t, nil
}
