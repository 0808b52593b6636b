package lora

// BT returns B transposed, [R, Out], built on the first call and kept: the
// serving path's expand step reads it as R contiguous rows (kernels.LowRank).
// It is a snapshot, so it is for frozen adapters (serving); training, which
// changes B, never calls it. It costs Out·R more floats per module. Like
// the forward pass that calls it, it is not for concurrent use.
func (m *Module) BT() []float32 {
	if m.bt == nil && len(m.B) > 0 {
		bt := make([]float32, len(m.B))
		for o := 0; o < m.Out; o++ {
			for k := 0; k < m.R; k++ {
				bt[k*m.Out+o] = m.B[o*m.R+k]
			}
		}
		m.bt = bt
	}
	return m.bt
}

// PrepareServing builds every module's Bᵀ (BT) now. The serving registry
// calls it when it loads an adapter, off the scheduler's path: built
// lazily, the transposes of an adapter's first batch were made inside a
// forward step, holding up every sequence in it. The adapter is frozen
// from then on.
func (a *Adapter) PrepareServing() {
	for _, name := range a.Names() {
		a.Modules[name].BT()
	}
}
