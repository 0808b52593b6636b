package tensor

import (
	"encoding/binary"
	"fmt"
)

// Is16 reports whether d is a 16-bit float type (BF16 or F16), the types
// weights can be held in without widening.
func (d DType) Is16() bool { return d == BF16 || d == F16 }

// Narrow rounds each src[i] to dtype d (BF16 or F16, nearest even, as torch's
// .to does) into dst[i]. It panics on another dtype.
func Narrow(d DType, dst []uint16, src []float32) {
	dst = dst[:len(src)]
	switch d {
	case BF16:
		for i, v := range src {
			dst[i] = F32ToBF16(v)
		}
	case F16:
		for i, v := range src {
			dst[i] = F32ToF16(v)
		}
	default:
		panic(fmt.Sprintf("tensor.Narrow: %s is not a 16-bit float type", d))
	}
}

// Widen sets dst[i] to the dtype d (BF16 or F16) value src[i] as a float32,
// exactly. It panics on another dtype.
func Widen(d DType, dst []float32, src []uint16) {
	dst = dst[:len(src)]
	switch d {
	case BF16:
		for i, v := range src {
			dst[i] = BF16ToF32(v)
		}
	case F16:
		for i, v := range src {
			dst[i] = F16ToF32(v)
		}
	default:
		panic(fmt.Sprintf("tensor.Widen: %s is not a 16-bit float type", d))
	}
}

// Uint16s decodes little-endian 16-bit values (a BF16 or F16 tensor's raw
// bytes) into a new slice.
func Uint16s(b []byte) []uint16 {
	v := make([]uint16, len(b)/2)
	for i := range v {
		v[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return v
}

// Uint16Bytes encodes v as little-endian bytes, the inverse of Uint16s.
func Uint16Bytes(v []uint16) []byte {
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[2*i:], x)
	}
	return b
}
