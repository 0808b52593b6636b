//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package gguf

import (
	"os"
	"syscall"
)

// mapFile maps size bytes of fh read-only and shared (no private copies of
// pages: several processes serving the same model share the page cache).
func mapFile(fh *os.File, size int) ([]byte, func() error, error) {
	if size == 0 { // mmap rejects empty lengths; Parse reports the short file
		return nil, nil, nil
	}
	b, err := syscall.Mmap(int(fh.Fd()), 0, size, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, os.NewSyscallError("mmap", err)
	}
	return b, func() error { return syscall.Munmap(b) }, nil
}
