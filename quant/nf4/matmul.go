package nf4

import (
	"fmt"
	"sync"

	"github.com/lorakit/lorakit/kernels"
)

// Products with an NF4 weight W [rows, cols] (a Linear weight stored
// [out, in]):
//
//	MatMulT: dst[m, rows] (+)= x[m, cols] · Wᵀ    the forward y = x·Wᵀ
//	MatMul:  dst[m, cols] (+)= dy[m, rows] · W    the backward dX = dY·W
//
// Small m (decode, m ≤ fusedMaxM) runs fused kernels (fused.go) that decode
// 64 codes at a time in registers and multiply them into x while the packed
// codes stream from memory once: 0.52 bytes per weight instead of 4, so GEMV
// moves an eighth of the float32 traffic. Larger m (prefill, training) is
// compute bound (gemm.go): W is decoded a panel of 32 rows or columns at a
// time into an L2-sized buffer that a register-blocked micro-kernel
// multiplies by every row of x, so each weight is decoded once per call and
// the arithmetic runs at GEMM speed. The pure-Go variant decodes bounded
// tiles for the float32 GEMM of package kernels instead (generic.go).
//
// Rows whose length is not a multiple of 64 (blocks straddle rows) take a
// slower generic path that decodes one row at a time.
//
// Every element is computed by the same code whatever the thread count:
// threads split W's rows or columns (or column blocks) only, never the sums.

// fusedMaxM is the largest m that runs the fused kernels.
const fusedMaxM = 8

// dotGroup is how many rows of x a fused forward kernel call serves.
const dotGroup = 4

// kernelSet is one instruction-set variant of the kernels.
type kernelSet struct {
	name string
	// packX, if set, writes x [m, cols] in the layout dotT reads: groups of
	// dotGroup rows, group g at dst[g*dotGroup*cols:]. Without it dotT reads
	// x as it is.
	packX func(dst, x []float32, m, cols int)
	// dotT computes rows [r0, r0+n) of W against the m ≤ dotGroup rows of
	// one x group xg: dst[i*ldd+r−r0] = Σ_c x[i,c]·W[r,c] (+ dst when add).
	// Cols is a multiple of 64.
	dotT func(m, n int, xg []float32, w *Tensor, r0 int, dst []float32, ldd int, add bool)
	// decode writes nb whole blocks w (scales sc) as 64·nb floats to dst.
	decode func(nb int, w []byte, sc []float32, dst []float32)
	// axGroup is how many rows of dy an axpyCol call serves, axCols how
	// many columns (64, or 32: half a block).
	axGroup, axCols int
	// axpyCol computes axCols columns of MatMul for one group of m ≤
	// axGroup rows of dy (dyg, n = W's rows): for the columns whose codes in
	// row r of W start at w[r*wstride] (scale sc[r*sstride]),
	// dst[i*ldd+j] = Σ_{r<n} dy[i,r]·W[r,j] (+ dst when add), j < axCols.
	axpyCol func(m, n int, dyg []float32, w []byte, wstride int, sc []float32, sstride int, dst []float32, ldd int, add bool)
	// axpyAll: axpyCol is fast enough to serve every m (else m > fusedMaxM
	// decodes tiles for the float32 GEMM).
	axpyAll bool
	// panel and gemmP, if set, serve MatMulT for m > fusedMaxM. panel
	// decodes 16 rows of W (codes at w + off[r], nb blocks, scales
	// sc[b*16+r]) into columns: dst[c*ld+r] = W[r, c]. gemmP multiplies m ≤
	// gemmGroup rows of x into a decoded panel of panelRows rows:
	// dst[i*ldd+j] = Σ_{c<k} x[i*ldx+c]·wt[c*panelRows+j] (+ dst when add).
	panel func(nb int, w []byte, off *[16]int32, sc []float32, dst []float32, ld int)
	// panelN, if set (with gemmP), serves MatMul for m > fusedMaxM: it
	// decodes panelRows columns of n rows of W (codes of row r at
	// w[r*wstride:], scale sc[r*sstride]) into dst[r*panelRows+j].
	panelN func(n int, w []byte, wstride int, sc []float32, sstride int, dst []float32)
	gemmP  func(m, k int, x []float32, ldx int, wt []float32, dst []float32, ldd int, add bool)
	// toBF16, pairs and gemmBP, if set (with panel, panelN and gemmP), run
	// the BF16 compute path (bf16.go) in hardware: toBF16 rounds x's rows,
	// dst[i] = bf16Bits(src[i]); pairs turns kp pairs of rows of a decoded
	// panel into BF16 pairs, dst[p*32+j] = bf16Bits(src[2p*32+j]) |
	// bf16Bits(src[(2p+1)*32+j])<<16; gemmBP is gemmP over such pairs,
	// dst[i*ldd+j] (+)= Σ_{p<kp} dot(x[i*ldx+p], wt[p*32+j]).
	toBF16 func(dst []uint16, src []float32)
	pairs  func(kp int, src []float32, dst []uint32)
	gemmBP func(m, kp int, x []uint32, ldx int, wt []uint32, dst []float32, ldd int, add bool)
}

// impl is the variant in use (pickKernels: AVX-512 assembly when the CPU has
// it and the noasm tag is off, else pure Go).
var impl = pickKernels()

var goKernels = &kernelSet{name: "go", dotT: dotTGo, decode: decodeGo, axGroup: 4, axCols: BlockSize, axpyCol: axpyColGo}

// maxAxGroup bounds axGroup.
const maxAxGroup = 12

