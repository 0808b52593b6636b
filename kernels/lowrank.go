package kernels

import (
	"slices"
	"sync"
	"sync/atomic"
)

// LowRank is one adapter's segment of a batch for AddLowRank: rows [Lo, Hi)
// get Scale·(x·Aᵀ)·Bᵀ, with A [R, in] and B [out, R] as PEFT stores
// lora_A and lora_B.
type LowRank struct {
	Lo, Hi int
	A, B   []float32
	// BT, if set, is B transposed ([R, out]): the expand step of a short
	// segment then adds R scaled rows of BT into each row of y, streaming
	// BT once in order, instead of out dot products of length R.
	BT    []float32
	R     int
	Scale float32
}

// lowRankSmallRows is the largest segment AddLowRank computes on one thread
// as a unit; longer segments (prefill) get parallel products of their own.
const lowRankSmallRows = 32

// AddLowRank adds each segment's low-rank term into y [rows, out] given x
// [rows, in]: the SGMV step of multi-adapter serving (Punica, S-LoRA). A
// decode batch holds many one-row segments, each a pair of tiny products
// bound by reading its own A and B; they run as one parallel loop over the
// segments instead of one fork-join per product. Every element is computed
// by the same kernels as MatMulT's, so results do not depend on how
// requests are batched.
func AddLowRank(y, x []float32, in, out int, segs []LowRank) {
	small := 0
	for i := range segs {
		s := &segs[i]
		if s.Hi-s.Lo > lowRankSmallRows {
			n := s.Hi - s.Lo
			up := lowRankBufs.Get().(*[]float32)
			if cap(*up) < n*s.R {
				*up = make([]float32, n*s.R)
			}
			u := (*up)[:n*s.R]
			MatMulT(u, x[s.Lo*in:s.Hi*in], s.A, n, s.R, in, false)
			for j := range u {
				u[j] *= s.Scale
			}
			MatMulT(y[s.Lo*out:s.Hi*out], u, s.B, n, out, s.R, true)
			lowRankBufs.Put(up)
			continue
		}
		small++
	}
	if small == 0 {
		return
	}
	// Each segment streams R·(in+out) weights; parallel only when that is
	// worth a fork-join.
	grain := max(1, (1<<16)/max(1, segs[0].R*(in+out)))
	Parallel(len(segs), grain, func(lo, hi int) {
		var u []float32
		for i := lo; i < hi; i++ {
			u = addSmallLowRank(y, x, in, out, &segs[i], u)
		}
	})
}

// addSmallLowRank adds one short segment's term into y (segments longer than
// lowRankSmallRows are left alone) and returns its scratch for reuse.
func addSmallLowRank(y, x []float32, in, out int, s *LowRank, u []float32) []float32 {
	n := s.Hi - s.Lo
	if n > lowRankSmallRows || n <= 0 || s.R == 0 {
		return u
	}
	checkMatMul("AddLowRank", len(y), len(x), len(s.A), s.Hi*out, s.Hi*in, s.R*in)
	if len(s.B) != out*s.R {
		panic(ShapeError{"AddLowRank: B has wrong size"})
	}
	if cap(u) < n*s.R {
		u = make([]float32, n*s.R)
	}
	u = u[:n*s.R]
	if in > 0 {
		gemvRange(impl, u, x[s.Lo*in:s.Hi*in], s.A, n, s.R, in, 0, 0, s.R)
	} else {
		clear(u)
	}
	for j := range u {
		u[j] *= s.Scale
	}
	if s.BT != nil {
		if len(s.BT) != out*s.R {
			panic(ShapeError{"AddLowRank: BT has wrong size"})
		}
		for r := 0; r < n; r++ {
			axpyRows(y[(s.Lo+r)*out:(s.Lo+r+1)*out], u[r*s.R:(r+1)*s.R], s.BT)
		}
		return u
	}
	gemvRange(impl, y[s.Lo*out:s.Hi*out], u, s.B, n, out, s.R, 1, 0, out)
	return u
}

