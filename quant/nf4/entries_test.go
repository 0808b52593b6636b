package nf4

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

type entryMap map[string]Entry

func toMap(es []Entry) entryMap {
	m := entryMap{}
	for _, e := range es {
		m[e.Name] = e
	}
	return m
}

func (m entryMap) get(key string) (string, []int, []byte, bool) {
	e, ok := m[key]
	if !ok {
		return "", nil, nil, false
	}
	return e.DType, e.Shape, e.Data, true
}

func (m entryMap) clone() entryMap {
	c := entryMap{}
	for k, e := range m {
		e.Shape = append([]int(nil), e.Shape...)
		e.Data = append([]byte(nil), e.Data...)
		c[k] = e
	}
	return c
}

const wname = "model.layers.0.self_attn.q_proj.weight"

// TestEntriesLayout: the keys, dtypes, shapes and JSON blob bitsandbytes
// writes for a double-quantized NF4 weight (QuantState.as_dict(packed=True)
// under Linear4bit._save_to_state_dict), byte for byte where it is fixed.
func TestEntriesLayout(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	rows, cols := 300, 257 // 77100 weights: 1205 blocks, 5 nested blocks, odd nothing
	q, err := Quantize(randNormal(rng, rows*cols, 0.02), rows, cols)
	if err != nil {
		t.Fatal(err)
	}
	q.DType = "bfloat16"
	m := toMap(q.Entries(wname))
	want := []struct {
		key   string
		dtype string
		shape []int
	}{
		{wname, "U8", []int{38550, 1}},
		{wname + ".absmax", "U8", []int{1205}},
		{wname + ".quant_map", "F32", []int{16}},
		{wname + ".nested_absmax", "F32", []int{5}},
		{wname + ".nested_quant_map", "F32", []int{256}},
	}
	if len(m) != len(want)+1 {
		t.Fatalf("%d entries, want %d", len(m), len(want)+1)
	}
	for _, w := range want {
		e, ok := m[w.key]
		if !ok {
			t.Fatalf("missing %s", w.key)
		}
		if e.DType != w.dtype || !equalInts(e.Shape, w.shape) {
			t.Errorf("%s: %s %v, want %s %v", w.key, e.DType, e.Shape, w.dtype, w.shape)
		}
	}
	for i, c := range nf4Values {
		if got := math.Float32frombits(binary.LittleEndian.Uint32(m[wname+".quant_map"].Data[4*i:])); got != float32(c) {
			t.Errorf("quant_map[%d] = %v", i, got)
		}
	}
	dm := refDynamicMap()
	for i := range dm {
		if got := math.Float32frombits(binary.LittleEndian.Uint32(m[wname+".nested_quant_map"].Data[4*i:])); got != dm[i] {
			t.Errorf("nested_quant_map[%d] = %v, want %v", i, got, dm[i])
		}
	}
	blob := m[wname+".quant_state.bitsandbytes__nf4"]
	if blob.DType != "U8" || !equalInts(blob.Shape, []int{len(blob.Data)}) {
		t.Errorf("quant state: %s %v", blob.DType, blob.Shape)
	}
	// json.dumps of the dict in bitsandbytes' key order, ", " and ": "
	// separators, the offset as Python's repr of the float32 value.
	wantBlob := `{"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [300, 257], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": ` + pyFloat(float64(q.Offset)) + `}`
	if string(blob.Data) != wantBlob {
		t.Errorf("quant state\n got %s\nwant %s", blob.Data, wantBlob)
	}
	var parsed map[string]any
	if err := json.Unmarshal(blob.Data, &parsed); err != nil || float32(parsed["nested_offset"].(float64)) != q.Offset {
		t.Errorf("offset does not round-trip: %v %v", err, parsed["nested_offset"])
	}

	// Without double quantization: F32 absmax, no nested entries.
	p, _ := QuantizeWith(randNormal(rng, 128, 1), 2, 64, Options{NoDoubleQuant: true})
	pm := toMap(p.Entries("w"))
	if len(pm) != 4 || pm["w.absmax"].DType != "F32" || !equalInts(pm["w.absmax"].Shape, []int{2}) {
		t.Errorf("plain entries: %v", pm)
	}
	if got := string(pm["w.quant_state.bitsandbytes__nf4"].Data); got != `{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [2, 64]}` {
		t.Errorf("plain quant state %s", got)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestEntriesRoundTrip: FromEntries(Entries) gives back the same tensor
// (same dequantization), with and without double quantization, and keeps a
// file's own nested code table when it differs from DynamicCode.
func TestEntriesRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(33, 34))
	for _, o := range []Options{{}, {NoDoubleQuant: true}} {
		for _, s := range [][2]int{{1, 1}, {3, 33}, {64, 576}, {300, 257}} {
			q, err := QuantizeWith(randNormal(rng, s[0]*s[1], 0.1), s[0], s[1], o)
			if err != nil {
				t.Fatal(err)
			}
			got, err := FromEntries(wname, toMap(q.Entries(wname)).get)
			if err != nil {
				t.Fatalf("%v %v: %v", s, o, err)
			}
			if got.Rows != q.Rows || got.Cols != q.Cols || got.DType != "float32" || got.DoubleQuant() != q.DoubleQuant() || got.Offset != q.Offset {
				t.Fatalf("%v: header %+v", s, got)
			}
			a, b := make([]float32, q.Len()), make([]float32, q.Len())
			q.Dequantize(a)
			got.Dequantize(b)
			for i := range a {
				if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
					t.Fatalf("%v: dequantized [%d] %v, want %v", s, i, b[i], a[i])
				}
			}
			if got.Bytes() != q.Bytes() {
				t.Errorf("Bytes %d, want %d", got.Bytes(), q.Bytes())
			}
		}
	}
	// A nested code table one ulp off in one entry (as a PyTorch build with
	// a vectorised linspace could write) is kept and used.
	q, _ := Quantize(randNormal(rng, 64*64, 0.1), 64, 64)
	m := toMap(q.Entries(wname)).clone()
	nqm := m[wname+".nested_quant_map"]
	i := int(q.QAbsmax[0])
	binary.LittleEndian.PutUint32(nqm.Data[4*i:], math.Float32bits(math.Nextafter32(DynamicCode[i], 2)))
	got, err := FromEntries(wname, m.get)
	if err != nil {
		t.Fatal(err)
	}
	if got.NestedCode == nil || got.NestedCode[i] == DynamicCode[i] {
		t.Fatal("the file's nested code table was not kept")
	}
	want := float32(math.Nextafter32(DynamicCode[i], 2)*q.NestedAbsmax[0]) + q.Offset
	if got.BlockScale(0) != want {
		t.Errorf("block scale %v, want %v from the file's table", got.BlockScale(0), want)
	}
	// The fused kernels use it too.
	x := randNormal(rng, 64, 1)
	y1, y2 := make([]float32, 64), make([]float32, 64)
	MatMulT(y1, x, got, 1, false)
	MatMulTRef(y2, x, got, 1, false)
	if d := math.Abs(float64(y1[0] - y2[0])); d > 1e-5*(1+math.Abs(float64(y2[0]))) {
		t.Errorf("MatMulT with the file's table: %v, reference %v", y1[0], y2[0])
	}
}