func checkMatMul(op string, w *Tensor, m, ld, lx, wantD, wantX int) {
	if m < 0 || ld < wantD || lx < wantX {
		panic(kernels.ShapeError{Msg: fmt.Sprintf("nf4 %s: m %d, buffers dst %d, x %d shorter than %d, %d (W [%d, %d])", op, m, ld, lx, wantD, wantX, w.Rows, w.Cols)})
	}
}

// MatMulTRef is the reference for MatMulT: each weight dequantized on its
// own, dot products summed in order in float32.
func MatMulTRef(dst, x []float32, w *Tensor, m int, accumulate bool) {
	rows, cols := w.Rows, w.Cols
	checkMatMul("MatMulT", w, m, len(dst), len(x), m*rows, m*cols)
	for i := 0; i < m; i++ {
		for r := 0; r < rows; r++ {
			var s float32
			for c := 0; c < cols; c++ {
				s += x[i*cols+c] * w.at(r*cols+c)
			}
			if accumulate {
				dst[i*rows+r] += s
			} else {
				dst[i*rows+r] = s
			}
		}
	}
}

// MatMulRef is the reference for MatMul.
func MatMulRef(dst, dy []float32, w *Tensor, m int, accumulate bool) {
	rows, cols := w.Rows, w.Cols
	checkMatMul("MatMul", w, m, len(dst), len(dy), m*cols, m*rows)
	for i := 0; i < m; i++ {
		for c := 0; c < cols; c++ {
			var s float32
			for r := 0; r < rows; r++ {
				s += dy[i*rows+r] * w.at(r*cols+c)
			}
			if accumulate {
				dst[i*cols+c] += s
			} else {
				dst[i*cols+c] = s
			}
		}
	}
}

// at dequantizes weight i of the flattened matrix.
func (t *Tensor) at(i int) float32 {
	q := t.Packed[i/2]
	if i%2 == 0 {
		q >>= 4
	}
	return Code[q&15] * t.BlockScale(i/BlockSize)
}

// MatMulT computes dst[m, rows] = x[m, cols]·Wᵀ (+ dst when accumulate).
func MatMulT(dst, x []float32, w *Tensor, m int, accumulate bool) {
	matMulT(impl, dst, x, w, m, accumulate, false)
}

// MatMul computes dst[m, cols] = dy[m, rows]·W (+ dst when accumulate).
func MatMul(dst, dy []float32, w *Tensor, m int, accumulate bool) {
	matMul(impl, dst, dy, w, m, accumulate, false)
}

// matMulT and matMul run the products with kernel set ks; bf16 asks for
// BF16 compute on the GEMM paths (bf16.go).
func matMulT(ks *kernelSet, dst, x []float32, w *Tensor, m int, accumulate, bf16 bool) {
	rows, cols := w.Rows, w.Cols
	checkMatMul("MatMulT", w, m, len(dst), len(x), m*rows, m*cols)
	if m == 0 {
		return
	}
	switch {
	case cols%BlockSize != 0:
		matMulTGeneric(dst, x, w, m, accumulate)
	case m <= fusedMaxM:
		matMulTFused(ks, dst, x, w, m, accumulate)
	case ks.gemmP != nil:
		matMulTGemm(ks, dst, x, w, m, accumulate, bf16)
	case bf16:
		xr := getBuf(m * cols)
		roundBF16s(*xr, x[:m*cols])
		matMulTTiled(ks, dst, *xr, w, m, accumulate, true)
		putBuf(xr)
	default:
		matMulTTiled(ks, dst, x, w, m, accumulate, false)
	}
}

func matMul(ks *kernelSet, dst, dy []float32, w *Tensor, m int, accumulate, bf16 bool) {
	rows, cols := w.Rows, w.Cols
	checkMatMul("MatMul", w, m, len(dst), len(dy), m*cols, m*rows)
	if m == 0 {
		return
	}
	switch {
	case cols%BlockSize != 0:
		matMulGeneric(dst, dy, w, m, accumulate)
	case ks.panelN != nil && m > fusedMaxM && rows%4 == 0:
		matMulGemm(ks, dst, dy, w, m, accumulate, bf16)
	case bf16 && m > fusedMaxM:
		dyr := getBuf(m * rows)
		roundBF16s(*dyr, dy[:m*rows])
		matMulTiled(ks, dst, *dyr, w, m, accumulate, true)
		putBuf(dyr)
	case m <= fusedMaxM || ks.axpyAll:
		matMulFused(ks, dst, dy, w, m, accumulate)
	default:
		matMulTiled(ks, dst, dy, w, m, accumulate, false)
	}
}

// Scratch buffers, reused across calls: float32 (decoded panels and tiles,
// packed x) and uint32 (BF16 pairs, bf16.go).
var bufPool, buf32Pool sync.Pool

func getBuf(n int) *[]float32  { return getPooled[float32](&bufPool, n) }
func putBuf(b *[]float32)      { putPooled(&bufPool, b) }
func getBuf32(n int) *[]uint32 { return getPooled[uint32](&buf32Pool, n) }
func putBuf32(b *[]uint32)     { putPooled(&buf32Pool, b) }

// getPooled returns a slice of n elements from pool, or a new one with a
// quarter more capacity so slightly larger requests reuse it.
func getPooled[T any](pool *sync.Pool, n int) *[]T {
	if v := pool.Get(); v != nil {
		b := v.(*[]T)
		if cap(*b) >= n {
			*b = (*b)[:n]
			return b
		}
	}
	b := make([]T, n, n+n/4)
	return &b
}

// putPooled gives b back to pool; nil is ignored.
func putPooled[T any](pool *sync.Pool, b *[]T) {
	if b != nil {
		pool.Put(b)
	}
}
