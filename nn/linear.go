// Package nn holds the layers models are assembled from, each a thin wrapper
// over kernels with its forward (and, later, backward) side by side.
package nn

import "github.com/lorakit/lorakit/kernels"

// Linear is y = x·Wᵀ + b with W stored [Out, In] as Hugging Face stores it.
type Linear struct {
	In, Out int
	W       []float32 // [Out, In]
	B       []float32 // [Out], nil when the layer has no bias
}

// Forward computes y [rows, Out] from x [rows, In].
func (l *Linear) Forward(y, x []float32, rows int) {
	kernels.MatMulT(y, x, l.W, rows, l.Out, l.In, false)
	if l.B != nil {
		for r := 0; r < rows; r++ {
			kernels.Axpy(1, l.B, y[r*l.Out:(r+1)*l.Out])
		}
	}
}

// Params is the number of scalars in W and B.
func (l *Linear) Params() int { return len(l.W) + len(l.B) }
