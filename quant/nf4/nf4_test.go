package nf4

import (
	"errors"
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// ---------------------------------------------------------------------------
// An independent reference of the published algorithm, written from the
// definitions (bitsandbytes functional.py and csrc/kernels.cu), not from the
// package's code: nearest code value by brute force, packing by hand.

// nf4Values is the table from the QLoRA paper / bitsandbytes, as float64
// literals.
var nf4Values = []float64{
	-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
	-0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
	0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
	0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
}

// bnbThresholds are the 15 decision thresholds of bitsandbytes' NF4 tree
// (csrc/kernels.cu dQuantizeNF4, float literals, ascending): the midpoints
// of neighbouring code values, written as decimals and rounded to float32.
var bnbThresholds = []float32{
	-0.8480964004993439, -0.6106329262256622, -0.4599952697753906, -0.33967943489551544,
	-0.23460740596055984, -0.13791173323988914, -0.045525018125772476, 0.03979014977812767,
	0.1202552504837513, 0.2035212516784668, 0.2920137718319893, 0.3893125355243683,
	0.5016634166240692, 0.6427869200706482, 0.8614784181118011,
}

// refNF4 is the published rule: the index is the number of thresholds x is
// strictly above (a value on a threshold takes the lower code; NaN is above
// none and takes index 0).
func refNF4(x float32) byte {
	k := byte(0)
	for _, t := range bnbThresholds {
		if x > t {
			k++
		}
	}
	return k
}

// refNearestNF4 is the index of the nearest code value by exact distance,
// ties to the lower index.
func refNearestNF4(x float32) byte {
	best, bestD := 0, math.Inf(1)
	for k, c := range nf4Values {
		d := math.Abs(float64(x) - float64(float32(c)))
		if d < bestD {
			best, bestD = k, d
		}
	}
	return byte(best)
}

// refDynamicMap builds create_dynamic_map(signed=True) from its Python
// definition, line by line, with PyTorch's float32 linspace.
func refDynamicMap() []float32 {
	var data []float32
	const maxExp, nonSign = 7, 7
	for i := 0; i < maxExp; i++ {
		items := int(math.Pow(2, float64(i+nonSign-maxExp))) + 1
		var bounds []float32
		start, end := float32(0.1), float32(1)
		step := (end - start) / float32(items-1)
		for j := 0; j < items; j++ {
			if j < items/2 {
				bounds = append(bounds, start+float32(step*float32(j)))
			} else {
				bounds = append(bounds, end-float32(step*float32(items-1-j)))
			}
		}
		scale := float32(math.Pow(10, float64(-(maxExp-1)+i)))
		for j := 0; j+1 < items; j++ {
			data = append(data, scale*(float32(bounds[j]+bounds[j+1])/2))
		}
		for j := 0; j+1 < items; j++ {
			data = append(data, -scale*(float32(bounds[j]+bounds[j+1])/2))
		}
	}
	data = append(data, 0, 1)
	sort.Slice(data, func(a, b int) bool { return data[a] < data[b] })
	return data
}

// refNearestDynamic: the nearest of the 256 values, the boundaries being the
// float32 midpoints (a+b)·0.5 of neighbours; a value exactly on a midpoint
// goes to the even index of the two (bitsandbytes' bisection always ends on
// an even pivot, which wins ties).
func refNearestDynamic(code []float32, x float32) byte {
	k := 0
	for k < 255 && x > float32(code[k]+code[k+1])*0.5 {
		k++
	}
	if k < 255 && x == float32(code[k]+code[k+1])*0.5 && k%2 == 1 {
		k++
	}
	return byte(k)
}

type refResult struct {
	packed  []byte
	absmax  []float32
	qabsmax []byte
	nested  []float32
	offset  float32
}

func refQuantize(w []float32) refResult {
	n := len(w)
	nb := (n + 63) / 64
	r := refResult{packed: make([]byte, (n+1)/2), absmax: make([]float32, nb)}
	codes := make([]byte, 2*len(r.packed))
	for b := 0; b < nb; b++ {
		var am float32
		for i := b * 64; i < min(n, b*64+64); i++ {
			am = float32(math.Max(float64(am), math.Abs(float64(w[i]))))
		}
		r.absmax[b] = am
		inv := 1 / am
		for i := b * 64; i < min(len(codes), b*64+64); i++ {
			var v float32
			if i < n {
				v = w[i]
			}
			// With absmax 0, v·(1/0) is NaN (or ±Inf for v ≠ 0, impossible
			// here), which is above no threshold: index 0, as on the GPU.
			codes[i] = refNF4(v * inv)
		}
	}
	for j := range r.packed {
		r.packed[j] = codes[2*j]<<4 | codes[2*j+1]
	}
	// Double quantization.
	var sum float64
	for _, v := range r.absmax {
		sum += float64(v)
	}
	r.offset = float32(sum / float64(nb))
	dm := refDynamicMap()
	r.qabsmax = make([]byte, nb)
	for g := 0; g*256 < nb; g++ {
		var am float32
		for b := g * 256; b < min(nb, g*256+256); b++ {
			am = float32(math.Max(float64(am), math.Abs(float64(r.absmax[b]-r.offset))))
		}
		r.nested = append(r.nested, am)
		inv := 1 / am
		for b := g * 256; b < min(nb, g*256+256); b++ {
			if am == 0 {
				r.qabsmax[b] = 0
			} else {
				r.qabsmax[b] = refNearestDynamic(dm, (r.absmax[b]-r.offset)*inv)
			}
		}
	}
	return r
}

// ---------------------------------------------------------------------------

// TestTreeMidpoints: each threshold of bitsandbytes' tree is within one
// float32 ulp of the exact midpoint of its two codes, and the tree sends
// each threshold down and the next float32 up.
func TestTreeMidpoints(t *testing.T) {
	for k, th := range bnbThresholds {
		exact := (float64(Code[k]) + float64(Code[k+1])) / 2
		if ulp := float64(math.Nextafter32(th, 2) - th); math.Abs(float64(th)-exact) > ulp {
			t.Errorf("threshold %d/%d = %v, exact midpoint %v", k, k+1, th, exact)
		}
		if got := quantizeCode(th); got != byte(k) {
			t.Errorf("threshold %d/%d (%v) → %d, want %d", k, k+1, th, got, k)
		}
		if got := quantizeCode(math.Nextafter32(th, 2)); got != byte(k+1) {
			t.Errorf("just above threshold %d/%d → %d, want %d", k, k+1, got, k+1)
		}
	}
	for k, c := range Code {
		if c != float32(nf4Values[k]) {
			t.Errorf("Code[%d] = %v, want %v", k, c, nf4Values[k])
		}
	}
}

// TestTreeIsNearest compares the tree with the published threshold rule and
// with exact nearest-value search on every float32 within 64 ulps of each
// midpoint and on random values. The tree is the nearest code everywhere
// except on a threshold that the decimal-to-float32 rounding put above the
// exact midpoint (there the lower code wins by one ulp); those exceptions
// are listed.
func TestTreeIsNearest(t *testing.T) {
	exceptions := 0
	check := func(x float32) {
		got := quantizeCode(x)
		if want := refNF4(x); got != want {
			t.Fatalf("x = %v (%#x): tree %d, threshold rule %d", x, math.Float32bits(x), got, want)
		}
		if fast := quantizeCodeFinite(x); fast != got {
			t.Fatalf("x = %v (%#x): branch-free search %d, tree %d", x, math.Float32bits(x), fast, got)
		}
		if near := refNearestNF4(x); got != near {
			onThreshold := false
			for k, th := range bnbThresholds {
				exact := (float64(Code[k]) + float64(Code[k+1])) / 2
				onThreshold = onThreshold || (x == th && float64(th) > exact && got == byte(k) && near == byte(k+1))
			}
			if !onThreshold {
				t.Fatalf("x = %v: tree %d, nearest %d", x, got, near)
			}
			exceptions++
			t.Logf("bitsandbytes' tree differs from exact nearest at x = %v (%#x): %d, not %d", x, math.Float32bits(x), got, near)
		}
	}
	for k := 0; k < 15; k++ {
		x := bnbThresholds[k]
		for j := 0; j < 64; j++ {
			x = math.Nextafter32(x, -2)
		}
		for j := 0; j < 129; j++ {
			check(x)
			x = math.Nextafter32(x, 2)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200000; i++ {
		check(float32(rng.Float64()*2 - 1))
	}
	for _, c := range Code {
		check(c)
	}
	// Out of range and tiny values: the three rules agree (nearest-value
	// search is meaningless this far out).
	for _, x := range []float32{math.Nextafter32(1, 2), math.Nextafter32(-1, -2), float32(math.Copysign(0, -1)), 1e30, -1e30, 1e-40, -1e-40} {
		if a, b, c := quantizeCode(x), quantizeCodeFinite(x), refNF4(x); a != b || a != c {
			t.Errorf("x = %v: tree %d, branch-free %d, threshold rule %d", x, a, b, c)
		}
	}
	if exceptions > 15 {
		t.Errorf("%d exceptions", exceptions)
	}
	if got := quantizeCode(float32(math.NaN())); got != 0 {
		t.Errorf("NaN → %d, want 0 (the GPU tree)", got)
	}
}

func TestDynamicMap(t *testing.T) {
	ref := refDynamicMap()
	if len(ref) != 256 {
		t.Fatalf("reference map has %d values", len(ref))
	}
	for i, v := range DynamicCode {
		if v != ref[i] {
			t.Errorf("DynamicCode[%d] = %v (%#x), reference %v (%#x)", i, v, math.Float32bits(v), ref[i], math.Float32bits(ref[i]))
		}
	}
	// Shape of the code: strictly increasing, 0 at 127, 1 at 255, odd
	// symmetry of the 254 values around 0, each within a few float32 ulps of
	// its exact decimal definition 10^(e−6)·(0.1 + (j+½)·0.9/2^e).
	if DynamicCode[127] != 0 || DynamicCode[255] != 1 || DynamicCode[0] != -DynamicCode[254] {
		t.Errorf("anchors: [0]=%v [127]=%v [254]=%v [255]=%v", DynamicCode[0], DynamicCode[127], DynamicCode[254], DynamicCode[255])
	}
	for i := 1; i < 256; i++ {
		if !(DynamicCode[i] > DynamicCode[i-1]) {
			t.Fatalf("not increasing at %d: %v, %v", i, DynamicCode[i-1], DynamicCode[i])
		}
	}
	var exact []float64
	for e := 0; e < 7; e++ {
		for j := 0; j < 1<<e; j++ {
			exact = append(exact, math.Pow(10, float64(e-6))*(0.1+(float64(j)+0.5)*0.9/float64(int(1)<<e)))
		}
	}
	sort.Float64s(exact)
	for i, want := range exact {
		got := float64(DynamicCode[128+i])
		if math.Abs(got-want) > 4e-7*want {
			t.Errorf("DynamicCode[%d] = %v, exact definition %v", 128+i, got, want)
		}
		if DynamicCode[126-i] != -DynamicCode[128+i] {
			t.Errorf("asymmetric at %d", i)
		}
	}
}

// TestBisectionIsNearest compares bitsandbytes' bisection (quantizeDynamic)
// with the brute-force rule on values around every midpoint and at random.
func TestBisectionIsNearest(t *testing.T) {
	ref := refDynamicMap()
	check := func(x float32) {
		if got, want := quantizeDynamic(&DynamicCode, x), refNearestDynamic(ref, x); got != want {
			t.Fatalf("x = %v (%#x): bisection %d, reference %d", x, math.Float32bits(x), got, want)
		}
	}
	for k := 0; k < 255; k++ {
		mid := float32(ref[k]+ref[k+1]) * 0.5
		x := mid
		for j := 0; j < 8; j++ {
			x = math.Nextafter32(x, -2)
		}
		for j := 0; j < 17; j++ {
			check(x)
			x = math.Nextafter32(x, 2)
		}
		check(ref[k])
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 100000; i++ {
		check(float32(rng.Float64()*2 - 1))
		check(float32(rng.NormFloat64() * 1e-3))
	}
	check(-1)
	check(1)
	check(math.Nextafter32(1, 2))
	check(math.Nextafter32(-1, -2))
}

// testMatrices are the inputs of the bit-exactness tests: random and
// adversarial.
func testMatrices() []struct {
	name       string
	rows, cols int
	w          []float32
} {
	rng := rand.New(rand.NewPCG(5, 6))
	normal := func(n int, sigma float64) []float32 {
		w := make([]float32, n)
		for i := range w {
			w[i] = float32(rng.NormFloat64() * sigma)
		}
		return w
	}
	var cases []struct {
		name       string
		rows, cols int
		w          []float32
	}
	add := func(name string, rows, cols int, w []float32) {
		cases = append(cases, struct {
			name       string
			rows, cols int
			w          []float32
		}{name, rows, cols, w})
	}
	for _, s := range [][2]int{{1, 1}, {1, 2}, {1, 63}, {1, 64}, {1, 65}, {3, 33}, {7, 129}, {64, 64}, {17, 576}, {300, 257}, {256, 512}} {
		add("normal", s[0], s[1], normal(s[0]*s[1], 0.02))
	}
	// Uniform in [-1, 1] with a wide range of block scales.
	u := make([]float32, 96*160)
	for i := range u {
		u[i] = float32((rng.Float64()*2 - 1) * math.Pow(10, float64(i/640%7-3)))
	}
	add("uniform-scales", 96, 160, u)

	// Exact ties: blocks whose absmax is 1 (so x·(1/absmax) = x) holding every
	// threshold and its float32 neighbours, and one with absmax 2.
	var ties []float32
	for _, th := range bnbThresholds {
		ties = append(ties, th, math.Nextafter32(th, -2), math.Nextafter32(th, 2), -th)
	}
	ties = append(ties, 1)
	for len(ties)%64 != 0 {
		ties = append(ties, float32(rng.Float64()*2-1))
	}
	for i := 0; i < 64; i++ {
		ties = append(ties, 2*ties[i%60])
	}
	ties[len(ties)-1] = 2
	add("midpoint-ties", len(ties)/64, 64, ties)

	// A zero block among normal ones, an all-equal block, a negative
	// all-equal block, a block of one non-zero value, and a short last block.
	z := normal(5*64+10, 1)
	clear(z[64:128])
	for i := 128; i < 192; i++ {
		z[i] = 0.37
	}
	for i := 192; i < 256; i++ {
		z[i] = -3.5
	}
	clear(z[256:320])
	z[300] = -1e-3
	add("zero-and-constant-blocks", 1, len(z), z)
	add("all-zero", 4, 48, make([]float32, 4*48))

	// Absmax statistics that tie at dynamic-code midpoints: 256·3 blocks whose
	// absmax values equal offset + nested·midpoint exactly is hard to build,
	// so instead many blocks with identical absmax (nested absmax 0 for the
	// group) and groups where the absmax takes two values only.
	same := make([]float32, 512*64)
	for i := range same {
		same[i] = float32(int(i%7) - 3)
	}
	add("equal-absmax", 512, 64, same)
	two := make([]float32, 300*64)
	for i := range two {
		two[i] = float32(rng.Float64()*2 - 1)
		if i%64 == 0 {
			two[i] = float32(1 + (i/64)%2) // absmax 1 or 2
		}
	}
	add("two-absmax", 300, 64, two)
	return cases
}

// TestQuantizeMatchesReference: codes, absmax statistics and nested
// statistics are bit-identical to the independent reference, for the
// parallel Quantize and the sequential QuantizeRef, with and without double
// quantization.
func TestQuantizeMatchesReference(t *testing.T) {
	for _, c := range testMatrices() {
		want := refQuantize(c.w)
		for _, q := range []struct {
			name string
			fn   func([]float32, int, int, Options) (*Tensor, error)
		}{{"QuantizeWith", QuantizeWith}, {"QuantizeRef", QuantizeRef}} {
			for _, noDQ := range []bool{false, true} {
				got, err := q.fn(c.w, c.rows, c.cols, Options{NoDoubleQuant: noDQ})
				if err != nil {
					t.Fatalf("%s %s [%d,%d]: %v", q.name, c.name, c.rows, c.cols, err)
				}
				tag := func() string { return q.name + " " + c.name }
				if len(got.Packed) != len(want.packed) {
					t.Fatalf("%s: %d packed bytes, want %d", tag(), len(got.Packed), len(want.packed))
				}
				for i := range want.packed {
					if got.Packed[i] != want.packed[i] {
						t.Fatalf("%s: packed[%d] = %#02x, want %#02x (values %v, %v)", tag(), i, got.Packed[i], want.packed[i], c.w[2*i], c.w[min(2*i+1, len(c.w)-1)])
					}
				}
				if noDQ {
					if got.QAbsmax != nil || len(got.Absmax) != len(want.absmax) {
						t.Fatalf("%s: plain statistics missing", tag())
					}
					for b := range want.absmax {
						if got.Absmax[b] != want.absmax[b] {
							t.Fatalf("%s: absmax[%d] = %v, want %v", tag(), b, got.Absmax[b], want.absmax[b])
						}
					}
					continue
				}
				if math.Float32bits(got.Offset) != math.Float32bits(want.offset) {
					t.Fatalf("%s: offset %v, want %v", tag(), got.Offset, want.offset)
				}
				if len(got.NestedAbsmax) != len(want.nested) || len(got.QAbsmax) != len(want.qabsmax) {
					t.Fatalf("%s: %d nested / %d qabsmax, want %d / %d", tag(), len(got.NestedAbsmax), len(got.QAbsmax), len(want.nested), len(want.qabsmax))
				}
				for i := range want.nested {
					if got.NestedAbsmax[i] != want.nested[i] {
						t.Fatalf("%s: nested_absmax[%d] = %v, want %v", tag(), i, got.NestedAbsmax[i], want.nested[i])
					}
				}
				for b := range want.qabsmax {
					if got.QAbsmax[b] != want.qabsmax[b] {
						t.Fatalf("%s: qabsmax[%d] = %d, want %d", tag(), b, got.QAbsmax[b], want.qabsmax[b])
					}
				}
			}
		}
	}
}

// TestDequantize: Dequantize, DequantizeRows and DequantizeRef agree bit for
// bit with the formula Code[q]·(dyn[qa]·nested + offset) written here.
func TestDequantize(t *testing.T) {
	dm := refDynamicMap()
	for _, c := range testMatrices() {
		for _, noDQ := range []bool{false, true} {
			q, err := QuantizeWith(c.w, c.rows, c.cols, Options{NoDoubleQuant: noDQ})
			if err != nil {
				t.Fatal(err)
			}
			n := c.rows * c.cols
			want := make([]float32, n)
			for i := range want {
				code := q.Packed[i/2] >> 4
				if i%2 == 1 {
					code = q.Packed[i/2] & 15
				}
				b := i / 64
				var s float32
				if noDQ {
					s = q.Absmax[b]
				} else {
					s = float32(dm[q.QAbsmax[b]]*q.NestedAbsmax[b/256]) + q.Offset
				}
				want[i] = float32(nf4Values[code]) * s
			}
			got := make([]float32, n+3)
			got[n], got[n+1], got[n+2] = 7, 7, 7
			q.Dequantize(got)
			ref := make([]float32, n)
			DequantizeRef(q, ref)
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) || math.Float32bits(ref[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%s [%d]: Dequantize %v, DequantizeRef %v, want %v", c.name, i, got[i], ref[i], want[i])
				}
			}
			if got[n] != 7 || got[n+2] != 7 {
				t.Fatalf("%s: Dequantize wrote past the matrix", c.name)
			}
			if c.rows >= 3 {
				part := make([]float32, c.cols)
				q.DequantizeRows(part, 1, 2)
				for j := range part {
					if part[j] != want[c.cols+j] {
						t.Fatalf("%s: DequantizeRows row 1 col %d: %v, want %v", c.name, j, part[j], want[c.cols+j])
					}
				}
			}
			// Dequantizing and quantizing again is a fixed point of the codes
			// (without double quantization the absmax is reproduced exactly).
			if noDQ && c.name == "normal" {
				q2, err := QuantizeWith(got[:n], c.rows, c.cols, Options{NoDoubleQuant: true})
				if err != nil {
					t.Fatal(err)
				}
				for i := range q.Packed {
					if q2.Packed[i] != q.Packed[i] {
						t.Fatalf("%s: requantized packed[%d] %#x, want %#x", c.name, i, q2.Packed[i], q.Packed[i])
					}
				}
			}
		}
	}
}

func TestQuantizeRejects(t *testing.T) {
	w := make([]float32, 128)
	for _, c := range []struct {
		name       string
		w          []float32
		rows, cols int
	}{
		{"zero rows", w, 0, 128},
		{"negative cols", w, 1, -128},
		{"short data", w[:100], 2, 64},
		{"long data", w, 1, 64},
	} {
		if _, err := Quantize(c.w, c.rows, c.cols); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
	for _, bad := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		v := make([]float32, 128)
		v[77] = float32(bad)
		for _, fn := range []func([]float32, int, int, Options) (*Tensor, error){QuantizeWith, QuantizeRef} {
			_, err := fn(v, 2, 64, Options{})
			if !errors.Is(err, ErrNotFinite) {
				t.Errorf("%v: err = %v, want ErrNotFinite", bad, err)
			}
		}
	}
}

// TestBytesPerParameter: at most 0.52 bytes per weight (4.127 bits) on the
// shapes of real models.
func TestBytesPerParameter(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, s := range [][2]int{{256, 256}, {128, 256}, {768, 256}, {576, 576}, {1536, 576}, {576, 1536}} {
		w := make([]float32, s[0]*s[1])
		for i := range w {
			w[i] = float32(rng.NormFloat64())
		}
		q, err := Quantize(w, s[0], s[1])
		if err != nil {
			t.Fatal(err)
		}
		bpp := float64(q.Bytes()) / float64(len(w))
		t.Logf("[%d, %d]: %d bytes, %.5f bytes (%.4f bits) per parameter", s[0], s[1], q.Bytes(), bpp, 8*bpp)
		if bpp > 0.52 {
			t.Errorf("[%d, %d]: %.5f bytes per parameter > 0.52", s[0], s[1], bpp)
		}
	}
	// The asymptote: 4 + 8/64 + 32/(64·256) bits.
	if limit := (4 + 8.0/64 + 32.0/(64*256)) / 8; limit > 0.52 {
		t.Errorf("format limit %.5f > 0.52", limit)
	}
}
