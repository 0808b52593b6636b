//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package kvcache

// mapBlock has no OS mapping here: caches live in Go memory.
func mapBlock(n int) ([]byte, func([]byte)) { return nil, nil }
