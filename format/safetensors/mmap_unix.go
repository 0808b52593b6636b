//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package safetensors

import (
	"os"
	"syscall"
)

// mmapFile maps the first size bytes of f read-only. MAP_SHARED rather than
// MAP_PRIVATE: we never write, and shared mappings of a file opened
// read-only do not reserve swap for copy-on-write.
func mmapFile(f *os.File, size int) ([]byte, error) {
	return syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ, syscall.MAP_SHARED)
}

func munmap(b []byte) error { return syscall.Munmap(b) }
