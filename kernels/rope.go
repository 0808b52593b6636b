package kernels

import "math"

// RopeTable holds cos and sin of position·inv_freq for positions [0, n):
// row p is [d/2] values. HF computes the angle in float32 as
// float32(position) * inv_freq and then cos/sin of it.
type RopeTable struct {
	Half     int
	Cos, Sin []float32
}

// NewRopeTable builds the table for n positions.
func NewRopeTable(invFreq []float32, n int) *RopeTable {
	t := &RopeTable{Half: len(invFreq)}
	t.Grow(invFreq, n)
	return t
}

// Len is the number of positions the table covers.
func (t *RopeTable) Len() int {
	if t.Half == 0 {
		return 0
	}
	return len(t.Cos) / t.Half
}

// Grow extends the table to at least n positions.
func (t *RopeTable) Grow(invFreq []float32, n int) {
	if need := n * len(invFreq); need > cap(t.Cos) {
		// The first table is allocated at its size, not by append's
		// doublings (a table of 4096 positions is 1 MB, and the outgrown
		// copies would be garbage); later growth, a position or a prompt
		// at a time, doubles, so it copies each entry a bounded number of
		// times.
		c := need
		if cap(t.Cos) > 0 {
			c = max(need, 2*cap(t.Cos))
		}
		t.Cos = append(make([]float32, 0, c), t.Cos...)
		t.Sin = append(make([]float32, 0, c), t.Sin...)
	}
	for p := t.Len(); p < n; p++ {
		for _, f := range invFreq {
			angle := float32(p) * f
			t.Cos = append(t.Cos, float32(math.Cos(float64(angle))))
			t.Sin = append(t.Sin, float32(math.Sin(float64(angle))))
		}
	}
}

// RopeForward rotates, in place, rows of x laid out [rows, heads, d] where row i
// is at position pos[i]: HF rotate_half, element j pairs with element j + d/2:
// (a, b) -> (a·cos − b·sin, b·cos + a·sin).
func RopeForward(x []float32, pos []int, heads, d int, t *RopeTable) {
	half := d / 2
	for i, p := range pos {
		c := t.Cos[p*half : p*half+half]
		s := t.Sin[p*half : p*half+half]
		row := x[i*heads*d : (i+1)*heads*d]
		for h := 0; h < heads; h++ {
			a := row[h*d : h*d+half]
			b := row[h*d+half : h*d+d]
			for j := range a {
				aj, bj := a[j], b[j]
				a[j] = aj*c[j] - bj*s[j]
				b[j] = bj*c[j] + aj*s[j]
			}
		}
	}
}

// RopeBackward applies the transposed rotation (the inverse, angle −θ) to a
// gradient in place: the backward of RopeForward.
func RopeBackward(dx []float32, pos []int, heads, d int, t *RopeTable) {
	half := d / 2
	for i, p := range pos {
		c := t.Cos[p*half : p*half+half]
		s := t.Sin[p*half : p*half+half]
		row := dx[i*heads*d : (i+1)*heads*d]
		for h := 0; h < heads; h++ {
			a := row[h*d : h*d+half]
			b := row[h*d+half : h*d+d]
			for j := range a {
				aj, bj := a[j], b[j]
				a[j] = aj*c[j] + bj*s[j]
				b[j] = bj*c[j] - aj*s[j]
			}
		}
	}
}
