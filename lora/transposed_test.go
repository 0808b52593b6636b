package lora

import (
	"testing"
	"unsafe"
)

// TestPrepareServingTransposes: after PrepareServing every module holds Bᵀ
// ([R, Out], element (k, o) = B[o, k]), and BT() then returns that same
// array rather than building another.
func TestPrepareServingTransposes(t *testing.T) {
	c := Config{PeftType: "LORA", R: 4, Alpha: 8, TargetModules: []string{"q_proj", "v_proj", "down_proj"}}
	a, err := New(c, fakeBase{64, 96}, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range a.Names() {
		m := a.Modules[name]
		for i := range m.B {
			m.B[i] = float32(i%13) - 6
		}
	}
	a.PrepareServing()
	for _, name := range a.Names() {
		m := a.Modules[name]
		if len(m.bt) != m.Out*m.R {
			t.Fatalf("%s: Bᵀ of %d values, want %d", name, len(m.bt), m.Out*m.R)
		}
		for o := 0; o < m.Out; o++ {
			for k := 0; k < m.R; k++ {
				if m.bt[k*m.Out+o] != m.B[o*m.R+k] {
					t.Fatalf("%s: Bᵀ[%d,%d] = %v, want B[%d,%d] = %v", name, k, o, m.bt[k*m.Out+o], o, k, m.B[o*m.R+k])
				}
			}
		}
		if unsafe.SliceData(m.BT()) != unsafe.SliceData(m.bt) {
			t.Fatalf("%s: BT() rebuilt the transpose", name)
		}
	}
}
