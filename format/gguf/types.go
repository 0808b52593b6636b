package gguf

import "fmt"

// GGMLType is a tensor element type (ggml's enum ggml_type).
type GGMLType uint32

// Type ids from the spec. 4, 5 (Q4_2, Q4_3) and 31-33, 36-38 (repacked
// layouts) were removed from ggml and are not valid in files.
const (
	F32     GGMLType = 0
	F16     GGMLType = 1
	Q4_0    GGMLType = 2
	Q4_1    GGMLType = 3
	Q5_0    GGMLType = 6
	Q5_1    GGMLType = 7
	Q8_0    GGMLType = 8
	Q8_1    GGMLType = 9
	Q2_K    GGMLType = 10
	Q3_K    GGMLType = 11
	Q4_K    GGMLType = 12
	Q5_K    GGMLType = 13
	Q6_K    GGMLType = 14
	Q8_K    GGMLType = 15
	IQ2_XXS GGMLType = 16
	IQ2_XS  GGMLType = 17
	IQ3_XXS GGMLType = 18
	IQ1_S   GGMLType = 19
	IQ4_NL  GGMLType = 20
	IQ3_S   GGMLType = 21
	IQ2_S   GGMLType = 22
	IQ4_XS  GGMLType = 23
	I8      GGMLType = 24
	I16     GGMLType = 25
	I32     GGMLType = 26
	I64     GGMLType = 27
	F64     GGMLType = 28
	IQ1_M   GGMLType = 29
	BF16    GGMLType = 30
	TQ1_0   GGMLType = 34
	TQ2_0   GGMLType = 35
	MXFP4   GGMLType = 39
)

// typeInfo is a type's name, elements per block and bytes per block. The
// sizes are ggml's sizeof(block_*), which a reader must know to find where
// a tensor ends even when it cannot dequantise it.
type typeInfo struct {
	name  string
	block uint64
	size  uint64
}

const qkK = 256 // ggml's QK_K, the super-block of the k-quants

var typeInfos = map[GGMLType]typeInfo{
	F32:  {"F32", 1, 4},
	F16:  {"F16", 1, 2},
	Q4_0: {"Q4_0", 32, 2 + 16},
	Q4_1: {"Q4_1", 32, 2 + 2 + 16},
	Q5_0: {"Q5_0", 32, 2 + 4 + 16},
	Q5_1: {"Q5_1", 32, 2 + 2 + 4 + 16},
	Q8_0: {"Q8_0", 32, 2 + 32},
	// ggml's block_q8_1 holds two f16 (d, s): 36 bytes. (gguf-py's table
	// still says 4+4+32 from when they were f32; the C reader is what loads
	// files, and Q8_1 is an activation format that files do not carry.)
	Q8_1:    {"Q8_1", 32, 2 + 2 + 32},
	Q2_K:    {"Q2_K", qkK, 2 + 2 + qkK/16 + qkK/4},
	Q3_K:    {"Q3_K", qkK, 2 + qkK/4 + qkK/8 + 12},
	Q4_K:    {"Q4_K", qkK, 2 + 2 + qkK/2 + 12},
	Q5_K:    {"Q5_K", qkK, 2 + 2 + qkK/2 + qkK/8 + 12},
	Q6_K:    {"Q6_K", qkK, 2 + qkK/2 + qkK/4 + qkK/16},
	Q8_K:    {"Q8_K", qkK, 4 + qkK + qkK/8},
	IQ2_XXS: {"IQ2_XXS", qkK, 2 + qkK/4},
	IQ2_XS:  {"IQ2_XS", qkK, 2 + qkK/4 + qkK/32},
	IQ3_XXS: {"IQ3_XXS", qkK, 2 + qkK/4 + qkK/8},
	IQ1_S:   {"IQ1_S", qkK, 2 + qkK/8 + qkK/16},
	IQ4_NL:  {"IQ4_NL", 32, 2 + 16},
	IQ3_S:   {"IQ3_S", qkK, 2 + qkK/4 + qkK/8 + qkK/32 + 4},
	IQ2_S:   {"IQ2_S", qkK, 2 + qkK/4 + qkK/16},
	IQ4_XS:  {"IQ4_XS", qkK, 2 + 2 + qkK/2 + qkK/64},
	I8:      {"I8", 1, 1},
	I16:     {"I16", 1, 2},
	I32:     {"I32", 1, 4},
	I64:     {"I64", 1, 8},
	F64:     {"F64", 1, 8},
	IQ1_M:   {"IQ1_M", qkK, qkK/8 + qkK/16 + qkK/32},
	BF16:    {"BF16", 1, 2},
	TQ1_0:   {"TQ1_0", qkK, 2 + 4*13},
	TQ2_0:   {"TQ2_0", qkK, 2 + 64},
	MXFP4:   {"MXFP4", 32, 1 + 16},
}

// Known reports whether t is a type id this package can size.
func (t GGMLType) Known() bool { _, ok := typeInfos[t]; return ok }

// String is ggml's name for t, or "type(N)" for an unknown id.
func (t GGMLType) String() string {
	if ti, ok := typeInfos[t]; ok {
		return ti.name
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// BlockSize is the number of elements per block (1 for plain types), 0 if unknown.
func (t GGMLType) BlockSize() int { return int(typeInfos[t].block) }

// BlockBytes is the number of bytes per block, 0 if unknown.
func (t GGMLType) BlockBytes() int { return int(typeInfos[t].size) }

// ValueType is the type tag of a metadata value (gguf_metadata_value_type).
type ValueType uint32

const (
	TypeUint8   ValueType = 0
	TypeInt8    ValueType = 1
	TypeUint16  ValueType = 2
	TypeInt16   ValueType = 3
	TypeUint32  ValueType = 4
	TypeInt32   ValueType = 5
	TypeFloat32 ValueType = 6
	TypeBool    ValueType = 7
	TypeString  ValueType = 8
	TypeArray   ValueType = 9
	TypeUint64  ValueType = 10
	TypeInt64   ValueType = 11
	TypeFloat64 ValueType = 12
)

var valueTypeNames = [...]string{"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"}

func (t ValueType) String() string {
	if int(t) < len(valueTypeNames) {
		return valueTypeNames[t]
	}
	return fmt.Sprintf("value_type(%d)", uint32(t))
}

// scalarSize is the encoded size of a fixed-size value type, 0 for string,
// array and unknown types.
func (t ValueType) scalarSize() int {
	switch t {
	case TypeUint8, TypeInt8, TypeBool:
		return 1
	case TypeUint16, TypeInt16:
		return 2
	case TypeUint32, TypeInt32, TypeFloat32:
		return 4
	case TypeUint64, TypeInt64, TypeFloat64:
		return 8
	}
	return 0
}

func (t ValueType) isInt() bool {
	switch t {
	case TypeUint8, TypeInt8, TypeUint16, TypeInt16, TypeUint32, TypeInt32, TypeUint64, TypeInt64:
		return true
	}
	return false
}

func (t ValueType) isSigned() bool {
	return t == TypeInt8 || t == TypeInt16 || t == TypeInt32 || t == TypeInt64
}
