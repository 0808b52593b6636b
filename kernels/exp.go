package kernels

import "math"

// Exp32 is e^x in float32 arithmetic: range reduction x = n·ln2 + r with
// |r| ≤ ln2/2, a degree-6 polynomial for e^r (Cephes expf's minimax
// coefficients, about 1 ulp), and 2^n put into the exponent bits. It is
// several times faster than math.Exp, which works in float64. Results below
// the smallest normal float32 flush to 0; NaN stays NaN. math.Exp is the
// reference it is tested against.
func Exp32(x float32) float32 {
	const (
		log2e = 1.44269504088896341
		ln2hi = 0.693359375
		ln2lo = -2.12194440e-4
		maxX  = 88.72283905206835
		minX  = -87.33654475055310898657 // ln(smallest normal float32)
	)
	switch {
	case x != x:
		return x
	case x > maxX:
		return float32(math.Inf(1))
	case x < minX:
		return 0
	}
	// Round x·log2e to the nearest integer with the 1.5·2²³ trick: adding it
	// pushes the fraction bits out of a float32's mantissa.
	const magic = 12582912
	n := (x*log2e + magic) - magic
	r := x - n*ln2hi - n*ln2lo
	y := ((((1.9875691500e-4*r+1.3981999507e-3)*r+8.3334519073e-3)*r+4.1665795894e-2)*r+1.6666665459e-1)*r + 5.0000001201e-1
	y = y*r*r + r + 1
	return math.Float32frombits(math.Float32bits(y) + uint32(int32(n))<<23)
}
