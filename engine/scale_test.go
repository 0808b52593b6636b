package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestThousandAdapters: 1,000 adapters in the directory, at most 100 in
// memory. A cold adapter's first token arrives within 50 ms of a warm one's,
// and cycling through all 1,000 keeps the adapters in memory and the heap
// bounded.
func TestThousandAdapters(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 1,000 adapters")
	}
	const total, maxLoaded = 1000, 100
	m := loadTinyBrown(t)
	tok := tinyBrownTokenizer(t)
	dir := t.TempDir()
	// r=2 on q and v: 43 KB each, 43 MB on disk in all. Saved once and
	// copied: lora.Save syncs every file, which 2,000 times is slow.
	adapterBytes := int64(writeAdapters(t, m, dir, "c", 1, 2, []string{"q_proj", "v_proj"})[0].Bytes())
	copyAdapter(t, filepath.Join(dir, "c0"), dir, "c", total)
	reg, _ := newTestRegistry(t, RegistryConfig{Dir: dir, MaxLoaded: maxLoaded, Base: m})
	e, err := New(m, SpecOf(m), tok, Config{MaxBatch: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown(context.Background())
	if infos, _ := reg.List(); len(infos) != total {
		t.Fatalf("listed %d adapters, want %d", len(infos), total)
	}
	ctx := context.Background()
	prompt := append([]int{0}, tok.Encode("The jury said that the city", true)...)
	// firstToken is the time from the request to its first (and only)
	// token, adapter load included.
	firstToken := func(name string) time.Duration {
		t0 := time.Now()
		a, release, err := reg.Acquire(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		s, err := e.Submit(ctx, &Request{Adapter: name, LoRA: a, Release: release, Prompt: prompt, MaxTokens: 1})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		return time.Since(t0)
	}
	for i := 0; i < 5; i++ {
		firstToken(fmt.Sprint("c", i)) // warm
	}
	var cold, warm []time.Duration
	for i := 0; i < 25; i++ {
		cold = append(cold, firstToken(fmt.Sprint("c", 500+i)))
		warm = append(warm, firstToken(fmt.Sprint("c", i%5)))
	}
	coldMed, warmMed := median(cold), median(warm)
	t.Logf("first token: cold median %v, warm median %v (cold adds %v)", coldMed, warmMed, coldMed-warmMed)
	if coldMed-warmMed > 50*time.Millisecond {
		t.Errorf("a cold adapter adds %v to the first token, want <= 50ms", coldMed-warmMed)
	}

	// Cycle through all adapters, 8 at a time.
	heapBase := settledHeap()
	var maxHeld atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				firstToken(fmt.Sprint("c", i))
				if n, _ := reg.Stats(); int64(n) > maxHeld.Load() {
					maxHeld.Store(int64(n))
				}
			}
		}()
	}
	wg.Wait()
	heapAfter := settledHeap()
	n, bytes := reg.Stats()
	t.Logf("after cycling %d adapters: %d in memory (%d bytes, max seen %d), heap %d → %d bytes",
		total, n, bytes, maxHeld.Load(), heapBase, heapAfter)
	if n > maxLoaded || bytes > maxLoaded*adapterBytes {
		t.Fatalf("%d adapters (%d bytes) in memory, want at most %d", n, bytes, maxLoaded)
	}
	if maxHeld.Load() > maxLoaded+8 {
		t.Fatalf("up to %d adapters in memory while cycling; bound is %d + 8 in flight", maxHeld.Load(), maxLoaded)
	}
	// The heap may differ by what the LRU holds now versus before (at most
	// all of it) plus slack for the runtime; it must not grow with the
	// number of adapters seen.
	if growth := int64(heapAfter) - int64(heapBase); growth > maxLoaded*adapterBytes+8<<20 {
		t.Fatalf("heap grew by %d bytes cycling through %d adapters", growth, total)
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// settledHeap is the live heap after garbage collection.
func settledHeap() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// copyAdapter copies the adapter folder src to dir/prefix1..prefix{n-1}.
func copyAdapter(t testing.TB, src, dir, prefix string, n int) {
	t.Helper()
	files := []string{"adapter_config.json", "adapter_model.safetensors"}
	data := make([][]byte, len(files))
	for i, f := range files {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		data[i] = b
	}
	for i := 1; i < n; i++ {
		d := filepath.Join(dir, fmt.Sprint(prefix, i))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for j, f := range files {
			if err := os.WriteFile(filepath.Join(d, f), data[j], 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