// TestFromEntriesRejects: every inconsistency is an error naming the
// tensor, and nothing panics.
func TestFromEntriesRejects(t *testing.T) {
	rng := rand.New(rand.NewPCG(35, 36))
	q, _ := Quantize(randNormal(rng, 130*64, 0.1), 130, 64)
	base := toMap(q.Entries(wname))
	blobKey := wname + ".quant_state.bitsandbytes__nf4"
	setBlob := func(m entryMap, s string) {
		m[blobKey] = Entry{Name: blobKey, DType: "U8", Shape: []int{len(s)}, Data: []byte(s)}
	}
	okBlob := string(base[blobKey].Data)
	cases := []struct {
		name   string
		edit   func(m entryMap)
		substr string
	}{
		{"no quant state", func(m entryMap) { delete(m, blobKey) }, "not an NF4 weight"},
		{"fp4", func(m entryMap) {
			e := m[blobKey]
			delete(m, blobKey)
			m[wname+".quant_state.bitsandbytes__fp4"] = e
		}, "FP4"},
		{"bad json", func(m entryMap) { setBlob(m, "{not json") }, "JSON"},
		{"unknown field", func(m entryMap) { setBlob(m, strings.Replace(okBlob, "}", `, "extra": 1}`, 1)) }, "JSON"},
		{"quant type", func(m entryMap) { setBlob(m, strings.Replace(okBlob, `"nf4"`, `"fp4"`, 1)) }, "quant_type"},
		{"blocksize", func(m entryMap) { setBlob(m, strings.Replace(okBlob, `"blocksize": 64`, `"blocksize": 128`, 1)) }, "blocksize 128"},
		{"nested blocksize", func(m entryMap) {
			setBlob(m, strings.Replace(okBlob, `"nested_blocksize": 256`, `"nested_blocksize": 128`, 1))
		}, "nested_blocksize"},
		{"dtype", func(m entryMap) { setBlob(m, strings.Replace(okBlob, `"float32", "shape"`, `"int8", "shape"`, 1)) }, "dtype"},
		{"shape rank", func(m entryMap) { setBlob(m, strings.Replace(okBlob, `[130, 64]`, `[8320]`, 1)) }, "shape"},
		{"shape mismatch", func(m entryMap) { setBlob(m, strings.Replace(okBlob, `[130, 64]`, `[131, 64]`, 1)) }, "packed weight"},
		{"negative shape", func(m entryMap) { setBlob(m, strings.Replace(okBlob, `[130, 64]`, `[-130, -64]`, 1)) }, "shape"},
		{"huge shape", func(m entryMap) { setBlob(m, strings.Replace(okBlob, `[130, 64]`, `[4000000000, 4000000000]`, 1)) }, "shape"},
		{"partial nested", func(m entryMap) {
			setBlob(m, strings.Replace(okBlob, `, "nested_dtype": "float32"`, ``, 1))
		}, "nested"},
		{"nan offset", func(m entryMap) {
			i := strings.Index(okBlob, `"nested_offset": `)
			setBlob(m, okBlob[:i]+`"nested_offset": NaN}`)
		}, "JSON"},
		{"huge offset", func(m entryMap) {
			i := strings.Index(okBlob, `"nested_offset": `)
			setBlob(m, okBlob[:i]+`"nested_offset": 1e300}`)
		}, "not finite"},
		{"missing weight", func(m entryMap) { delete(m, wname) }, "missing the packed weight"},
		{"weight dtype", func(m entryMap) { e := m[wname]; e.DType = "I32"; m[wname] = e }, "dtype"},
		{"weight truncated", func(m entryMap) { e := m[wname]; e.Data = e.Data[:len(e.Data)-1]; m[wname] = e }, "packed weight"},
		{"weight shape", func(m entryMap) { e := m[wname]; e.Shape = []int{1, len(e.Data)}; m[wname] = e }, "packed weight"},
		{"missing absmax", func(m entryMap) { delete(m, wname+".absmax") }, "absmax"},
		{"absmax dtype", func(m entryMap) { e := m[wname+".absmax"]; e.DType = "F32"; m[wname+".absmax"] = e }, "dtype"},
		{"absmax length", func(m entryMap) {
			e := m[wname+".absmax"]
			e.Data = e.Data[:len(e.Data)-1]
			e.Shape = []int{len(e.Data)}
			m[wname+".absmax"] = e
		}, "absmax"},
		{"absmax shape vs data", func(m entryMap) { e := m[wname+".absmax"]; e.Shape = []int{7}; m[wname+".absmax"] = e }, "bytes for shape"},
		{"missing quant map", func(m entryMap) { delete(m, wname+".quant_map") }, "quant_map"},
		{"wrong quant map", func(m entryMap) {
			e := m[wname+".quant_map"]
			binary.LittleEndian.PutUint32(e.Data[4:], math.Float32bits(-0.5))
		}, "NF4 code"},
		{"missing nested absmax", func(m entryMap) { delete(m, wname+".nested_absmax") }, "nested_absmax"},
		{"nested absmax negative", func(m entryMap) {
			binary.LittleEndian.PutUint32(m[wname+".nested_absmax"].Data, math.Float32bits(-1))
		}, "nested_absmax[0]"},
		{"nested absmax nan", func(m entryMap) {
			binary.LittleEndian.PutUint32(m[wname+".nested_absmax"].Data, math.Float32bits(float32(math.NaN())))
		}, "nested_absmax[0]"},
		{"missing nested map", func(m entryMap) { delete(m, wname+".nested_quant_map") }, "nested_quant_map"},
		{"nested map out of range", func(m entryMap) {
			binary.LittleEndian.PutUint32(m[wname+".nested_quant_map"].Data[8:], math.Float32bits(3))
		}, "outside [-1, 1]"},
		{"nested map short", func(m entryMap) {
			e := m[wname+".nested_quant_map"]
			e.Data, e.Shape = e.Data[:1020], []int{255}
			m[wname+".nested_quant_map"] = e
		}, "[256]"},
		{"big blob", func(m entryMap) { setBlob(m, okBlob+strings.Repeat(" ", maxBlob)) }, "quant state is"},
	}
	for _, c := range cases {
		m := base.clone()
		c.edit(m)
		_, err := FromEntries(wname, m.get)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if !strings.Contains(err.Error(), wname) || !strings.Contains(err.Error(), c.substr) {
			t.Errorf("%s: error %q should name the tensor and say %q", c.name, err, c.substr)
		}
	}
	if _, err := FromEntries(wname, base.get); err != nil {
		t.Fatalf("the unedited entries: %v", err)
	}
}

