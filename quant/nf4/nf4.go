// Package nf4 stores frozen weight matrices in 4-bit NormalFloat (NF4) with
// double quantization, as QLoRA (Dettmers et al., 2023) and bitsandbytes do,
// and multiplies by them without materialising the dequantized matrix.
//
// Storage, bit for bit as bitsandbytes' quantize_4bit(quant_type="nf4",
// blocksize=64, compress_statistics=True) on a GPU:
//
//   - The row-major matrix is flattened and cut into blocks of 64 values (the
//     last block may be short; bitsandbytes pads it with zeros).
//   - Each block keeps absmax = max|x|; every value becomes the index of the
//     nearest of the 16 NF4 code values (Code) to x·(1/absmax), with
//     bitsandbytes' decision tree (ties take the lower code).
//   - Two indices per byte, the first value of each pair in the high nibble.
//   - Double quantization: offset = mean of the float32 absmax values; the
//     differences absmax − offset are quantized in blocks of 256 with the
//     8-bit dynamic code (DynamicCode), one float32 NestedAbsmax per 256.
//
// Dequantization: w = Code[q] · absmax, absmax = DynamicCode[qabsmax] ·
// NestedAbsmax + Offset, each product and sum rounded to float32.
//
// Memory: 4 bits per weight + 8 bits per 64 + 32 bits per 64·256, that is
// 4.127 bits (0.5159 bytes) per parameter, plus 4 bytes of offset.
//
// Where bitsandbytes' own back ends differ, this package follows the CUDA
// kernels (kQuantizeBlockwise*, dQuantizeNF4, dQuantize), the ones that
// produced the 4-bit checkpoints people share:
//
//   - the value is multiplied by the float32 reciprocal of absmax (the
//     PyTorch fallback divides in the short last block);
//   - the nearest code is decided by the tree's float32 thresholds, which at
//     four values lie one ulp above the exact midpoint (there the lower code
//     wins; see quantizeCode);
//   - an all-zero block (absmax 0, so 0·(1/0) is NaN) stores index 0 (the
//     CPU fallback stores 7); both dequantize to zero;
//   - the 8-bit statistics use the bisection of dQuantize, whose ties go to
//     the even index (the CPU library uses an approximate lookup table).
//
// The offset is the float32 rounding of the mean summed in float64 (PyTorch
// sums in float32, which may differ in the last bit); a file records its
// offset and its code tables, so reading is exact either way. NaN and ±Inf
// weights are rejected with ErrNotFinite.
//
// Kernels (MatMulT: y = x·Wᵀ, MatMul: dX = dY·W) never build the float32
// matrix. For m ≤ 8 rows of x (decode), fused kernels stream the packed
// codes once and decode 64 at a time in registers: with AVX-512 the 16 code
// values sit in one zmm register, scaled once per block, and VPERMPS looks up
// 16 weights per instruction from zero-extended code bytes. For larger m
// (prefill, training) the products are GEMMs: W is decoded 32 rows (MatMulT)
// or 32 columns (MatMul) at a time into a small column panel (at most 32·K
// floats, in L2) that a 12×32 register-blocked micro-kernel multiplies by
// every row of x. Without AVX-512 (or with the noasm tag) the same paths run
// in pure Go, the larger products through tiles of at most 1 MB decoded for
// the float32 GEMM of package kernels. Every kernel has a pure-Go reference
// (…Ref) that stays, and the tests compare each path with it.
package nf4

import (
	"errors"
	"fmt"
	"math"

	"github.com/lorakit/lorakit/kernels"
)

// BlockSize is the number of weights sharing one absmax.
const BlockSize = 64

// NestedBlockSize is the number of absmax values sharing one NestedAbsmax.
const NestedBlockSize = 256

