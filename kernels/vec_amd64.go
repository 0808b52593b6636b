//go:build !noasm && amd64

package kernels

import "golang.org/x/sys/cpu"

// vec512 reports whether the AVX-512 element-wise kernels (vec_amd64.s) run.
var vec512 = cpu.X86.HasAVX512F

//go:noescape
func expScaleSum512(n int, x *float32, scale, shift float32) float32

//go:noescape
func swiGLU512(n int, dst, gate, up *float32)

//go:noescape
func weightedRows512(d, nt int, p, v *float32, ldv int, out *float32)

//go:noescape
func axpyRows512(n, nt int, a, x, y *float32)
