// Package kvcache holds the keys and values of the positions a sequence has
// already processed, per layer, so decoding a token costs one position's work.
package kvcache

import (
	"fmt"

	"github.com/lorakit/lorakit/tensor"
)

// Seq is one sequence's cache: for each layer, K and V rows [Len, kvDim] in
// position order. Rows beyond Len are scratch being filled by the current step.
//
// The rows are float32 (K, V) or, for serving, 16-bit (K16, V16, raw BF16 or
// F16 bits): a model held in 16 bits keeps its keys and values in that type,
// as vLLM's kv_cache_dtype="auto" and llama.cpp's default F16 cache do. That
// halves the cache, which at serving batch sizes outweighs the weights.
// Serving may also ask for 8 bits (Q8_0: K8, V8 and their scales KS, VS;
// see q8.go), about half again. Training and evaluation use float32 caches
// (New).
type Seq struct {
	KVDim  int
	Len    int          // positions committed so far
	DType  tensor.DType // F32 (K, V), BF16 / F16 (K16, V16) or Q8_0 (K8, V8, KS, VS)
	Layers []Layer

	mapped *region // the memory of a NewFixed cache held off the Go heap
}

// Layer is one layer's keys and values, [capacity, kvDim] each: float32 in K
// and V, 16-bit in K16 and V16, or Q8_0 bytes in K8 and V8 with one fp16
// scale per 32 of them in KS and VS ([capacity, kvDim/32]), as the Seq's
// DType says.
type Layer struct {
	K, V     []float32
	K16, V16 []uint16
	K8, V8   []int8
	KS, VS   []uint16
}

// GrowChunk is the positions a growing cache adds at a time once it holds
// something (see Reserve).
const GrowChunk = 128

// New makes an empty float32 cache for a model with the given layer count
// and kv width; Reserve sizes it.
func New(layers, kvDim int) *Seq {
	return &Seq{KVDim: kvDim, DType: tensor.F32, Layers: make([]Layer, layers)}
}

// NewOf is New with keys and values held in dt: F32, BF16, F16 or Q8_0
// (which needs kvDim to be a multiple of 32).
func NewOf(dt tensor.DType, layers, kvDim int) *Seq {
	checkDType(dt, kvDim)
	return &Seq{KVDim: kvDim, DType: dt, Layers: make([]Layer, layers)}
}

// NewFixed makes a cache with room for exactly positions positions, in one
// block allocated now: the serving engine knows a request's prompt +
// max_tokens at admission and reserves them whole, so the cache is never
// copied to grow and leaves no garbage behind. Where the OS allows, the
// block is mapped outside the Go heap (see region): its pages become
// resident only as positions are written, the garbage collector neither
// scans it nor counts it towards its heap target, and Free returns it to
// the OS at once. Free must be called when the sequence ends, and nothing
// may touch the cache after that.
func NewFixed(dt tensor.DType, layers, kvDim, positions int) *Seq {
	checkDType(dt, kvDim)
	s := &Seq{KVDim: kvDim, DType: dt, Layers: make([]Layer, layers)}
	if positions <= 0 || kvDim <= 0 || layers == 0 {
		return s
	}
	per := positions * kvDim // values per K (or V) of one layer
	if dt == Q8_0 {
		// Per layer K8, V8, KS, VS, each starting on a cache line.
		nb := per / Q8Block
		vals, scales := align64(per), align64(2*nb)
		stride := 2*vals + 2*scales
		r := newRegion(layers * stride)
		s.mapped = r
		for i := range s.Layers {
			l := &s.Layers[i]
			at := i * stride
			l.K8, l.V8 = r.int8s(at, per), r.int8s(at+vals, per)
			l.KS, l.VS = r.halves((at+2*vals)/2, nb), r.halves((at+2*vals+scales)/2, nb)
		}
		return s
	}
	r := newRegion(2 * layers * per * dt.Size())
	s.mapped = r
	for i := range s.Layers {
		l := &s.Layers[i]
		if dt == tensor.F32 {
			l.K, l.V = r.floats(2*i*per, per), r.floats((2*i+1)*per, per)
		} else {
			l.K16, l.V16 = r.halves(2*i*per, per), r.halves((2*i+1)*per, per)
		}
	}
	return s
}

// align64 rounds n bytes up to a whole number of cache lines.
func align64(n int) int { return (n + 63) &^ 63 }

func checkDType(dt tensor.DType, kvDim int) {
	if dt != tensor.F32 && !dt.Is16() && dt != Q8_0 {
		panic(fmt.Sprintf("kvcache: dtype %q is not F32, BF16, F16 or Q8_0", dt))
	}
	if dt == Q8_0 {
		if err := CheckQ8(kvDim, 0); err != nil {
			panic(err)
		}
	}
}

