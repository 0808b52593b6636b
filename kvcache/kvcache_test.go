package kvcache

import (
	"runtime"
	"slices"
	"testing"

	"github.com/lorakit/lorakit/tensor"
)

// fill writes position p's rows (value p·1000+layer·10+{0 for K, 1 for V},
// per element offset) so that a copy can be checked.
func fill(s *Seq, from, to int) {
	for li := range s.Layers {
		l := &s.Layers[li]
		for p := from; p < to; p++ {
			if s.IsQ8() {
				k, v := q8Rows(s, li, p)
				QuantizeQ8(l.K8[p*s.KVDim:], l.KS[p*s.KVDim/Q8Block:], k)
				QuantizeQ8(l.V8[p*s.KVDim:], l.VS[p*s.KVDim/Q8Block:], v)
				continue
			}
			for j := 0; j < s.KVDim; j++ {
				k, v := float32(p*1000+li*10+j%7), float32(p*1000+li*10+5+j%7)
				if s.Is16() {
					l.K16[p*s.KVDim+j], l.V16[p*s.KVDim+j] = tensor.F32ToF16(k/1024), tensor.F32ToF16(v/1024)
				} else {
					l.K[p*s.KVDim+j], l.V[p*s.KVDim+j] = k, v
				}
			}
		}
	}
}

// q8Rows are position p's K and V rows of layer li for a Q8_0 cache: like
// fill's, with a block-dependent magnitude so that every block has its own
// scale.
func q8Rows(s *Seq, li, p int) (k, v []float32) {
	k, v = make([]float32, s.KVDim), make([]float32, s.KVDim)
	for j := range k {
		k[j] = float32(p*1000+li*10+j%7) / float32(1+j/Q8Block)
		v[j] = -float32(p*1000+li*10+5+j%7) / float32(1+j/Q8Block)
	}
	return k, v
}

func check(t *testing.T, s *Seq, upto int) {
	t.Helper()
	for li := range s.Layers {
		l := s.Layers[li]
		for p := 0; p < upto; p++ {
			if s.IsQ8() {
				k, v := q8Rows(s, li, p)
				nb := s.KVDim / Q8Block
				wk, wv := make([]int8, s.KVDim), make([]int8, s.KVDim)
				wks, wvs := make([]uint16, nb), make([]uint16, nb)
				QuantizeQ8(wk, wks, k)
				QuantizeQ8(wv, wvs, v)
				gk, gv := l.K8[p*s.KVDim:][:s.KVDim], l.V8[p*s.KVDim:][:s.KVDim]
				gks, gvs := l.KS[p*nb:][:nb], l.VS[p*nb:][:nb]
				if !slices.Equal(gk, wk) || !slices.Equal(gv, wv) || !slices.Equal(gks, wks) || !slices.Equal(gvs, wvs) {
					t.Fatalf("layer %d position %d: Q8_0 rows or scales differ from what was written", li, p)
				}
				continue
			}
			for j := 0; j < s.KVDim; j++ {
				k, v := float32(p*1000+li*10+j%7), float32(p*1000+li*10+5+j%7)
				var gk, gv float32
				if s.Is16() {
					gk, gv = tensor.F16ToF32(l.K16[p*s.KVDim+j])*1024, tensor.F16ToF32(l.V16[p*s.KVDim+j])*1024
					k, v = tensor.F16ToF32(tensor.F32ToF16(k/1024))*1024, tensor.F16ToF32(tensor.F32ToF16(v/1024))*1024
				} else {
					gk, gv = l.K[p*s.KVDim+j], l.V[p*s.KVDim+j]
				}
				if gk != k || gv != v {
					t.Fatalf("layer %d position %d [%d]: K %v V %v, want %v %v", li, p, j, gk, gv, k, v)
				}
			}
		}
	}
}

