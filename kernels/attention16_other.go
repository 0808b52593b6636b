//go:build noasm || !amd64

package kernels

func weightedRowsBF16x512(d, nt int, p *float32, v *uint16, ldv int, out *float32) {
	panic("no asm")
}

func weightedRowsF16x512(d, nt int, p *float32, v *uint16, ldv int, out *float32) {
	panic("no asm")
}