// BytesPerPosition is the cache memory one position takes over all layers
// (K and V) in dtype dt: for Q8_0, 34 bytes per 32 values (the bytes and
// one fp16 scale).
func BytesPerPosition(dt tensor.DType, layers, kvDim int) int64 {
	if dt == Q8_0 {
		return int64(layers) * 2 * (int64(kvDim) + 2*int64(kvDim/Q8Block))
	}
	return int64(layers) * int64(kvDim) * 2 * int64(dt.Size())
}

// Is16 reports whether the rows are 16-bit (K16, V16).
func (s *Seq) Is16() bool { return s.DType.Is16() }

// IsQ8 reports whether the rows are Q8_0 (K8, V8 with scales KS, VS).
func (s *Seq) IsQ8() bool { return s.DType == Q8_0 }

// Cap is the positions the cache has room for without growing. Every layer
// has the same room (training may alias one buffer for all layers, see
// llama's trainCaches), so the first layer's tells.
func (s *Seq) Cap() int {
	if len(s.Layers) == 0 || s.KVDim == 0 {
		return 0
	}
	l := s.Layers[0]
	switch {
	case s.Is16():
		return cap(l.K16) / s.KVDim
	case s.IsQ8():
		return cap(l.K8) / s.KVDim
	}
	return cap(l.K) / s.KVDim
}

// Reserve makes room for n positions in every layer, keeping what is there,
// and sets each layer's rows to n positions.
//
// An empty cache gets exactly n: the first reservation is a whole prompt
// (or a whole training sequence, reused step after step). Later growth adds
// at least GrowChunk positions rather than doubling: doubling leaves up to
// half of a long cache unused (a 16+128-position sequence would end with
// room for 256), while chunks waste fewer than GrowChunk positions, and the
// copies cost little: decoding reads the whole cache every token anyway,
// so re-copying it once every GrowChunk tokens adds under 1/GrowChunk to
// attention's memory traffic.
func (s *Seq) Reserve(n int) {
	if have := s.Cap(); n > have {
		c := n
		if have > 0 {
			c = max(n, have+GrowChunk)
		}
		s.regrow(c)
	}
	need := n * s.KVDim
	for i := range s.Layers {
		l := &s.Layers[i]
		switch {
		case s.Is16():
			l.K16, l.V16 = l.K16[:need], l.V16[:need]
		case s.IsQ8():
			l.K8, l.V8 = l.K8[:need], l.V8[:need]
			l.KS, l.VS = l.KS[:need/Q8Block], l.VS[:need/Q8Block]
		default:
			l.K, l.V = l.K[:need], l.V[:need]
		}
	}
}

// regrow moves the rows to new Go-heap arrays of c positions, keeping the
// first Len positions (a fixed cache asked for more than it was given moves
// to the heap rather than fail).
func (s *Seq) regrow(c int) {
	keep := s.Len * s.KVDim
	size := c * s.KVDim
	for i := range s.Layers {
		l := &s.Layers[i]
		switch {
		case s.Is16():
			l.K16, l.V16 = moved(l.K16, size, keep), moved(l.V16, size, keep)
		case s.IsQ8():
			l.K8, l.V8 = moved(l.K8, size, keep), moved(l.V8, size, keep)
			l.KS, l.VS = moved(l.KS, size/Q8Block, keep/Q8Block), moved(l.VS, size/Q8Block, keep/Q8Block)
		default:
			l.K, l.V = moved(l.K, size, keep), moved(l.V, size, keep)
		}
	}
	s.release()
}

// moved returns a new Go array of n elements holding old's first keep (or
// all of old, if shorter).
func moved[T any](old []T, n, keep int) []T {
	s := make([]T, n)
	copy(s, old[:min(keep, len(old))])
	return s
}

// Truncate forgets positions from n on (used to roll back or reuse a prefix).
func (s *Seq) Truncate(n int) {
	if n < s.Len {
		s.Len = n
	}
}

// Free drops the rows. A NewFixed cache's block goes back to the OS at once;
// the cache is then empty, and Reserve would allocate anew.
func (s *Seq) Free() {
	for i := range s.Layers {
		s.Layers[i] = Layer{}
	}
	s.release()
	s.Len = 0
}

func (s *Seq) release() {
	if s.mapped != nil {
		s.mapped.free()
		s.mapped = nil
	}
}

// Bytes is the memory the cache holds (its capacity; a NewFixed block's
// pages become resident only as they are written).
func (s *Seq) Bytes() int {
	dt := s.DType
	if !dt.Is16() && dt != Q8_0 {
		dt = tensor.F32
	}
	return int(BytesPerPosition(dt, len(s.Layers), s.KVDim)) * s.Cap()
}