// rows is the length of every layer's K and V, which must agree.
func rows(t *testing.T, s *Seq) int {
	t.Helper()
	n := -1
	for _, l := range s.Layers {
		lk, lv := len(l.K), len(l.V)
		if s.Is16() {
			lk, lv = len(l.K16), len(l.V16)
		}
		if s.IsQ8() {
			lk, lv = len(l.K8), len(l.V8)
			if len(l.KS)*Q8Block != lk || len(l.VS)*Q8Block != lv {
				t.Fatalf("Q8_0 scales: %d and %d for %d and %d values", len(l.KS), len(l.VS), lk, lv)
			}
		}
		if n < 0 {
			n = lk
		}
		if lk != n || lv != n {
			t.Fatalf("layers disagree: %d, %d and %d values", n, lk, lv)
		}
	}
	return n / s.KVDim
}

// TestReserveGrowsInChunks: an empty cache gets exactly what is asked, then
// grows by GrowChunk positions (or to what is asked, if more), keeping the
// committed positions, in every dtype.
func TestReserveGrowsInChunks(t *testing.T) {
	for _, dt := range []tensor.DType{tensor.F32, tensor.BF16, tensor.F16, Q8_0} {
		kvDim := 6
		if dt == Q8_0 {
			kvDim = 64
		}
		s := NewOf(dt, 3, kvDim)
		if s.Cap() != 0 || s.Bytes() != 0 {
			t.Fatalf("%s: new cache has room for %d positions, %d bytes", dt, s.Cap(), s.Bytes())
		}
		steps := []struct{ n, cap int }{
			{16, 16},             // a prompt: exactly
			{17, 16 + GrowChunk}, // one chunk more, not double
			{16 + GrowChunk, 16 + GrowChunk},
			{17 + GrowChunk, 16 + 2*GrowChunk},
			{1000, 1000}, // a long jump: what is asked
			{10, 1000},   // never shrinks
		}
		for _, st := range steps {
			s.Reserve(st.n)
			if s.Cap() != st.cap || rows(t, s) != st.n {
				t.Fatalf("%s: Reserve(%d) gives room for %d and %d rows, want %d and %d", dt, st.n, s.Cap(), rows(t, s), st.cap, st.n)
			}
			check(t, s, min(s.Len, st.n)) // the committed rows survived
			fill(s, s.Len, st.n)
			s.Len = max(s.Len, st.n)
		}
		if want := int(BytesPerPosition(dt, 3, kvDim)) * 1000; s.Bytes() != want {
			t.Fatalf("%s: Bytes %d, want %d", dt, s.Bytes(), want)
		}
	}
	if BytesPerPosition(tensor.BF16, 30, 192) != 30*192*2*2 || BytesPerPosition(tensor.F32, 30, 192) != 30*192*2*4 ||
		BytesPerPosition(Q8_0, 30, 192) != 30*2*192*34/32 {
		t.Fatal("BytesPerPosition")
	}
}

// TestReserveKeepsAliasedLayers: training's shared caches point every layer
// at one buffer; a Reserve within its room must keep them aliased.
func TestReserveKeepsAliasedLayers(t *testing.T) {
	s := New(4, 8)
	buf := Layer{K: make([]float32, 10*8), V: make([]float32, 10*8)}
	for i := range s.Layers {
		s.Layers[i] = Layer{K: buf.K[:5*8], V: buf.V[:5*8]}
	}
	s.Reserve(10)
	for i, l := range s.Layers {
		if &l.K[0] != &buf.K[0] || &l.V[0] != &buf.V[0] || len(l.K) != 80 {
			t.Fatalf("layer %d no longer shares the buffer", i)
		}
	}
}

