package tokenizer

import (
	"sync"
)

// Data structures of the BPE merge loop.

// minHeap is a 4-ary min-heap of packed (priority << 32 | position) keys
// (shallower than a binary heap, which makes pops cheaper; HF uses one too).
type minHeap []uint64

func (h *minHeap) push(x uint64) {
	a := append(*h, x)
	i := len(a) - 1
	for i > 0 {
		p := (i - 1) / 4
		if a[p] <= x {
			break
		}
		a[i] = a[p]
		i = p
	}
	a[i] = x
	*h = a
}

func (h *minHeap) pop() uint64 {
	a := *h
	top := a[0]
	last := len(a) - 1
	x := a[last]
	a = a[:last]
	if last > 0 {
		a.siftDown(0, x)
	}
	*h = a
	return top
}

// siftDown places x at or below position i.
func (a minHeap) siftDown(i int, x uint64) {
	n := len(a)
	for {
		c := 4*i + 1
		if c >= n {
			break
		}
		m := c
		for k := c + 1; k < c+4 && k < n; k++ {
			if a[k] < a[m] {
				m = k
			}
		}
		if x <= a[m] {
			break
		}
		a[i] = a[m]
		i = m
	}
	a[i] = x
}

// heapify orders an arbitrary slice into a heap in O(n).
func (a minHeap) heapify() {
	if len(a) < 2 {
		return
	}
	for i := (len(a) - 2) / 4; i >= 0; i-- {
		a.siftDown(i, a[i])
	}
}

// wordCache memoizes word -> ids. Safe for concurrent use; it is simply
// cleared when full, which keeps memory bounded and the hot words hot.
type wordCache struct {
	mu  sync.RWMutex
	m   map[string][]int32
	max int
}

func (c *wordCache) init(max int) {
	c.m = make(map[string][]int32)
	c.max = max
}

func (c *wordCache) get(word []byte) ([]int32, bool) {
	c.mu.RLock()
	ids, ok := c.m[string(word)]
	c.mu.RUnlock()
	return ids, ok
}

func (c *wordCache) put(word []byte, ids []int32) {
	if c.max <= 0 {
		return
	}
	cp := make([]int32, len(ids))
	copy(cp, ids)
	c.mu.Lock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[string(word)] = cp
	c.mu.Unlock()
}

// mergeTable is an open-addressing hash table from a pair key to its packed
// merge (rank << 32 | merged id). Merge lookups are the inner loop of BPE and
// this is about twice as fast as a Go map for it.
type mergeTable struct {
	slots []mergeSlot
	shift uint // 64 - log2(len(slots))
}

type mergeSlot struct {
	key uint64 // pair key + 1; 0 marks an empty slot
	val uint64
}

func newMergeTable(n int) *mergeTable {
	size := 8
	for size < n+n/2+1 {
		size *= 2
	}
	shift := uint(64)
	for s := size; s > 1; s /= 2 {
		shift--
	}
	return &mergeTable{slots: make([]mergeSlot, size), shift: shift}
}

func (t *mergeTable) slot(key uint64) uint64 { return (key * 0x9E3779B97F4A7C15) >> t.shift }

// put inserts or replaces.
func (t *mergeTable) put(key, val uint64) {
	key++
	mask := uint64(len(t.slots) - 1)
	for i := t.slot(key); ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.key == 0 || s.key == key {
			s.key, s.val = key, val
			return
		}
	}
}

func (t *mergeTable) get(key uint64) (uint64, bool) {
	key++
	mask := uint64(len(t.slots) - 1)
	for i := t.slot(key); ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.key == key {
			return s.val, true
		}
		if s.key == 0 {
			return 0, false
		}
	}
}
