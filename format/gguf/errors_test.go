package gguf

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type badCase struct {
	name string
	data []byte
	is   error    // ErrInvalid or ErrUnsupported
	want []string // substrings of the message besides the file name
}

// badCases are malformed or unsupported inputs, each with the error it must
// produce. They double as fuzz seeds.
func badCases() []badCase {
	valid := func() *raw { return header(3, 0, 0) }
	oneTensor := func(name string, dims []uint64, typ GGMLType, off uint64) []byte {
		r := header(3, 1, 0).tensor(name, dims, typ, off).pad(32)
		return r.zeros(64).b
	}
	return []badCase{
		{"empty", nil, ErrInvalid, []string{"magic", "offset 0"}},
		{"bad magic", []byte("GGML\x03\x00\x00\x00"), ErrInvalid, []string{"not a GGUF file"}},
		{"truncated version", []byte("GGUF\x03"), ErrInvalid, []string{"version", "offset 4"}},
		{"version 1", header(1, 0, 0).b, ErrUnsupported, []string{"version 1"}},
		{"version 4", header(4, 0, 0).b, ErrUnsupported, []string{"unknown version 4"}},
		{"big endian", header(3<<24, 0, 0).b, ErrUnsupported, []string{"big-endian"}},
		{"truncated counts", valid().b[:20], ErrInvalid, []string{"kv_count", "offset 16"}},
		{"huge kv count", header(3, 0, math.MaxUint64).b, ErrInvalid, []string{"kv_count"}},
		{"huge tensor count", header(3, 1<<40, 0).b, ErrInvalid, []string{"tensor_count"}},
		{"key length beyond file", header(3, 0, 1).u64(1 << 40).zeros(8).b, ErrInvalid, []string{"key #0", "offset 24"}},
		{"key too long", header(3, 0, 1).u64(1 << 16).zeros(1 << 16).b, ErrInvalid, []string{"limit of 65535"}},
		{"duplicate key", header(3, 0, 2).kvU32("a.b", 1).kvU32("a.b", 2).b, ErrInvalid, []string{`key "a.b"`, "duplicate", "offset 43"}},
		{"unknown value type", header(3, 0, 1).str("k").u32(13).zeros(8).b, ErrInvalid, []string{`key "k"`, "unknown value type 13"}},
		{"bool 2", header(3, 0, 1).str("k").u32(uint32(TypeBool)).u8(2).b, ErrInvalid, []string{`key "k"`, "want 0 or 1"}},
		{"truncated u64 value", header(3, 0, 1).str("k").u32(uint32(TypeUint64)).zeros(3).b, ErrInvalid, []string{`key "k"`, "u64"}},
		{"string value beyond file", header(3, 0, 1).str("k").u32(uint32(TypeString)).u64(100).zeros(5).b, ErrInvalid, []string{`key "k"`, "string"}},
		{"array count beyond file", header(3, 0, 1).str("tokenizer.ggml.tokens").u32(uint32(TypeArray)).u32(uint32(TypeString)).u64(150000).zeros(64).b,
			ErrInvalid, []string{`key "tokenizer.ggml.tokens"`, "150000 elements"}},
		{"array of u64 count overflow", header(3, 0, 1).str("k").u32(uint32(TypeArray)).u32(uint32(TypeUint64)).u64(1 << 62).zeros(64).b,
			ErrInvalid, []string{"elements of type u64"}},
		{"array unknown element", header(3, 0, 1).str("k").u32(uint32(TypeArray)).u32(99).u64(1).zeros(8).b, ErrInvalid, []string{"unknown element type 99"}},
		{"array element string truncated", header(3, 0, 1).str("k").u32(uint32(TypeArray)).u32(uint32(TypeString)).u64(2).str("ok").u64(9).b,
			ErrInvalid, []string{"array element 1"}},
		{"arrays nested too deep", func() []byte {
			r := header(3, 0, 1).str("k").u32(uint32(TypeArray))
			for range 6 {
				r.u32(uint32(TypeArray)).u64(1)
			}
			return r.zeros(64).b
		}(), ErrInvalid, []string{"nested deeper"}},
		{"bool array 7", header(3, 0, 1).str("k").u32(uint32(TypeArray)).u32(uint32(TypeBool)).u64(2).u8(0).u8(7).b, ErrInvalid, []string{"array element 1", "want 0 or 1"}},
		{"alignment zero", header(3, 0, 1).kvU32("general.alignment", 0).b, ErrInvalid, []string{"general.alignment", "power of two"}},
		{"alignment 24", header(3, 0, 1).kvU32("general.alignment", 24).b, ErrInvalid, []string{"general.alignment"}},
		{"alignment string", header(3, 0, 1).str("general.alignment").u32(uint32(TypeString)).str("32").b, ErrInvalid, []string{"general.alignment", "unsigned"}},
		{"tensor name too long", oneTensor(strings.Repeat("x", 65), []uint64{1}, F32, 0), ErrInvalid, []string{"tensor #0", "tensor name", "limit of 64"}},
		{"five dims", oneTensor("t", []uint64{1, 1, 1, 1, 1}, F32, 0), ErrInvalid, []string{`tensor "t"`, "n_dims 5"}},
		{"negative dim", oneTensor("t", []uint64{1 << 63}, F32, 0), ErrInvalid, []string{`tensor "t"`, "negative"}},
		{"dims overflow", oneTensor("t", []uint64{1 << 32, 1 << 32}, F32, 0), ErrInvalid, []string{`tensor "t"`, "overflows"}},
		{"bytes overflow", oneTensor("t", []uint64{1 << 62}, F32, 0), ErrInvalid, []string{`tensor "t"`, "byte size overflows"}},
		{"removed type 4", oneTensor("t", []uint64{32}, 4, 0), ErrInvalid, []string{`tensor "t"`, "unknown ggml type id 4"}},
		{"unknown type 77", oneTensor("t", []uint64{32}, 77, 0), ErrInvalid, []string{"unknown ggml type id 77"}},
		{"q8_0 partial block", oneTensor("blk.0.attn_q.weight", []uint64{33, 2}, Q8_0, 0), ErrInvalid,
			[]string{`tensor "blk.0.attn_q.weight"`, "ne0 = 33", "Q8_0 block size 32"}},
		{"q4_k partial block", oneTensor("t", []uint64{128}, Q4_K, 0), ErrInvalid, []string{"Q4_K block size 256"}},
		{"misaligned offset", oneTensor("t", []uint64{2}, F32, 4), ErrInvalid, []string{`tensor "t"`, "data offset 4 is not a multiple of the alignment 32"}},
		{"data past end", oneTensor("t", []uint64{17}, F32, 0), ErrInvalid, []string{`tensor "t"`, "past the end", "file offset 64"}},
		{"offset past end", oneTensor("t", []uint64{1}, F32, 1<<40), ErrInvalid, []string{`tensor "t"`, "past the end"}},
		{"offset wraps", oneTensor("t", []uint64{16}, F32, math.MaxUint64-31), ErrInvalid, []string{`tensor "t"`}},
		{"duplicate tensor", func() []byte {
			return header(3, 2, 0).tensor("t", []uint64{1}, F32, 0).tensor("t", []uint64{1}, F32, 32).pad(32).zeros(64).b
		}(), ErrInvalid, []string{`tensor "t"`, "duplicate name"}},
		{"truncated tensor info", header(3, 1, 0).str("t").u32(2).u64(4).zeros(3).b, ErrInvalid, []string{`tensor "t"`, "dimension"}},
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range badCases() {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse("bad.gguf", tc.data)
			if err == nil {
				t.Fatalf("Parse succeeded: %d tensors, keys %v", len(f.Tensors), f.Keys)
			}
			if !errors.Is(err, tc.is) {
				t.Errorf("error %q does not wrap %v", err, tc.is)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "gguf bad.gguf: ") {
				t.Errorf("error %q does not start with the file name", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "missing.gguf")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open(missing) = %v", err)
	}
	empty := filepath.Join(dir, "empty.gguf")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(empty); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), empty) {
		t.Errorf("Open(empty) = %v", err)
	}
	bad := filepath.Join(dir, "bad.gguf")
	if err := os.WriteFile(bad, badCases()[len(badCases())-3].data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(bad); !errors.Is(err, ErrInvalid) {
		t.Errorf("Open(bad) = %v", err)
	}
}

// TestEdgeCasesAccepted: inputs that are odd but valid.
func TestEdgeCasesAccepted(t *testing.T) {
	t.Run("no padding after infos when no data", func(t *testing.T) {
		f, err := Parse("x", header(2, 0, 1).kvU32("a", 1).b)
		if err != nil || f.Version != 2 || len(f.KV) != 1 {
			t.Fatalf("%v %+v", err, f)
		}
	})
	t.Run("empty tensor at the very end", func(t *testing.T) {
		f, err := Parse("x", header(3, 1, 0).tensor("e", []uint64{0, 5}, F32, 0).b)
		if err != nil {
			t.Fatal(err)
		}
		if x, err := f.Tensors[0].Float32(); err != nil || len(x) != 0 || len(f.Tensors[0].Shape()) != 2 {
			t.Fatalf("%v %v", x, err)
		}
	})
	t.Run("scalar tensor", func(t *testing.T) {
		f, err := Parse("x", header(3, 1, 0).tensor("s", nil, F32, 0).pad(32).u32(math.Float32bits(2.5)).b)
		if err != nil {
			t.Fatal(err)
		}
		if x, err := f.Tensors[0].Float32(); err != nil || len(x) != 1 || x[0] != 2.5 || len(f.Tensors[0].Shape()) != 0 {
			t.Fatalf("%v %v", x, err)
		}
	})
	t.Run("alignment as u64 and 64-byte name", func(t *testing.T) {
		r := header(3, 1, 1).str("general.alignment").u32(uint32(TypeUint64)).u64(64)
		r.tensor(strings.Repeat("n", 64), []uint64{4}, F32, 0).pad(64).zeros(16)
		f, err := Parse("x", r.b)
		if err != nil || f.Alignment != 64 || f.DataOffset%64 != 0 {
			t.Fatalf("%v %+v", err, f)
		}
	})
}
