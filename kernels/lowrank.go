package kernels

// LowRank is one adapter's segment of a batch for AddLowRank: rows [Lo, Hi)
// get Scale·(x·Aᵀ)·Bᵀ, with A [R, in] and B [out, R] as PEFT stores
// lora_A and lora_B.
type LowRank struct {
	Lo, Hi int
	A, B   []float32
	// BT, if set, is B transposed ([R, out]): the expand step of a short
	// segment then adds R scaled rows of BT into each row of y (R vector
	// passes over out) instead of out dot products of length R.
	BT    []float32
	R     int
	Scale float32
}

// lowRankSmallRows is the largest segment AddLowRank computes on one thread
// as a unit; longer segments (prefill) get parallel products of their own.
const lowRankSmallRows = gemvMaxM

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
			u := make([]float32, n*s.R)
			MatMulT(u, x[s.Lo*in:s.Hi*in], s.A, n, s.R, in, false)
			for j := range u {
				u[j] *= s.Scale
			}
			MatMulT(y[s.Lo*out:s.Hi*out], u, s.B, n, out, s.R, true)
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
			s := &segs[i]
			n := s.Hi - s.Lo
			if n > lowRankSmallRows || n <= 0 || s.R == 0 {
				continue
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
					weightedRowsTo(y[(s.Lo+r)*out:(s.Lo+r+1)*out], u[r*s.R:(r+1)*s.R], s.BT, out, true)
				}
				continue
			}
			gemvRange(impl, y[s.Lo*out:s.Hi*out], u, s.B, n, out, s.R, 1, 0, out)
		}
	})
}
