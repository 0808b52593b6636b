//go:build !linux && (darwin || freebsd || netbsd || openbsd)

package kvcache

// mapHuge: no advice for huge pages here; caches are mapped in small pages.
func mapHuge(n int) ([]byte, func([]byte)) { return nil, nil }
