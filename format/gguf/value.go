package gguf

import (
	"fmt"
	"math"
	"slices"
)

// Value is one metadata value. Scalars and array elements are stored
// decoded; strings are copies, never views of the file, so a Value stays
// valid after File.Close.
//
// Build Values with the New* constructors. The zero Value (what a lookup of
// a missing key in File.KV returns) is invalid: every accessor reports false
// on it, so f.KV["absent"].Int() does not yield a spurious 0.
type Value struct {
	Type ValueType
	// Elem is the element type when Type is TypeArray.
	Elem ValueType

	num  uint64   // integer (sign-extended), bool (0/1), f32 or f64 bits
	str  string   // TypeString
	nums []uint64 // numeric and bool arrays, encoded as num
	strs []string // string arrays
	vals []Value  // arrays of arrays

	valid bool // set by the parser and the constructors
}

// Valid reports whether v holds a value (false for the zero Value).
func (v Value) Valid() bool { return v.valid }

// String returns a string value.
func (v Value) String() (string, bool) { return v.str, v.valid && v.Type == TypeString }

// Int returns any integer value as int64; false for non-integers and for
// u64 values above MaxInt64.
func (v Value) Int() (int64, bool) {
	if !v.valid {
		return 0, false
	}
	return asInt(v.Type, v.num)
}

// Uint returns any non-negative integer value as uint64.
func (v Value) Uint() (uint64, bool) {
	if !v.valid {
		return 0, false
	}
	return asUint(v.Type, v.num)
}

// Float returns an f32 or f64 value (integers are not converted, so a
// mistyped key shows up instead of being silently accepted).
func (v Value) Float() (float64, bool) {
	switch {
	case !v.valid:
	case v.Type == TypeFloat32:
		return float64(math.Float32frombits(uint32(v.num))), true
	case v.Type == TypeFloat64:
		return math.Float64frombits(v.num), true
	}
	return 0, false
}

// Bool returns a bool value.
func (v Value) Bool() (bool, bool) { return v.num != 0, v.valid && v.Type == TypeBool }

// Len is the number of elements of an array, 0 for scalars.
func (v Value) Len() int {
	if !v.valid || v.Type != TypeArray {
		return 0
	}
	switch v.Elem {
	case TypeString:
		return len(v.strs)
	case TypeArray:
		return len(v.vals)
	}
	return len(v.nums)
}

// Strings returns (a copy of the slice of) a string array.
func (v Value) Strings() ([]string, bool) {
	if !v.valid || v.Type != TypeArray || v.Elem != TypeString {
		return nil, false
	}
	return slices.Clone(v.strs), true
}

// Ints returns an array of any integer type as int64s; false if the array
// is not of integers or holds a u64 above MaxInt64.
func (v Value) Ints() ([]int64, bool) {
	if !v.valid || v.Type != TypeArray || !v.Elem.isInt() {
		return nil, false
	}
	out := make([]int64, len(v.nums))
	for i, n := range v.nums {
		x, ok := asInt(v.Elem, n)
		if !ok {
			return nil, false
		}
		out[i] = x
	}
	return out, true
}

// Floats returns an f32 array (or an f64 array, rounded to float32).
func (v Value) Floats() ([]float32, bool) {
	if !v.valid || v.Type != TypeArray || (v.Elem != TypeFloat32 && v.Elem != TypeFloat64) {
		return nil, false
	}
	out := make([]float32, len(v.nums))
	for i, n := range v.nums {
		if v.Elem == TypeFloat32 {
			out[i] = math.Float32frombits(uint32(n))
		} else {
			out[i] = float32(math.Float64frombits(n))
		}
	}
	return out, true
}

// Values returns the elements of any array as Values (for nested arrays,
// or to inspect an array whose element type is not known in advance).
func (v Value) Values() ([]Value, bool) {
	if !v.valid || v.Type != TypeArray {
		return nil, false
	}
	switch v.Elem {
	case TypeArray:
		return slices.Clone(v.vals), true
	case TypeString:
		out := make([]Value, len(v.strs))
		for i, s := range v.strs {
			out[i] = NewString(s)
		}
		return out, true
	}
	out := make([]Value, len(v.nums))
	for i, n := range v.nums {
		out[i] = Value{Type: v.Elem, num: n, valid: true}
	}
	return out, true
}

func asInt(t ValueType, n uint64) (int64, bool) {
	if !t.isInt() || (!t.isSigned() && n > math.MaxInt64) {
		return 0, false
	}
	return int64(n), true
}

