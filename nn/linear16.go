package nn

import (
	"fmt"

	"github.com/lorakit/lorakit/kernels"
	"github.com/lorakit/lorakit/tensor"
)

// DType is the type the frozen weight is held in: F32, BF16 or F16, or ""
// for NF4 (Q).
func (l *Linear) DType() tensor.DType {
	switch {
	case l.Q != nil:
		return ""
	case l.W16 != nil:
		return l.W16Type
	}
	return tensor.F32
}

// widen16 writes the 16-bit weight as float32 into dst (exact).
func (l *Linear) widen16(dst []float32) {
	if l.W16Type == tensor.F16 {
		kernels.WidenF16(dst, l.W16)
	} else {
		kernels.WidenBF16(dst, l.W16)
	}
}

// Float32 returns the frozen weight as float32: W itself when it is held so,
// otherwise a new widened (or dequantized) copy.
func (l *Linear) Float32() []float32 {
	switch {
	case l.Q != nil:
		w := make([]float32, l.Out*l.In)
		l.Q.Dequantize(w)
		return w
	case l.W16 != nil:
		w := make([]float32, len(l.W16))
		l.widen16(w)
		return w
	}
	return l.W
}

// ToDType holds the frozen weight in dtype d: F32, or BF16 / F16 rounded to
// nearest even (as torch's .to does). An NF4 weight is dequantized first;
// converting to the type already held does nothing.
func (l *Linear) ToDType(d tensor.DType) error {
	switch {
	case d == tensor.F32:
		l.Dequantize()
		return nil
	case !d.Is16():
		return fmt.Errorf("nn.Linear: cannot hold a weight as %s (F32, BF16 or F16)", d)
	case l.W16 != nil && l.W16Type == d:
		return nil
	}
	w := l.Float32()
	h := make([]uint16, len(w))
	tensor.Narrow(d, h, w)
	l.W, l.Q, l.W16, l.W16Type = nil, nil, h, d
	return nil
}