// Tensor is a weight matrix [Rows, Cols] (row-major, a Linear weight stored
// [out, in]) in NF4.
type Tensor struct {
	Rows, Cols int

	// Packed holds the 4-bit indices, two per byte, first in the high nibble:
	// len (Rows·Cols+1)/2. With an odd count the last low nibble is padding.
	Packed []byte

	// Double quantization (the default): one 8-bit index into NestedCode per
	// block of 64, one float32 scale per 256 blocks, and the offset added
	// back.
	QAbsmax      []uint8
	NestedAbsmax []float32
	Offset       float32
	// NestedCode is the 256-value code QAbsmax indexes; nil means
	// DynamicCode. A tensor read from a file keeps the file's table.
	NestedCode []float32

	// Absmax is the per-block float32 absmax when the tensor is not double
	// quantized (bitsandbytes compress_statistics=False); nil otherwise.
	Absmax []float32

	// DType is the dtype of the weights before quantization, recorded in the
	// file's quant state ("float32", "float16" or "bfloat16"); "" means
	// "float32". It does not change what is stored.
	DType string
}

// Options select the variant Quantize builds.
type Options struct {
	// NoDoubleQuant keeps one float32 absmax per block instead of the 8-bit
	// double-quantized statistics (bitsandbytes compress_statistics=False).
	NoDoubleQuant bool
}

// Len is the number of weights, Rows·Cols.
func (t *Tensor) Len() int { return t.Rows * t.Cols }

// Blocks is the number of 64-value blocks (the last one may be short).
func (t *Tensor) Blocks() int { return (t.Len() + BlockSize - 1) / BlockSize }

// DoubleQuant reports whether the absmax statistics are double quantized.
func (t *Tensor) DoubleQuant() bool { return t.Absmax == nil }

// Bytes is the memory the quantized payload takes: codes, statistics and
// offset (the shared code tables are not counted).
func (t *Tensor) Bytes() int {
	n := len(t.Packed) + len(t.QAbsmax) + 4*len(t.NestedAbsmax) + 4*len(t.Absmax)
	if t.DoubleQuant() {
		n += 4
	}
	return n
}

func (t *Tensor) nestedCode() *[256]float32 {
	if len(t.NestedCode) == 256 {
		return (*[256]float32)(t.NestedCode)
	}
	return &DynamicCode
}

// BlockScale is the dequantized absmax of block b.
func (t *Tensor) BlockScale(b int) float32 {
	if t.Absmax != nil {
		return t.Absmax[b]
	}
	return float32(t.nestedCode()[t.QAbsmax[b]]*t.NestedAbsmax[b/NestedBlockSize]) + t.Offset
}

// blockScales writes the dequantized absmax of blocks [b0, b0+len(dst)).
func (t *Tensor) blockScales(dst []float32, b0 int) {
	if t.Absmax != nil {
		copy(dst, t.Absmax[b0:])
		return
	}
	code := t.nestedCode()
	off := t.Offset
	for i := 0; i < len(dst); {
		b := b0 + i
		// The run of blocks sharing one nested scale.
		end := min(len(dst), i+NestedBlockSize-b%NestedBlockSize)
		ns := t.NestedAbsmax[b/NestedBlockSize]
		q := t.QAbsmax[b : b+end-i]
		d := dst[i:end]
		for j, v := range q {
			d[j] = float32(code[v]*ns) + off
		}
		i = end
	}
}

// columnScales writes the dequantized absmax of block column cb (block cb
// of every row; Cols a multiple of 64) into dst[0:Rows].
func (t *Tensor) columnScales(dst []float32, cb int) {
	nb := t.Cols / BlockSize
	dst = dst[:t.Rows]
	if t.Absmax != nil {
		for r := range dst {
			dst[r] = t.Absmax[r*nb+cb]
		}
		return
	}
	code := t.nestedCode()
	off := t.Offset
	for r := range dst {
		b := r*nb + cb
		dst[r] = float32(code[t.QAbsmax[b]]*t.NestedAbsmax[b/NestedBlockSize]) + off
	}
}

// Quantize stores w [rows, cols] (row-major) in NF4 with double quantization.
func Quantize(w []float32, rows, cols int) (*Tensor, error) {
	return QuantizeWith(w, rows, cols, Options{})
}

// QuantizeWith is Quantize with options; blocks are quantized in parallel.
// The result is identical to QuantizeRef's.
func QuantizeWith(w []float32, rows, cols int, o Options) (*Tensor, error) {
	t, absmax, err := newTensor(w, rows, cols)
	if err != nil {
		return nil, err
	}
	nb := len(absmax)
	// Blocks in chunks of 16 (1024 values, 512 bytes): chunks never share a
	// byte of Packed.
	const chunk = 16
	kernels.Parallel((nb+chunk-1)/chunk, 16, func(lo, hi int) {
		for b := lo * chunk; b < min(hi*chunk, nb); b++ {
			absmax[b] = quantizeBlock(t.Packed, w, b)
		}
	})
	t.setStatistics(absmax, o)
	return t, nil
}