// TestNewFixed: room for exactly the positions asked, in every layer, zeroed,
// 64-byte aligned; Reserve within it never moves the rows; asking for more
// moves them to the heap intact; Free empties the cache.
func TestNewFixed(t *testing.T) {
	for _, dt := range []tensor.DType{tensor.F32, tensor.BF16, tensor.F16, Q8_0} {
		kvDim := 12
		if dt == Q8_0 {
			kvDim = 96
		}
		s := NewFixed(dt, 5, kvDim, 44)
		if s.Cap() != 44 || s.Bytes() != int(BytesPerPosition(dt, 5, kvDim))*44 {
			t.Fatalf("%s: room %d, %d bytes", dt, s.Cap(), s.Bytes())
		}
		first := make([]uintptr, len(s.Layers))
		for i, l := range s.Layers {
			var p uintptr
			if s.IsQ8() {
				if len(l.K8) != 44*kvDim || len(l.KS) != 44*kvDim/Q8Block || len(l.VS) != len(l.KS) || len(l.V8) != len(l.K8) {
					t.Fatalf("%s: layer %d sized %d, %d, %d, %d", dt, i, len(l.K8), len(l.V8), len(l.KS), len(l.VS))
				}
				for _, x := range append(l.K8, l.V8...) {
					if x != 0 {
						t.Fatalf("%s: not zeroed", dt)
					}
				}
				for _, x := range append(l.KS, l.VS...) {
					if x != 0 {
						t.Fatalf("%s: not zeroed", dt)
					}
				}
				// Every part of every layer starts on a cache line.
				for _, a := range []uintptr{uintptrOf8(l.K8), uintptrOf8(l.V8), uintptrOf16(l.KS), uintptrOf16(l.VS)} {
					if a%64 != 0 {
						t.Fatalf("%s: layer %d has a part at %#x, not 64-byte aligned", dt, i, a)
					}
				}
				p = uintptrOf8(l.K8)
			} else if s.Is16() {
				for _, x := range append(l.K16, l.V16...) {
					if x != 0 {
						t.Fatalf("%s: not zeroed", dt)
					}
				}
				p = uintptrOf16(l.K16)
			} else {
				for _, x := range append(l.K, l.V...) {
					if x != 0 {
						t.Fatalf("%s: not zeroed", dt)
					}
				}
				p = uintptrOf32(l.K)
			}
			if i == 0 && p%64 != 0 {
				t.Fatalf("%s: rows at %#x, not 64-byte aligned", dt, p)
			}
			first[i] = p
		}
		for _, n := range []int{16, 17, 44} {
			s.Reserve(n)
			fill(s, s.Len, n)
			s.Len = n
			for i, l := range s.Layers {
				p := uintptrOf32(l.K)
				if s.Is16() {
					p = uintptrOf16(l.K16)
				}
				if s.IsQ8() {
					p = uintptrOf8(l.K8)
				}
				if p != first[i] {
					t.Fatalf("%s: Reserve(%d) within the room moved layer %d", dt, n, i)
				}
			}
			check(t, s, n)
		}
		s.Reserve(45) // more than reserved: moves to the heap, keeps the rows
		if s.Cap() != 44+GrowChunk || s.mapped != nil {
			t.Fatalf("%s: after outgrowing: room %d, still mapped %v", dt, s.Cap(), s.mapped != nil)
		}
		check(t, s, 44)
		s.Free()
		if s.Cap() != 0 || s.Len != 0 || s.Bytes() != 0 {
			t.Fatalf("%s: after Free: room %d, Len %d", dt, s.Cap(), s.Len)
		}
		NewFixed(dt, 5, kvDim, 44).Free()
	}
}

// TestNewFixedOffHeap: on Linux a fixed cache lives outside the Go heap, so
// the collector's heap target (GOGC) does not grow with the cache.
func TestNewFixedOffHeap(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("mapped caches on Linux only in this test")
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := NewFixed(tensor.BF16, 30, 192, 4096) // 94 MB
	fill(s, 0, 4)
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 1<<20 {
		t.Fatalf("the Go heap grew by %d bytes for a %d-byte mapped cache", grew, s.Bytes())
	}
	check(t, s, 4)
	s.Free()
}
