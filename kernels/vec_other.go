//go:build noasm || !amd64

package kernels

const vec512 = false

func expScaleSum512(n int, x *float32, scale, shift float32) float32 { panic("no asm") }
func swiGLU512(n int, dst, gate, up *float32)                        { panic("no asm") }
func weightedRows512(d, nt int, p, v *float32, ldv int, out *float32) {
	panic("no asm")
}

func axpyRows512(n, nt int, a, x, y *float32) { panic("no asm") }