// TestFromEntriesNeverPanics flips random bytes of the blob and truncates
// random tensors.
func TestFromEntriesNeverPanics(t *testing.T) {
	rng := rand.New(rand.NewPCG(37, 38))
	q, _ := Quantize(randNormal(rng, 10*64, 0.1), 10, 64)
	base := toMap(q.Entries(wname))
	keys := make([]string, 0, len(base))
	for k := range base {
		keys = append(keys, k)
	}
	for i := 0; i < 3000; i++ {
		m := base.clone()
		k := keys[rng.IntN(len(keys))]
		e := m[k]
		switch rng.IntN(4) {
		case 0:
			if len(e.Data) > 0 {
				e.Data[rng.IntN(len(e.Data))] ^= byte(1 + rng.IntN(255))
			}
		case 1:
			e.Data = e.Data[:rng.IntN(len(e.Data)+1)]
		case 2:
			if len(e.Shape) > 0 {
				e.Shape[rng.IntN(len(e.Shape))] = rng.IntN(5000) - 10
			}
		case 3:
			e.DType = []string{"U8", "F32", "F16", "BF16", "I64", ""}[rng.IntN(6)]
		}
		m[k] = e
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("FromEntries panicked after editing %s: %v", k, r)
				}
			}()
			got, err := FromEntries(wname, m.get)
			if err == nil {
				// Whatever was accepted must be usable.
				d := make([]float32, got.Len())
				got.Dequantize(d)
				y := make([]float32, got.Rows)
				MatMulT(y, make([]float32, got.Cols), got, 1, false)
			}
		}()
	}
}

