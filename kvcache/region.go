package kvcache

import "unsafe"

// region is one block of cache memory: mapped from the OS where mapBlock is
// implemented (region_unix.go), a Go slice otherwise. Its contents are plain
// numbers (no pointers), so memory the garbage collector does not see is
// safe to hold them.
type region struct {
	mem   []byte
	unmap func([]byte) // nil for Go memory
}

// newRegion returns n zeroed bytes, aligned to 64 bytes.
func newRegion(n int) *region {
	if mem, unmap := mapBlock(n); mem != nil {
		return &region{mem: mem, unmap: unmap}
	}
	// Go memory, over-allocated by a cache line for the alignment.
	b := make([]byte, n+64)
	off := (64 - int(uintptr(unsafe.Pointer(&b[0]))%64)) % 64
	return &region{mem: b[off : off+n : off+n]}
}

// floats is n float32 values from value offset off (4-byte units).
func (r *region) floats(off, n int) []float32 {
	b := r.mem[4*off : 4*(off+n)]
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

// halves is n uint16 values from value offset off (2-byte units).
func (r *region) halves(off, n int) []uint16 {
	b := r.mem[2*off : 2*(off+n)]
	return unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

// int8s is n bytes from byte offset off, as int8.
func (r *region) int8s(off, n int) []int8 {
	b := r.mem[off : off+n]
	return unsafe.Slice((*int8)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

func (r *region) free() {
	if r.unmap != nil && r.mem != nil {
		r.unmap(r.mem)
	}
	r.mem = nil
}
