package nf4

import "math"

// The two code books of QLoRA's storage format, as bitsandbytes defines them.

// Code holds the 16 NF4 values (bitsandbytes functional.get_4bit_type("nf4"),
// the same table as csrc/kernels.cu nf4_dequantization_lut), index 0..15.
// A stored 4-bit index q dequantizes to Code[q]·absmax.
var Code = [16]float32{
	-1.0,
	-0.6961928009986877,
	-0.5250730514526367,
	-0.39491748809814453,
	-0.28444138169288635,
	-0.18477343022823334,
	-0.09105003625154495,
	0.0,
	0.07958029955625534,
	0.16093020141124725,
	0.24611230194568634,
	0.33791524171829224,
	0.44070982933044434,
	0.5626170039176941,
	0.7229568362236023,
	1.0,
}

// quantizeCode maps a value already divided by its block's absmax to the
// nearest NF4 index. It is bitsandbytes' dQuantizeNF4 (csrc/kernels.cu)
// literally: a decision tree over the midpoints of adjacent code values, each
// comparison a strict x > midpoint, so a value exactly on a midpoint takes
// the lower code. The midpoints are decimal literals rounded to float32; at
// four of them the rounding lands one ulp above the exact midpoint, where the
// tree (and so this package) picks the lower code although the upper one is
// nearer by an ulp (TestTreeIsNearest lists them). NaN fails every
// comparison and lands on index 0, as it does on the GPU.
func quantizeCode(x float32) byte {
	if x > 0.03979014977812767 {
		if x > 0.3893125355243683 {
			if x > 0.6427869200706482 {
				if x > 0.8614784181118011 {
					return 0b1111
				}
				return 0b1110
			}
			if x > 0.5016634166240692 {
				return 0b1101
			}
			return 0b1100
		}
		if x > 0.2035212516784668 {
			if x > 0.2920137718319893 {
				return 0b1011
			}
			return 0b1010
		}
		if x > 0.1202552504837513 {
			return 0b1001
		}
		return 0b1000
	}
	if x > -0.33967943489551544 {
		if x > -0.13791173323988914 {
			if x > -0.045525018125772476 {
				return 0b0111
			}
			return 0b0110
		}
		if x > -0.23460740596055984 {
			return 0b0101
		}
		return 0b0100
	}
	if x > -0.6106329262256622 {
		if x > -0.4599952697753906 {
			return 0b0011
		}
		return 0b0010
	}
	if x > -0.8480964004993439 {
		return 0b0001
	}
	return 0b0000
}

// thresholds are the tree's 15 midpoints in ascending order (index k
// separates codes k and k+1), padded to 16 for branch-free indexing.
var thresholds = [16]float32{
	-0.8480964004993439, -0.6106329262256622, -0.4599952697753906, -0.33967943489551544,
	-0.23460740596055984, -0.13791173323988914, -0.045525018125772476, 0.03979014977812767,
	0.1202552504837513, 0.2035212516784668, 0.2920137718319893, 0.3893125355243683,
	0.5016634166240692, 0.6427869200706482, 0.8614784181118011, 2,
}

// quantizeCodeFinite is quantizeCode for finite x without branches: the same
// four-level search (the tree is a binary search over thresholds), each step
// adding the sign bit of t − x, which is set exactly when x > t (the sign of
// a float difference is always exact).
func quantizeCodeFinite(x float32) byte {
	gt := func(t float32) uint32 { return math.Float32bits(t-x) >> 31 }
	q := gt(thresholds[7]) << 3
	q |= gt(thresholds[(q+3)&15]) << 2
	q |= gt(thresholds[(q+1)&15]) << 1
	q |= gt(thresholds[q&15])
	return byte(q)
}

// DynamicCode is bitsandbytes' 8-bit dynamic code,
// functional.create_dynamic_map(signed=True, max_exponent_bits=7,
// total_bits=8): the code double quantization stores the absmax statistics
// with (written to files as nested_quant_map). Sorted ascending; index 127 is
// 0, index 255 is 1, index 0 is -0.99296875 (−1 is not representable).
var DynamicCode = createDynamicMap()

// createDynamicMap follows create_dynamic_map step by step in float32, as
// PyTorch evaluates it on the CPU:
//
//	for i in range(7):                       # exponent 10^(i-6)
//	    boundaries = torch.linspace(0.1, 1, 2**i + 1, dtype=float32)
//	    means = (boundaries[:-1] + boundaries[1:]) / 2.0
//	    data += (10**(i-6) * means).tolist() + (-10**(i-6) * means).tolist()
//	data += [0, 1.0]; data.sort()
//
// torch.linspace computes element j of n as start + step·j in the first half
// and end − step·(n−1−j) in the second, step = (end − start)/(n − 1), all in
// float32 (ATen's scalar linspace kernel). A float32 tensor times a Python
// float rounds the scalar to float32 first.
func createDynamicMap() [256]float32 {
	var data []float32
	for i := 0; i < 7; i++ {
		n := 1<<i + 1
		b := linspace32(0.1, 1, n)
		scale := float32(1)
		if e := i - 6; e < 0 {
			scale = float32(pow10(e))
		}
		for j := 0; j+1 < n; j++ {
			mean := float32(b[j]+b[j+1]) / 2
			data = append(data, scale*mean)
		}
		for j := 0; j+1 < n; j++ {
			mean := float32(b[j]+b[j+1]) / 2
			data = append(data, -scale*mean)
		}
	}
	data = append(data, 0, 1)
	var out [256]float32
	if len(data) != 256 {
		panic("nf4: dynamic map has the wrong size")
	}
	copy(out[:], data)
	sortFloat32(out[:])
	return out
}

// linspace32 is torch.linspace(start, end, n, dtype=torch.float32).
func linspace32(start, end float32, n int) []float32 {
	step := float32(end-start) / float32(n-1)
	out := make([]float32, n)
	half := n / 2
	for j := range out {
		if j < half {
			out[j] = start + float32(step*float32(j))
		} else {
			out[j] = end - float32(step*float32(n-1-j))
		}
	}
	return out
}

// pow10 is 10**e for e < 0 as Python computes it (a correctly rounded double).
func pow10(e int) float64 {
	v := 1.0
	for ; e < 0; e++ {
		v *= 10
	}
	return 1 / v
}

func sortFloat32(a []float32) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

// quantizeDynamic maps x (already divided by its block's absmax) to an index
// of code, a sorted 256-value table. It is bitsandbytes' dQuantize<0>
// (csrc/kernels.cu) literally: a 7-step bisection from index 127, then a
// comparison with the float32 midpoint (a+b)·0.5 between the final pivot and
// its neighbour. The final pivot is always even, so a value exactly on a
// midpoint takes the even index of the two.
func quantizeDynamic(code *[256]float32, x float32) byte {
	pivot, upperPivot, lowerPivot := 127, 255, 0
	lower, upper := float32(-1), float32(1)
	val := code[pivot]
	for i := 64; i > 0; i >>= 1 {
		if x > val {
			lowerPivot, lower = pivot, val
			pivot += i
		} else {
			upperPivot, upper = pivot, val
			pivot -= i
		}
		val = code[pivot]
	}
	if upperPivot == 255 {
		upper = code[upperPivot]
	}
	if lowerPivot == 0 {
		lower = code[lowerPivot]
	}
	if x > val {
		if x > float32(upper+val)*0.5 {
			return byte(upperPivot)
		}
		return byte(pivot)
	}
	if x < float32(lower+val)*0.5 {
		return byte(lowerPivot)
	}
	return byte(pivot)
}