// QuantizeRef is the plain, sequential reference of QuantizeWith.
func QuantizeRef(w []float32, rows, cols int, o Options) (*Tensor, error) {
	t, absmax, err := newTensor(w, rows, cols)
	if err != nil {
		return nil, err
	}
	n := len(w)
	for b := range absmax {
		lo, hi := b*BlockSize, min(b*BlockSize+BlockSize, n)
		var am float32
		for _, v := range w[lo:hi] {
			am = max(am, abs32(v))
		}
		absmax[b] = am
		inv := 1 / am
		for i := lo; i < lo+BlockSize && i < (n+1)&^1; i++ {
			var v float32 // bitsandbytes pads the last block with zeros
			if i < n {
				v = w[i]
			}
			q := quantizeCode(v * inv)
			if i%2 == 0 {
				t.Packed[i/2] = q << 4
			} else {
				t.Packed[i/2] |= q
			}
		}
	}
	t.setStatistics(absmax, o)
	return t, nil
}

// newTensor validates the input and allocates the tensor and absmax.
func newTensor(w []float32, rows, cols int) (*Tensor, []float32, error) {
	if rows <= 0 || cols <= 0 {
		return nil, nil, fmt.Errorf("nf4: quantize: shape [%d, %d] must be positive", rows, cols)
	}
	if rows > math.MaxInt32 || cols > math.MaxInt32 || rows*cols/cols != rows {
		return nil, nil, fmt.Errorf("nf4: quantize: shape [%d, %d] is too large", rows, cols)
	}
	n := rows * cols
	if len(w) != n {
		return nil, nil, fmt.Errorf("nf4: quantize: %d values for shape [%d, %d] (want %d)", len(w), rows, cols, n)
	}
	for i, v := range w {
		if math.Float32bits(v)&0x7f800000 == 0x7f800000 { // exponent all ones: NaN or ±Inf
			return nil, nil, fmt.Errorf("nf4: quantize: %w: %v at [%d, %d]", ErrNotFinite, v, i/cols, i%cols)
		}
	}
	t := &Tensor{Rows: rows, Cols: cols, Packed: make([]byte, (n+1)/2)}
	return t, make([]float32, (n+BlockSize-1)/BlockSize), nil
}

// ErrNotFinite is returned for NaN or ±Inf weights, which have no NF4 code.
var ErrNotFinite = errors.New("weight is not finite")

// quantizeBlock stores block b of w into packed and returns its absmax.
func quantizeBlock(packed []byte, w []float32, b int) float32 {
	n := len(w)
	lo := b * BlockSize
	if lo+BlockSize <= n {
		x := w[lo : lo+BlockSize : lo+BlockSize]
		var am float32
		for _, v := range x {
			am = max(am, abs32(v))
		}
		inv := 1 / am
		p := packed[lo/2 : lo/2+BlockSize/2 : lo/2+BlockSize/2]
		if am == 0 || math.IsInf(float64(inv), 0) {
			// 0·(1/0) or 0·Inf is NaN: the tree's NaN rule applies.
			for j := range p {
				p[j] = quantizeCode(x[2*j]*inv)<<4 | quantizeCode(x[2*j+1]*inv)
			}
			return am
		}
		for j := range p {
			p[j] = quantizeCodeFinite(x[2*j]*inv)<<4 | quantizeCodeFinite(x[2*j+1]*inv)
		}
		return am
	}
	var buf [BlockSize]float32 // the short last block, zero-padded
	copy(buf[:], w[lo:])
	var am float32
	for _, v := range buf {
		am = max(am, abs32(v))
	}
	inv := 1 / am
	for j := 0; lo/2+j < len(packed); j++ {
		packed[lo/2+j] = quantizeCode(buf[2*j]*inv)<<4 | quantizeCode(buf[2*j+1]*inv)
	}
	return am
}

