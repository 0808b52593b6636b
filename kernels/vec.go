package kernels

// Element-wise loops shared by softmax, SwiGLU and attention, each with a
// vector form (AVX-512, vec_amd64.s) and the scalar loop that is both its
// reference and the fallback.

// expScaleSum replaces x[i] by e^(x[i]·scale − shift) and returns the sum
// (float32 partial sums, lane by lane in the vector form).
func expScaleSum(x []float32, scale, shift float32) float32 {
	var sum float32
	i := 0
	if vec512 && len(x) >= 16 {
		i = len(x) &^ 15
		sum = expScaleSum512(i, &x[0], scale, shift)
	}
	for ; i < len(x); i++ {
		e := Exp32(x[i]*scale - shift)
		x[i] = e
		sum += e
	}
	return sum
}

// swiGLU writes dst[i] = silu(gate[i])·up[i].
func swiGLU(dst, gate, up []float32) {
	up, dst = up[:len(gate)], dst[:len(gate)]
	i := 0
	if vec512 && len(gate) >= 16 {
		i = len(gate) &^ 15
		swiGLU512(i, &dst[0], &gate[0], &up[0])
	}
	for ; i < len(gate); i++ {
		dst[i] = SiLU(gate[i]) * up[i]
	}
}

// weightedRows writes out[j] = Σ_t p[t]·v[t·ldv+j] for j < len(out),
// t < len(p): attention's probabilities times its value rows.
func weightedRows(out, p, v []float32, ldv int) {
	d := len(out)
	if len(p) == 0 {
		clear(out)
		return
	}
	_ = v[(len(p)-1)*ldv+d-1]
	j := 0
	if vec512 && d >= 16 {
		j = d &^ 15
		weightedRows512(j, len(p), &p[0], &v[0], ldv, &out[0])
	}
	for ; j < d; j++ {
		var s float32
		for t, pt := range p {
			s += pt * v[t*ldv+j]
		}
		out[j] = s
	}
}

// axpyRows adds a[t]·x[t·n : t·n+n] into y for t = 0..len(a)−1 in turn
// (n = len(y)): the rows of x are read once, in order.
func axpyRows(y, a, x []float32) {
	n := len(y)
	if len(a) == 0 {
		return
	}
	_ = x[len(a)*n-1]
	j := 0
	if vec512 && n >= 16 {
		j = n &^ 15
		if n == j {
			axpyRows512(n, len(a), &a[0], &x[0], &y[0])
			return
		}
		// Rows are n apart but the vector part covers only j of each.
		for t := range a {
			axpyRows512(j, 1, &a[t], &x[t*n], &y[0])
		}
	}
	for t, at := range a {
		row := x[t*n : t*n+n]
		for i := j; i < n; i++ {
			y[i] += at * row[i]
		}
	}
}
