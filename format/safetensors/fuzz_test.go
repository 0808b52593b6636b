package safetensors

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// checkFile asserts the invariants every successfully parsed file must
// satisfy, whatever bytes it came from.
func checkFile(t *testing.T, names []string, lookup func(string) (Tensor, bool)) {
	t.Helper()
	for _, name := range names {
		tt, ok := lookup(name)
		if !ok {
			t.Fatalf("Names lists %q but Tensor does not find it", name)
		}
		size := tt.DType.Size()
		if size == 0 {
			t.Fatalf("%q: accepted dtype %q", name, tt.DType)
		}
		if len(tt.Data) != tt.NumElements()*size {
			t.Fatalf("%q: %d bytes for %s%v", name, len(tt.Data), tt.DType, tt.Shape)
		}
		fl, ferr := tt.Float32()
		in, ierr := tt.Int64()
		if (ferr == nil) == (ierr == nil) {
			t.Fatalf("%q (%s): Float32 err %v, Int64 err %v: exactly one should work", name, tt.DType, ferr, ierr)
		}
		if ferr == nil && len(fl) != tt.NumElements() || ierr == nil && len(in) != tt.NumElements() {
			t.Fatalf("%q: converted length differs from NumElements", name)
		}
	}
}

func FuzzParse(f *testing.F) {
	// Valid files of every shape of interest...
	valid := [][]Writable{
		nil,
		sampleTensors(),
		{{Name: "x", DType: "F32", Shape: []int{}, Data: F32Bytes([]float32{1})}},
		{{Name: "e", DType: "BF16", Shape: []int{0, 3}, Data: nil}, {Name: "i", DType: "I64", Shape: []int{2}, Data: I64Bytes([]int64{1, -1})}},
	}
	for _, ts := range valid {
		b, err := Marshal(ts, map[string]string{"format": "pt"})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		if len(b) > 12 {
			f.Add(b[:len(b)-1])                 // truncated data
			f.Add(append(b[:len(b):len(b)], 0)) // trailing byte
		}
	}
	// ...and hand-written edge cases.
	for _, b := range [][]byte{
		nil,
		{8, 0, 0, 0, 0, 0, 0, 0},
		raw(`{}`, nil),
		raw(`{"__metadata__":null}`, nil),
		raw(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)),
		raw(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, make([]byte, 12)),
		raw(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}`, nil),
		raw(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"U8","shape":[],"data_offsets":[0,1]}}`, []byte{1}),
		raw(`{"a":{"dtype":"I8","shape":[1],"data_offsets":[0,1],"x":[[[{}]]]}}`, []byte{0x80}),
	} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("fuzz", data)
		if err != nil {
			if _, ok := err.(*FormatError); !ok {
				t.Fatalf("error %T is not a *FormatError: %v", err, err)
			}
			return
		}
		names := file.Names()
		checkFile(t, names, file.Tensor)

		// Whatever we accept we can write, and writing then reading gives
		// the same tensors (the bytes may differ: order, padding, escapes).
		var ws []Writable
		for _, n := range names {
			if n == "" { // legal to read, but Write rejects empty names
				return
			}
			tt, _ := file.Tensor(n)
			ws = append(ws, tt.Writable())
		}
		out, err := Marshal(ws, file.Metadata)
		if err != nil {
			t.Fatalf("re-marshal: %v", err)
		}
		again, err := Parse("again", out)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if !reflect.DeepEqual(again.Metadata, file.Metadata) || len(again.Names()) != len(names) {
			t.Fatal("round trip changed metadata or tensor count")
		}
		for _, w := range ws {
			g, ok := again.Tensor(w.Name)
			if !ok || g.DType != w.DType || !reflect.DeepEqual(g.Shape, w.Shape) || !bytes.Equal(g.Data, w.Data) {
				t.Fatalf("round trip changed %q", w.Name)
			}
		}
		// Marshal's output is canonical: a second pass is byte-identical.
		if out2, _ := Marshal(ws, again.Metadata); !bytes.Equal(out, out2) {
			t.Fatal("Marshal not deterministic")
		}
	})
}

func FuzzOpenDirIndex(f *testing.F) {
	// Shards shared by all iterations; each iteration gets its own folder.
	proto := shardedDir(f)
	shardBytes := map[string][]byte{}
	for _, s := range []string{shard1, shard2, shard3} {
		b, err := os.ReadFile(filepath.Join(proto, s))
		if err != nil {
			f.Fatal(err)
		}
		shardBytes[s] = b
	}
	good, err := os.ReadFile(filepath.Join(proto, "model.safetensors.index.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	for _, s := range []string{
		`{"weight_map":{"a":"` + shard1 + `","b":"` + shard2 + `","c":"` + shard3 + `"}}`,
		`{"weight_map":{"a":"../` + shard1 + `"}}`,
		`{"weight_map":{"a":"./` + shard1 + `"}}`,
		`{"weight_map":{"a":"sub/../` + shard1 + `"}}`,
		`{"weight_map":{"a":"/` + shard1 + `"}}`,
		`{"weight_map":{"a":"` + shard2 + `"}}`,
		`{"weight_map":{"a":"` + shard1 + `","a":"` + shard1 + `"}}`,
		`{"weight_map":{}}`,
		`{"metadata":null,"weight_map":{"a":"` + shard1 + `"}}`,
		`{"weight_map":{"a":"."}}`,
		`{"weight_map":{"a":"model.safetensors.index.json"}}`,
		`[]`, ``, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, index []byte) {
		dir := t.TempDir()
		for name, b := range shardBytes {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), index, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := OpenDir(dir)
		if err != nil {
			return
		}
		defer s.Close()
		wm, err := parseIndex("index", index)
		if err != nil {
			t.Fatalf("OpenDir accepted an index parseIndex rejects: %v", err)
		}
		if s.Len() != len(wm) {
			t.Fatalf("%d tensors for %d weight_map entries", s.Len(), len(wm))
		}
		for name, shard := range wm {
			if !filepath.IsLocal(shard) {
				t.Fatalf("accepted shard path %q", shard)
			}
			if _, ok := s.Tensor(name); !ok {
				t.Fatalf("weight_map tensor %q missing", name)
			}
		}
		checkFile(t, s.Names(), s.Tensor)
	})
}