// MatMulTLowRank computes y = x·wᵀ (x [m, k], w [n, k], y [m, n]) and then
// adds the segments' low-rank terms, as MatMulT followed by AddLowRank. For
// a decode batch (many one-row segments) the two overlap: the product is
// bound by arithmetic and the adapters by memory, so one thread starts on
// the product's column blocks and the other on the adapter segments (into a
// separate buffer), each taking the other kind of work when its own runs
// out. The product's elements are computed exactly as MatMulT's.
func MatMulTLowRank(y, x, w []float32, m, n, k int, segs []LowRank) {
	checkMatMul("MatMulTLowRank", len(y), len(x), len(w), m*n, m*k, n*k)
	threads := Threads()
	if len(segs) == 0 || threads < 2 || m <= gemvMaxM || k == 0 || m*n*k < gemmParallelFlops {
		MatMulT(y, x, w, m, n, k, false)
		AddLowRank(y, x, k, n, segs)
		return
	}
	// Work units for the adapters: segments cut into pieces of at most
	// lowRankSmallRows rows (one adapter over a whole batch still overlaps).
	// A decode step's segments are all short already: no copy then.
	if slices.ContainsFunc(segs, func(s LowRank) bool { return s.Hi-s.Lo > lowRankSmallRows }) {
		var pieces []LowRank
		for _, s := range segs {
			for lo := s.Lo; lo < s.Hi; lo += lowRankSmallRows {
				p := s
				p.Lo, p.Hi = lo, min(lo+lowRankSmallRows, s.Hi)
				pieces = append(pieces, p)
			}
		}
		segs = pieces
	}
	g := &gemmArgs{m: m, n: n, k: k, a: x, lda: k, b: w, ldb: k, bNMajor: true, c: y, ldc: n}
	im := impl.forCols(n)
	g.im = im
	g.kc = balancedBlock(k, im.kc)
	// The product is split by columns, each unit packing only its panel of
	// w (split by rows, every unit would pack all of w). With more rows than
	// columns (prefill) each unit also packs all of x, so the units are
	// wider: about four in all.
	g.byCol = true
	unit := im.nr
	if m > n {
		unit = im.nr * max(1, (n+4*im.nr-1)/(4*im.nr))
	}
	g.unit = unit
	// A is read in place when a unit is too narrow to reuse a packed copy:
	// each unit runs the blocked algorithm alone, so a decode step's
	// one-panel units would each pack all of x again (18 copies of x for a
	// 576-wide projection, more bytes than its weights) only to use it
	// once. The kernels give the same bits either way.
	g.unpackA = im.kernelU != nil && unit <= unpackedAMaxPanels*im.nr
	nu := (n + unit - 1) / unit
	ylp := lowRankBufs.Get().(*[]float32)
	if cap(*ylp) < m*n {
		*ylp = make([]float32, m*n)
	}
	yl := (*ylp)[:m*n]
	var nextG, nextL atomic.Int64
	gemmUnit := func() bool {
		i := int(nextG.Add(1) - 1)
		if i >= nu {
			return false
		}
		cols := n
		if g.byCol {
			cols = min((i+1)*unit, n) - i*unit
		}
		bf := getGemmBuf(im, m, cols, g.kc)
		if g.byCol {
			gemmBlock(g, bf, 0, m, i*unit, min((i+1)*unit, n))
		} else {
			gemmBlock(g, bf, i*unit, min((i+1)*unit, m), 0, n)
		}
		putGemmBuf(bf)
		return true
	}
	var us [2][]float32
	loraUnit := func(role int) bool {
		i := int(nextL.Add(1) - 1)
		if i >= len(segs) {
			return false
		}
		s := &segs[i]
		clear(yl[s.Lo*n : s.Hi*n])
		us[role] = addSmallLowRank(yl, x, k, n, s, us[role])
		return true
	}
	Parallel(2, 1, func(lo, hi int) {
		for role := lo; role < hi; role++ {
			if role == 0 {
				for gemmUnit() {
				}
				for loraUnit(role) {
				}
			} else {
				for loraUnit(role) {
				}
				for gemmUnit() {
				}
			}
		}
	})
	for i := range segs {
		s := &segs[i]
		Axpy(1, yl[s.Lo*n:s.Hi*n], y[s.Lo*n:s.Hi*n])
	}
	lowRankBufs.Put(ylp)
}

// lowRankBufs holds MatMulTLowRank's buffers for the adapters' terms.
var lowRankBufs = sync.Pool{New: func() any { return new([]float32) }}
