package kvcache

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"
	"unsafe"
)

// TestMapHuge: a block of at least a huge page starts on a 2 MB boundary
// (where transparent huge pages can back it), holds exactly n writable
// bytes, and unmaps cleanly; a smaller block is mapped as before. Whether
// the kernel did back it with huge pages depends on its THP mode and free
// memory, so that is logged, not asserted.
func TestMapHuge(t *testing.T) {
	for _, n := range []int{hugePageSize, 5*hugePageSize + 12345, hugePageSize - 4096, 3 * hugePageSize} {
		mem, unmap := mapBlock(n)
		if mem == nil {
			t.Fatalf("n=%d: no mapping", n)
		}
		if len(mem) != n || cap(mem) != n {
			t.Fatalf("n=%d: len %d cap %d", n, len(mem), cap(mem))
		}
		base := uintptr(unsafe.Pointer(&mem[0]))
		if n >= hugePageSize && base%hugePageSize != 0 {
			t.Fatalf("n=%d: block at %#x, not on a 2 MB boundary", n, base)
		}
		for i := 0; i < n; i += 4096 {
			mem[i] = byte(i>>12) | 1
		}
		mem[n-1] = 0xAB
		for i := 0; i < n; i += 4096 {
			if mem[i] != byte(i>>12)|1 {
				t.Fatalf("n=%d: byte %d reads %d", n, i, mem[i])
			}
		}
		if mem[n-1] != 0xAB {
			t.Fatalf("n=%d: last byte lost", n)
		}
		t.Logf("n=%d at %#x: AnonHugePages %s", n, base, anonHuge(base))
		unmap(mem)
	}
}

// anonHuge is the AnonHugePages line of the mapping holding addr in
// /proc/self/smaps.
func anonHuge(addr uintptr) string {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(line, "%x-%x", &lo, &hi); n == 2 && strings.Contains(line, " ") {
			in = lo <= addr && addr < hi
			continue
		}
		if in && strings.HasPrefix(line, "AnonHugePages:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "AnonHugePages:"))
		}
	}
	return "unknown"
}