func asUint(t ValueType, n uint64) (uint64, bool) {
	if !t.isInt() || (t.isSigned() && int64(n) < 0) {
		return 0, false
	}
	return n, true
}

// Constructors, for building metadata to Write.

func NewUint8(x uint8) Value   { return Value{valid: true, Type: TypeUint8, num: uint64(x)} }
func NewInt8(x int8) Value     { return Value{valid: true, Type: TypeInt8, num: uint64(int64(x))} }
func NewUint16(x uint16) Value { return Value{valid: true, Type: TypeUint16, num: uint64(x)} }
func NewInt16(x int16) Value   { return Value{valid: true, Type: TypeInt16, num: uint64(int64(x))} }
func NewUint32(x uint32) Value { return Value{valid: true, Type: TypeUint32, num: uint64(x)} }
func NewInt32(x int32) Value   { return Value{valid: true, Type: TypeInt32, num: uint64(int64(x))} }
func NewUint64(x uint64) Value { return Value{valid: true, Type: TypeUint64, num: x} }
func NewInt64(x int64) Value   { return Value{valid: true, Type: TypeInt64, num: uint64(x)} }
func NewFloat32(x float32) Value {
	return Value{valid: true, Type: TypeFloat32, num: uint64(math.Float32bits(x))}
}
func NewFloat64(x float64) Value {
	return Value{valid: true, Type: TypeFloat64, num: math.Float64bits(x)}
}
func NewString(s string) Value { return Value{valid: true, Type: TypeString, str: s} }

func NewBool(b bool) Value {
	v := Value{valid: true, Type: TypeBool}
	if b {
		v.num = 1
	}
	return v
}

// NewStrings is a string array (e.g. tokenizer.ggml.tokens).
func NewStrings(s []string) Value {
	return Value{valid: true, Type: TypeArray, Elem: TypeString, strs: slices.Clone(s)}
}

// NewInt32s is an i32 array (e.g. tokenizer.ggml.token_type).
func NewInt32s(x []int32) Value {
	v := Value{valid: true, Type: TypeArray, Elem: TypeInt32, nums: make([]uint64, len(x))}
	for i, e := range x {
		v.nums[i] = uint64(int64(e))
	}
	return v
}

// NewUint32s is a u32 array.
func NewUint32s(x []uint32) Value {
	v := Value{valid: true, Type: TypeArray, Elem: TypeUint32, nums: make([]uint64, len(x))}
	for i, e := range x {
		v.nums[i] = uint64(e)
	}
	return v
}

// NewInt64s is an i64 array.
func NewInt64s(x []int64) Value {
	v := Value{valid: true, Type: TypeArray, Elem: TypeInt64, nums: make([]uint64, len(x))}
	for i, e := range x {
		v.nums[i] = uint64(e)
	}
	return v
}

// NewFloat32s is an f32 array (e.g. tokenizer.ggml.scores).
func NewFloat32s(x []float32) Value {
	v := Value{valid: true, Type: TypeArray, Elem: TypeFloat32, nums: make([]uint64, len(x))}
	for i, e := range x {
		v.nums[i] = uint64(math.Float32bits(e))
	}
	return v
}

// NewArray is an array of items that all have type elem; any element type,
// arrays included, is allowed. It panics if an item has another type.
func NewArray(elem ValueType, items []Value) Value {
	v := Value{valid: true, Type: TypeArray, Elem: elem}
	for i, it := range items {
		if !it.valid || it.Type != elem {
			panic(fmt.Sprintf("gguf.NewArray: item %d has type %v, want %v", i, it.Type, elem))
		}
		switch elem {
		case TypeString:
			v.strs = append(v.strs, it.str)
		case TypeArray:
			v.vals = append(v.vals, it)
		default:
			v.nums = append(v.nums, it.num)
		}
	}
	return v
}

// Equal reports whether v and w have the same type and the same encoding
// (floats compare by bits, so NaN equals an identical NaN).
func (v Value) Equal(w Value) bool {
	if v.valid != w.valid || v.Type != w.Type {
		return false
	}
	if v.Type != TypeArray {
		return v.num == w.num && v.str == w.str
	}
	return v.Elem == w.Elem && slices.Equal(v.nums, w.nums) && slices.Equal(v.strs, w.strs) &&
		slices.EqualFunc(v.vals, w.vals, Value.Equal)
}
