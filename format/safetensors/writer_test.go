package safetensors

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rt.safetensors")
	in := sampleTensors()
	meta := map[string]string{"format": "pt", "note": `quotes " and \ and é and <&>`}
	if err := Write(path, in, meta); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !reflect.DeepEqual(f.Metadata, meta) {
		t.Errorf("metadata %v, want %v", f.Metadata, meta)
	}
	if len(f.Names()) != len(in) {
		t.Fatalf("%d tensors, want %d", len(f.Names()), len(in))
	}
	for _, w := range in {
		got, ok := f.Tensor(w.Name)
		if !ok {
			t.Fatalf("%s missing", w.Name)
		}
		if got.DType != w.DType || !reflect.DeepEqual(got.Shape, w.Shape) || !bytes.Equal(got.Data, w.Data) {
			t.Errorf("%s: got %s %v %x, want %s %v %x", w.Name, got.DType, got.Shape, got.Data, w.DType, w.Shape, w.Data)
		}
	}

	// The bytes are what Marshal produces, the header is 8-byte padded and
	// every tensor is aligned to its element size within the file.
	b, _ := os.ReadFile(path)
	m, err := Marshal(in, meta)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, m) {
		t.Error("Write and Marshal differ")
	}
	n := binary.LittleEndian.Uint64(b)
	if n%8 != 0 {
		t.Errorf("header length %d not a multiple of 8", n)
	}
	// Rewriting what was read reproduces the file byte for byte.
	var again []Writable
	for _, name := range f.Names() {
		tt, _ := f.Tensor(name)
		again = append(again, tt.Writable())
	}
	if b2, err := Marshal(again, f.Metadata); err != nil || !bytes.Equal(b2, b) {
		t.Errorf("re-marshal differs (err %v)", err)
	}

	// No temp files left behind.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("dir has %d entries, want 1", len(entries))
	}
}

// The header order is the reference writer's: dtype by decreasing alignment
// (I64 > F64 > F32 > I32 > BF16 > F16 > I16 > I8 > U8 > BOOL), then name;
// so all data is naturally aligned.
func TestWriteOrderAndAlignment(t *testing.T) {
	b, err := Marshal(sampleTensors(), nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse("order", b)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"empty.i64", "ids", "f64", "empty", "loss", "w.f32", "i32", "w.bf16", "w.f16", "i16", "i8", "u8", "mask"}
	if got := f.Names(); !reflect.DeepEqual(got, want) {
		t.Errorf("order %v\nwant %v", got, want)
	}
	n := binary.LittleEndian.Uint64(b)
	hdr := string(b[8 : 8+n])
	if strings.Index(hdr, `"empty.i64"`) > strings.Index(hdr, `"mask"`) {
		t.Error("header key order differs from data order")
	}
	base := 8 + int(n)
	pos := base
	for _, name := range f.Names() {
		tt, _ := f.Tensor(name)
		if pos%tt.DType.Size() != 0 {
			t.Errorf("%s at file offset %d, not aligned to %d", name, pos, tt.DType.Size())
		}
		pos += len(tt.Data)
	}
}

// Byte-exact outputs from the Rust safetensors test suite
// (test_serialization, test_serialization_forced_alignement, test_empty).
func TestWriteMatchesReference(t *testing.T) {
	vals := F32Bytes([]float32{0, 1, 2, 3, 4, 5})
	le := func(n int) string { return string(binary.LittleEndian.AppendUint64(nil, uint64(n))) }
	cases := []struct {
		name    string
		tensors []Writable
		meta    map[string]string
		want    string
	}{
		{"serialization", []Writable{{Name: "attn.0", DType: "F32", Shape: []int{1, 2, 3}, Data: vals}}, nil,
			le(64) + `{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}` + string(vals)},
		{"forced alignment", []Writable{{Name: "attn0", DType: "F32", Shape: []int{1, 1, 2, 3}, Data: vals}}, nil,
			le(72) + `{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       ` + string(vals)},
		{"empty", nil, nil, le(8) + `{}      `},
		{"empty with metadata", nil, map[string]string{"framework": "pt"},
			le(40) + `{"__metadata__":{"framework":"pt"}}     `},
	}
	for _, c := range cases {
		got, err := Marshal(c.tensors, c.meta)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
		if _, err := Parse(c.name, got); err != nil {
			t.Error(err)
		}
	}
}

