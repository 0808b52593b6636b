package kernels

import "math"

// RMSNorm writes dst[r] = g ⊙ x[r] / sqrt(mean(x[r]²) + eps) for each row of
// width d, and the per-row 1/rms into rstd when it is not nil (the backward
// pass needs it). Matches HF LlamaRMSNorm: computed in float32, eps inside
// the square root; the sum of squares is accumulated in float64 so the result
// does not depend on the summation order.
func RMSNorm(dst, rstd, x, g []float32, rows, d int, eps float32) {
	for r := 0; r < rows; r++ {
		xr := x[r*d : r*d+d]
		var ss float64
		for _, v := range xr {
			ss += float64(v) * float64(v)
		}
		mean := float32(ss / float64(d))
		s := float32(1 / math.Sqrt(float64(mean+eps)))
		if rstd != nil {
			rstd[r] = s
		}
		dr := dst[r*d : r*d+d]
		g := g[:d]
		for i, v := range xr {
			dr[i] = g[i] * (v * s)
		}
	}
}

// RMSNormBackward adds to dx the gradient through y = g ⊙ x·s with
// s = 1/sqrt(mean(x²)+eps) (rstd from the forward); g is frozen:
//
//	dx += s·(g⊙dy) − x · s³/d · Σ(g⊙dy⊙x)
func RMSNormBackward(dx, dy, x, g, rstd []float32, rows, d int) {
	for r := 0; r < rows; r++ {
		xr, dyr, dxr := x[r*d:r*d+d], dy[r*d:r*d+d], dx[r*d:r*d+d]
		s := rstd[r]
		var dot float64
		for i, v := range xr {
			dot += float64(g[i]) * float64(dyr[i]) * float64(v)
		}
		c := float32(dot) * s * s * s / float32(d)
		for i, v := range xr {
			dxr[i] += s*g[i]*dyr[i] - c*v
		}
	}
}
