//go:build noasm || !amd64

package kernels

func dotRowsQ8x512(d, nt int, q *float32, k *int8, ldk int, s *float32, lds int, dst *float32) {
	panic("no asm")
}

func weightedRowsQ8x512(d, nt int, p *float32, v *int8, ldv int, s *float32, lds int, out *float32) {
	panic("no asm")
}
