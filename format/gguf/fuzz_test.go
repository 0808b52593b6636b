package gguf

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParse: no input may panic, errors must wrap ErrInvalid or
// ErrUnsupported, and whatever parses and re-encodes must parse back to the
// same metadata and tensors. The seeds (valid writer output, the malformed
// cases of TestParseErrors, and truncations) run in plain `go test`.
func FuzzParse(f *testing.F) {
	kv := sampleKV()
	tensors := sampleTensors()
	var q8 []byte
	for range 2 {
		q8 = append(q8, q8Block(0.5, [32]int8{1, -2, 3, 127, -128})...)
	}
	withQuant := append(tensors, WriteTensor{Name: "q8", Shape: []int{64}, Type: Q8_0, Data: q8},
		WriteTensor{Name: "q4", Shape: []int{32}, Type: Q4_0, Data: q4Block(2, [32]uint8{1, 15, 8})})
	seeds := [][]byte{
		encode(f, nil, nil),
		encode(f, kv, nil),
		encode(f, nil, tensors),
		encode(f, kv, withQuant),
		encode(f, append(kv[:2:2], KeyValue{"general.alignment", NewUint32(8)}), tensors[:1]),
	}
	full := seeds[3]
	for _, n := range []int{3, 23, 24, 40, len(full) / 2, len(full) - 1} {
		seeds = append(seeds, full[:n])
	}
	for _, tc := range badCases() {
		seeds = append(seeds, tc.data)
	}
	for _, s := range seeds {
		f.Add(s)
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("fuzz.gguf", data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error wraps neither ErrInvalid nor ErrUnsupported: %v", err)
			}
			return
		}
		if len(file.Keys) != len(file.KV) {
			t.Fatalf("%d keys, %d values", len(file.Keys), len(file.KV))
		}
		var out []KeyValue
		for _, k := range file.Keys {
			v := file.KV[k]
			// Exercise every accessor; none may panic on any value.
			v.String()
			v.Int()
			v.Uint()
			v.Float()
			v.Bool()
			v.Strings()
			v.Ints()
			v.Floats()
			v.Values()
			v.Len()
			out = append(out, KeyValue{k, v})
		}
		var ws []WriteTensor
		for _, ti := range file.Tensors {
			size, err := ti.ByteSize()
			if err != nil || size != len(ti.Data) {
				t.Fatalf("tensor %q: ByteSize %d, %v; %d bytes of data", ti.Name, size, err, len(ti.Data))
			}
			x, err := ti.Float32()
			if err == nil && len(x) != ti.NumElements() {
				t.Fatalf("tensor %q: %d values for %d elements", ti.Name, len(x), ti.NumElements())
			}
			if err != nil && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("tensor %q: %v", ti.Name, err)
			}
			ws = append(ws, WriteTensor{Name: ti.Name, Shape: ti.Shape(), Type: ti.Type, Data: ti.Data})
		}

		// Round trip. Encode is stricter than Parse (names < 64 bytes, a
		// u32 alignment, no 0-dim tensors), so only its successes count.
		var buf bytes.Buffer
		if Encode(&buf, out, ws) != nil {
			return
		}
		again, err := Parse("again.gguf", buf.Bytes())
		if err != nil {
			t.Fatalf("re-encoded file does not parse: %v", err)
		}
		for _, k := range file.Keys {
			if !again.KV[k].Equal(file.KV[k]) {
				t.Fatalf("key %q changed in the round trip", k)
			}
		}
		for i, ti := range file.Tensors {
			a := again.Tensors[i]
			if a.Name != ti.Name || a.Type != ti.Type || !bytes.Equal(a.Data, ti.Data) || len(a.Dims) != len(ti.Dims) {
				t.Fatalf("tensor %q changed in the round trip", ti.Name)
			}
		}
	})
}