// setStatistics stores absmax directly or double quantized.
func (t *Tensor) setStatistics(absmax []float32, o Options) {
	if o.NoDoubleQuant {
		t.Absmax = absmax
		return
	}
	t.QAbsmax, t.NestedAbsmax, t.Offset = doubleQuantize(absmax)
}

// doubleQuantize is bitsandbytes' compress_statistics step:
// offset = absmax.mean(); quantize_blockwise(absmax − offset, blocksize=256)
// with the dynamic code.
func doubleQuantize(absmax []float32) (q []uint8, nested []float32, offset float32) {
	var sum float64
	for _, v := range absmax {
		sum += float64(v)
	}
	offset = float32(sum / float64(len(absmax)))
	q = make([]uint8, len(absmax))
	nested = make([]float32, (len(absmax)+NestedBlockSize-1)/NestedBlockSize)
	var centred [NestedBlockSize]float32
	for nb := range nested {
		lo, hi := nb*NestedBlockSize, min(nb*NestedBlockSize+NestedBlockSize, len(absmax))
		c := centred[:hi-lo]
		var am float32
		for i, v := range absmax[lo:hi] {
			c[i] = v - offset
			am = max(am, abs32(c[i]))
		}
		nested[nb] = am
		inv := 1 / am
		for i, v := range c {
			q[lo+i] = quantizeDynamic(&DynamicCode, v*inv)
		}
	}
	return q, nested, offset
}

func abs32(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ (1 << 31)) }

// DequantizeRef is the reference dequantization: dst[i] = Code[q_i]·absmax.
func DequantizeRef(t *Tensor, dst []float32) {
	n := t.Len()
	dst = dst[:n]
	for i := range dst {
		q := t.Packed[i/2]
		if i%2 == 0 {
			q >>= 4
		}
		dst[i] = Code[q&15] * t.BlockScale(i/BlockSize)
	}
}

// Dequantize writes the float32 matrix [Rows, Cols] into dst (len ≥
// Rows·Cols), in parallel; identical to DequantizeRef.
func (t *Tensor) Dequantize(dst []float32) {
	t.DequantizeRows(dst, 0, t.Rows)
}

// DequantizeRows writes rows [r0, r1) into dst (len ≥ (r1−r0)·Cols).
func (t *Tensor) DequantizeRows(dst []float32, r0, r1 int) {
	if r0 < 0 || r1 > t.Rows || r0 > r1 || len(dst) < (r1-r0)*t.Cols {
		panic(kernels.ShapeError{Msg: fmt.Sprintf("nf4: DequantizeRows [%d, %d) of %d rows into %d values", r0, r1, t.Rows, len(dst))})
	}
	if t.Cols%BlockSize == 0 {
		// Whole blocks per row: the vector decoder, row by row in parallel.
		decodeRows(impl, dst, t, r0, r1, 0, t.Cols/BlockSize)
		return
	}
	lo, hi := r0*t.Cols, r1*t.Cols
	if hi-lo < 1<<14 {
		t.dequantizeRange(dst, lo, hi)
		return
	}
	const grain = 1 << 14
	kernels.Parallel((hi-lo+grain-1)/grain, 4, func(a, b int) {
		t.dequantizeRange(dst[a*grain:], lo+a*grain, min(lo+b*grain, hi))
	})
}

// dequantizeRange writes values [lo, hi) of the flattened matrix to dst[0:].
func (t *Tensor) dequantizeRange(dst []float32, lo, hi int) {
	dst = dst[:hi-lo]
	i := lo
	for i < hi {
		b := i / BlockSize
		s := t.BlockScale(b)
		end := min(hi, b*BlockSize+BlockSize)
		if i%2 == 0 && end-i >= 2 {
			// Whole bytes.
			p := t.Packed[i/2 : end/2]
			d := dst[i-lo : i-lo+2*len(p)]
			for j, q := range p {
				d[2*j] = Code[q>>4] * s
				d[2*j+1] = Code[q&15] * s
			}
			i += 2 * len(p)
		}
		for ; i < end; i++ {
			q := t.Packed[i/2]
			if i%2 == 0 {
				q >>= 4
			}
			dst[i-lo] = Code[q&15] * s
		}
	}
}
