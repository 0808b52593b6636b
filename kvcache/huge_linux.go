package kvcache

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugePageSize is the size of a transparent huge page (x86-64, arm64 with
// 4 KB base pages).
const hugePageSize = 2 << 20

// mapHuge maps n bytes starting on a huge-page boundary, advised
// MADV_HUGEPAGE: Linux then backs each whole, aligned 2 MB of it with one
// transparent huge page when its THP mode is "always" or "madvise" (the
// usual default).
//
// Why: decoding a batch reads every sequence's cache every step. 64
// sequences of SmolLM2-135M touch ~4000 small pages per layer, and next to
// 64 adapters' weights streaming through, the page walks of those reads
// made attention three times slower and a serving step a quarter slower;
// in 2 MB pages the caches take a few TLB entries.
//
// The mapping is trimmed to exactly the aligned n bytes, so a tail shorter
// than a huge page stays in small pages and nothing beyond n can become
// resident. It maps with x/sys/unix's pointer calls: syscall.Munmap only
// unmaps whole mappings that syscall.Mmap made. It returns nil if the
// mapping fails (the caller then maps small pages).
func mapHuge(n int) ([]byte, func([]byte)) {
	if n < hugePageSize {
		return nil, nil
	}
	size := uintptr(n + hugePageSize)
	p, err := unix.MmapPtr(-1, 0, nil, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return nil, nil
	}
	head := (hugePageSize - uintptr(p)%hugePageSize) % hugePageSize
	span := (uintptr(n) + pageSize - 1) &^ (pageSize - 1) // the block, in whole pages
	if head > 0 {
		_ = unix.MunmapPtr(p, head)
	}
	if tail := size - head - span; tail > 0 {
		_ = unix.MunmapPtr(unsafe.Add(p, head+span), tail)
	}
	b := unsafe.Slice((*byte)(unsafe.Add(p, head)), n)
	_ = unix.Madvise(unsafe.Slice(&b[0], span), unix.MADV_HUGEPAGE)
	return b, func(b []byte) { _ = unix.MunmapPtr(unsafe.Pointer(unsafe.SliceData(b)), span) }
}

// pageSize is the base page size the trimming rounds to.
var pageSize = uintptr(unix.Getpagesize())
