//go:build linux || darwin || freebsd || netbsd || openbsd

package kvcache

import "syscall"

// mapBlock maps n bytes of anonymous private memory (zero pages, resident
// only once written), as llama.cpp and vLLM keep their KV caches in buffers
// of their own rather than in the language runtime's heap. It returns nil
// when the mapping fails, and the caller falls back to Go memory.
func mapBlock(n int) ([]byte, func([]byte)) {
	if n <= 0 {
		return nil, nil
	}
	if mem, unmap := mapHuge(n); mem != nil {
		return mem, unmap
	}
	mem, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil, nil
	}
	return mem, func(b []byte) { _ = syscall.Munmap(b) }
}