// TestQuantStorageView: bitsandbytes' quant_storage option saves the same
// packed bytes viewed as another dtype; they read the same.
func TestQuantStorageView(t *testing.T) {
	rng := rand.New(rand.NewPCG(39, 40))
	q, _ := Quantize(randNormal(rng, 8*64, 0.1), 8, 64)
	m := toMap(q.Entries(wname)).clone()
	e := m[wname]
	e.DType, e.Shape = "BF16", []int{len(e.Data) / 2, 1}
	m[wname] = e
	got, err := FromEntries(wname, m.get)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Packed, q.Packed) {
		t.Error("packed bytes differ")
	}
}

func TestPyFloat(t *testing.T) {
	for _, c := range []struct {
		v    float64
		want string
	}{
		{0, "0.0"}, {1, "1.0"}, {-2, "-2.0"}, {0.5, "0.5"}, {0.0001, "0.0001"}, {0.00001, "1e-05"},
		{1.5e-7, "1.5e-07"}, {123456789, "123456789.0"}, {1e16, "1e+16"}, {1.2345678901234567e16, "1.2345678901234568e+16"},
		{float64(float32(0.0123)), "0.012299999594688416"}, {-0.03125, "-0.03125"}, {1e22, "1e+22"}, {3.14e-100, "3.14e-100"},
	} {
		if got := pyFloat(c.v); got != c.want {
			t.Errorf("pyFloat(%v) = %s, want %s", c.v, got, c.want)
		}
	}
}
