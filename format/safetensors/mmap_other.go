//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package safetensors

import (
	"errors"
	"os"
)

// Without syscall.Mmap, Open falls back to reading the file into memory.
func mmapFile(*os.File, int) ([]byte, error) { return nil, errors.New("mmap not supported") }

func munmap([]byte) error { return nil }