func TestEncodeRounding(t *testing.T) {
	u16 := func(b []byte) []uint16 {
		out := make([]uint16, len(b)/2)
		for i := range out {
			out[i] = binary.LittleEndian.Uint16(b[2*i:])
		}
		return out
	}
	one := float32(1)
	bf := u16(BF16Bytes([]float32{
		one,
		math.Float32frombits(0x3f808000), // halfway between 0x3f80 and 0x3f81: to even
		math.Float32frombits(0x3f818000), // halfway between 0x3f81 and 0x3f82: to even
		math.Float32frombits(0x3f808001), // just above halfway: up
		float32(math.Inf(-1)),
	}))
	if want := []uint16{0x3f80, 0x3f80, 0x3f82, 0x3f81, 0xff80}; !reflect.DeepEqual(bf, want) {
		t.Errorf("BF16 %x, want %x", bf, want)
	}
	h := u16(F16Bytes([]float32{1, -2, 65504, 65520, 1 + 1.0/2048, 1 + 3.0/2048}))
	if want := []uint16{0x3c00, 0xc000, 0x7bff, 0x7c00, 0x3c00, 0x3c02}; !reflect.DeepEqual(h, want) {
		t.Errorf("F16 %x, want %x", h, want)
	}
	if got := I64Bytes([]int64{-1, 258}); !bytes.Equal(got, []byte{255, 255, 255, 255, 255, 255, 255, 255, 2, 1, 0, 0, 0, 0, 0, 0}) {
		t.Errorf("I64 %v", got)
	}
	if got := F32Bytes([]float32{1}); !bytes.Equal(got, []byte{0, 0, 0x80, 0x3f}) {
		t.Errorf("F32 %v", got)
	}
}

func TestWriteRejects(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.safetensors")
	ok := Writable{Name: "ok", DType: "F32", Shape: []int{1}, Data: make([]byte, 4)}
	cases := []struct {
		name   string
		ts     []Writable
		meta   map[string]string
		tensor string
		want   string
	}{
		{"unknown dtype", []Writable{{Name: "a", DType: "Q4", Shape: []int{1}, Data: []byte{0}}}, nil, "a", "unsupported dtype"},
		{"short data", []Writable{{Name: "a", DType: "F32", Shape: []int{2}, Data: make([]byte, 4)}}, nil, "a", "needs 8"},
		{"negative dim", []Writable{{Name: "a", DType: "F32", Shape: []int{-1}}}, nil, "a", "negative"},
		{"duplicate", []Writable{ok, ok}, nil, "ok", "duplicate"},
		{"empty name", []Writable{{DType: "U8", Shape: []int{0}}}, nil, "", "empty name"},
		{"reserved", []Writable{{Name: "__metadata__", DType: "U8", Shape: []int{0}}}, nil, "__metadata__", "reserved"},
		{"bad utf8 name", []Writable{{Name: "a\xff", DType: "U8", Shape: []int{0}}}, nil, "a\xff", "UTF-8"},
		{"bad utf8 metadata", []Writable{ok}, map[string]string{"k": "\xff"}, "", "UTF-8"},
	}
	for _, c := range cases {
		err := Write(path, c.ts, c.meta)
		want := []string{path, c.want}
		if c.tensor != "" {
			want = append(want, "tensor "+strconv.Quote(c.tensor))
		}
		wantErr(t, err, want...)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("failed writes left %d files", len(entries))
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.json")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(path, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "new" {
		t.Errorf("content %q", b)
	}
	// Same permissions as os.WriteFile would give (0666 minus umask), not
	// the 0600 of the temp file it started as.
	ref := filepath.Join(dir, "ref")
	if err := os.WriteFile(ref, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	rst, _ := os.Stat(ref)
	if st.Mode() != rst.Mode() {
		t.Errorf("mode %v, want %v", st.Mode(), rst.Mode())
	}
	os.Remove(ref)
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d entries, want 1", len(entries))
	}
	if err := WriteFileAtomic(filepath.Join(dir, "nodir", "x"), nil); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}
