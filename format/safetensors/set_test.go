package safetensors

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// bigTensors is a model-like set whose data sizes are easy to reason about.
func bigTensors() []Writable {
	mk := func(name string, n int) Writable {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(len(name)*1000 + i)
		}
		return Writable{Name: name, DType: "F32", Shape: []int{n}, Data: F32Bytes(v)}
	}
	return []Writable{
		mk("model.embed_tokens.weight", 40), // 160 bytes: larger than the 100-byte limit
		mk("model.layers.0.a", 10),          // 40
		mk("model.layers.0.b", 10),          // 40  (a+b = 80)
		mk("model.layers.0.c", 10),          // 40  -> new shard
		mk("model.layers.1.a", 15),          // 60  (c+a = 100, fits exactly)
		mk("model.norm.weight", 1),          // 4   -> new shard
		{Name: "scalar", DType: "I64", Shape: []int{}, Data: I64Bytes([]int64{7})}, // 8
	}
}

func TestWriteShardedLayout(t *testing.T) {
	dir := t.TempDir()
	ts := bigTensors()
	files, err := WriteSharded(dir, "model", ts, 100, map[string]string{"format": "pt"})
	if err != nil {
		t.Fatal(err)
	}
	// huggingface_hub's split: the oversized embedding gets its own shard,
	// then shards fill in order up to 100 bytes.
	wantShards := map[string][]string{
		"model-00001-of-00004.safetensors": {"model.embed_tokens.weight"},
		"model-00002-of-00004.safetensors": {"model.layers.0.a", "model.layers.0.b"},
		"model-00003-of-00004.safetensors": {"model.layers.0.c", "model.layers.1.a"},
		"model-00004-of-00004.safetensors": {"model.norm.weight", "scalar"},
	}
	var wantFiles []string
	for name := range wantShards {
		wantFiles = append(wantFiles, filepath.Join(dir, name))
	}
	sort.Strings(wantFiles)
	wantFiles = append(wantFiles, filepath.Join(dir, "model.safetensors.index.json"))
	if !reflect.DeepEqual(files, wantFiles) {
		t.Fatalf("files %v\nwant %v", files, wantFiles)
	}
	for shard, names := range wantShards {
		f, err := Open(filepath.Join(dir, shard))
		if err != nil {
			t.Fatal(err)
		}
		got := f.Names()
		sort.Strings(got)
		if !reflect.DeepEqual(got, names) {
			t.Errorf("%s holds %v, want %v", shard, got, names)
		}
		if f.Metadata["format"] != "pt" {
			t.Errorf("%s metadata %v", shard, f.Metadata)
		}
		f.Close()
	}
	idx, _ := os.ReadFile(filepath.Join(dir, "model.safetensors.index.json"))
	// What transformers writes: json.dumps(index, indent=2, sort_keys=True) + "\n".
	want := `{
  "metadata": {
    "total_size": 352
  },
  "weight_map": {
    "model.embed_tokens.weight": "model-00001-of-00004.safetensors",
    "model.layers.0.a": "model-00002-of-00004.safetensors",
    "model.layers.0.b": "model-00002-of-00004.safetensors",
    "model.layers.0.c": "model-00003-of-00004.safetensors",
    "model.layers.1.a": "model-00003-of-00004.safetensors",
    "model.norm.weight": "model-00004-of-00004.safetensors",
    "scalar": "model-00004-of-00004.safetensors"
  }
}
`
	if string(idx) != want {
		t.Errorf("index:\n%s\nwant:\n%s", idx, want)
	}

	s, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Len() != len(ts) || len(s.Files()) != 4 {
		t.Fatalf("%d tensors in %d files", s.Len(), len(s.Files()))
	}
	for _, w := range ts {
		got, ok := s.Tensor(w.Name)
		if !ok || got.DType != w.DType || !reflect.DeepEqual(got.Shape, w.Shape) || !bytes.Equal(got.Data, w.Data) {
			t.Errorf("%s read back differently", w.Name)
		}
	}
}

func TestEncodeIndexMatchesPython(t *testing.T) {
	// Expected bytes produced by CPython's json.dumps(..., indent=2,
	// sort_keys=True) + "\n" (ensure_ascii escapes; '<' and '&' left alone).
	got := encodeIndex(24, map[string]string{
		"b":                                 "model-00002-of-00002.safetensors",
		"a\u00e9\U0001F600<&\x7f\"\\\n\x01": "model-00001-of-00002.safetensors",
	})
	want := "{\n  \"metadata\": {\n    \"total_size\": 24\n  },\n  \"weight_map\": {\n    \"a\\u00e9\\ud83d\\ude00<&\\u007f\\\"\\\\\\n\\u0001\": \"model-00001-of-00002.safetensors\",\n    \"b\": \"model-00002-of-00002.safetensors\"\n  }\n}\n"
	if string(got) != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	m, err := parseIndex("idx", got)
	if err != nil || len(m) != 2 || m["a\u00e9\U0001F600<&\x7f\"\\\n\x01"] != "model-00001-of-00002.safetensors" {
		t.Errorf("parse back: %v %v", m, err)
	}
}

func TestWriteShardedSingleAndStale(t *testing.T) {
	dir := t.TempDir()
	ts := bigTensors()
	list := func() []string {
		entries, _ := os.ReadDir(dir)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return names
	}
	// Unrelated files with similar names must survive every save.
	for _, name := range []string{"model_ema-00001-of-00002.safetensors", "config.json", "adapter_model.safetensors"} {
		os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644)
	}
	keep := []string{"adapter_model.safetensors", "config.json", "model_ema-00001-of-00002.safetensors"}
	with := func(extra ...string) []string {
		out := append(append([]string(nil), keep...), extra...)
		sort.Strings(out)
		return out
	}

	if _, err := WriteSharded(dir, "model", ts, 100, nil); err != nil {
		t.Fatal(err)
	}
	// Fewer, bigger shards: the -of-00004 files must go.
	files, err := WriteSharded(dir, "model", ts, 200, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 3 {
		t.Fatalf("files %v", files)
	}
	if got, want := list(), with("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"); !reflect.DeepEqual(got, want) {
		t.Errorf("after re-shard: %v\nwant %v", got, want)
	}
	// Everything fits: one file, index and shards removed.
	files, err = WriteSharded(dir, "model", ts, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(files, []string{filepath.Join(dir, "model.safetensors")}) {
		t.Errorf("files %v", files)
	}
	if got, want := list(), with("model.safetensors"); !reflect.DeepEqual(got, want) {
		t.Errorf("after single: %v\nwant %v", got, want)
	}
	// Exactly at the limit is still one file.
	if files, err := WriteSharded(dir, "model", ts, 352, nil); err != nil || len(files) != 1 {
		t.Errorf("total == max: %v %v", files, err)
	}
	// Back to shards: the stale single file must go, or OpenDir would prefer it.
	if _, err := WriteSharded(dir, "model", ts, 351, nil); err != nil {
		t.Fatal(err)
	}
	for _, n := range list() {
		if n == "model.safetensors" {
			t.Error("stale model.safetensors kept")
		}
	}
	s, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != len(ts) {
		t.Errorf("%d tensors", s.Len())
	}
	s.Close()

	// A single tensor larger than the limit is one file, as in huggingface_hub.
	d2 := t.TempDir()
	if files, err := WriteSharded(d2, "adapter_model", ts[:1], 10, nil); err != nil || len(files) != 1 || filepath.Base(files[0]) != "adapter_model.safetensors" {
		t.Errorf("one big tensor: %v %v", files, err)
	}
	s, err = OpenDirPrefix(d2, "adapter_model")
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	// No tensors: a valid empty file.
	if files, err := WriteSharded(t.TempDir(), "model", nil, 10, nil); err != nil || len(files) != 1 {
		t.Errorf("no tensors: %v %v", files, err)
	}
}

func TestWriteShardedRejects(t *testing.T) {
	dir := t.TempDir()
	ts := bigTensors()
	for _, p := range []string{"", "../model", "a/b", `a\b`, ".."} {
		if _, err := WriteSharded(dir, p, ts, 100, nil); err == nil {
			t.Errorf("prefix %q accepted", p)
		}
	}
	if _, err := WriteSharded(dir, "model", ts, 0, nil); err == nil {
		t.Error("maxShardBytes 0 accepted")
	}
	// Duplicates across would-be shards are caught before anything is written.
	dup := append(bigTensors(), bigTensors()[1])
	_, err := WriteSharded(dir, "model", dup, 100, nil)
	wantErr(t, err, `tensor "model.layers.0.a"`, "duplicate")
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("rejected saves left %d files", len(entries))
	}
}

func TestOpenDirSingleWinsAndMissing(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenDir(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("empty dir: %v, want ErrNotExist", err)
	}
	// Both a single file and an index: the single file is used, as in transformers.
	if _, err := WriteSharded(dir, "model", bigTensors(), 100, nil); err != nil {
		t.Fatal(err)
	}
	if err := Write(filepath.Join(dir, "model.safetensors"), bigTensors()[:1], nil); err != nil {
		t.Fatal(err)
	}
	s, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Len() != 1 {
		t.Errorf("%d tensors, want the single file's 1", s.Len())
	}
	// The real model folder.
	s2, err := OpenDir(filepath.Dir(tinyBrown))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.Len() != 56 {
		t.Errorf("tiny-brown: %d tensors", s2.Len())
	}
}

func TestNewSet(t *testing.T) {
	a, _ := Marshal([]Writable{{Name: "x", DType: "U8", Shape: []int{1}, Data: []byte{1}}}, nil)
	b, _ := Marshal([]Writable{{Name: "y", DType: "U8", Shape: []int{1}, Data: []byte{2}}, {Name: "x", DType: "U8", Shape: []int{1}, Data: []byte{3}}}, nil)
	fa, _ := Parse("a.safetensors", a)
	fb, _ := Parse("b.safetensors", b)
	_, err := NewSet(fa, fb)
	wantErr(t, err, "b.safetensors", `tensor "x"`, "a.safetensors")
	if _, err := NewSet(fa, nil); err == nil {
		t.Error("nil file accepted")
	}
	c, _ := Marshal([]Writable{{Name: "z", DType: "U8", Shape: []int{1}, Data: []byte{4}}}, nil)
	fc, _ := Parse("c.safetensors", c)
	s, err := NewSet(fa, fc)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Names(); !reflect.DeepEqual(got, []string{"x", "z"}) {
		t.Errorf("names %v", got)
	}
	if z, ok := s.Tensor("z"); !ok || z.Data[0] != 4 {
		t.Errorf("z = %v %v", z, ok)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// shardedDir writes a valid two-shard model and returns its folder.
func shardedDir(t testing.TB) string {
	dir := t.TempDir()
	ts := []Writable{
		{Name: "a", DType: "F32", Shape: []int{2}, Data: F32Bytes([]float32{1, 2})},
		{Name: "b", DType: "F32", Shape: []int{2}, Data: F32Bytes([]float32{3, 4})},
		{Name: "c", DType: "I64", Shape: []int{}, Data: I64Bytes([]int64{5})},
	}
	if _, err := WriteSharded(dir, "model", ts, 8, nil); err != nil {
		t.Fatal(err)
	}
	return dir
}

const (
	shard1 = "model-00001-of-00003.safetensors" // a
	shard2 = "model-00002-of-00003.safetensors" // b
	shard3 = "model-00003-of-00003.safetensors" // c
)

func TestOpenDirBadIndex(t *testing.T) {
	wm := func(entries string) string { return `{"metadata":{"total_size":24},"weight_map":{` + entries + `}}` }
	all := `"a":"` + shard1 + `","b":"` + shard2 + `","c":"` + shard3 + `"`
	cases := []struct {
		name   string
		index  string
		setup  func(dir string)
		tensor string
		want   string
	}{
		{"not json", `{"weight_map":`, nil, "", "truncated"},
		{"not object", `[1]`, nil, "", "expected an object"},
		{"trailing", wm(all) + `x`, nil, "", "invalid JSON"},
		{"bad utf8", "{\"weight_map\":{\"a\xff\":\"x\"}}", nil, "", "UTF-8"},
		{"missing weight_map", `{"metadata":{}}`, nil, "", "missing weight_map"},
		{"weight_map array", `{"weight_map":["a"]}`, nil, "", "weight_map: expected an object"},
		{"weight_map null", `{"weight_map":null}`, nil, "", "weight_map: expected an object"},
		{"empty weight_map", wm(``), nil, "", "empty weight_map"},
		{"value not string", wm(`"a":1`), nil, "a", "expected a string"},
		{"duplicate tensor", wm(all + `,"a":"` + shard2 + `"`), nil, "a", "listed twice"},
		{"metadata not object", `{"metadata":5,"weight_map":{` + all + `}}`, nil, "", "metadata: expected an object"},
		{"weight_map twice", `{"weight_map":{` + all + `},"weight_map":{` + all + `}}`, nil, "", `duplicate key "weight_map"`},
		{"parent traversal", wm(`"a":"../x.safetensors"`), nil, "", `shard "../x.safetensors"`},
		{"inner traversal", wm(`"a":"sub/../../x.safetensors"`), nil, "", "not a relative path"},
		{"absolute", wm(`"a":"/etc/passwd"`), nil, "", "not a relative path"},
		{"empty shard", wm(`"a":""`), nil, "", "not a relative path"},
		{"missing shard", wm(all + `,"d":"model-00004-of-00004.safetensors"`), nil, "", "model-00004-of-00004.safetensors"},
		{"tensor not in shard", wm(all + `,"zz":"` + shard1 + `"`), nil, "zz", "not in shard"},
		{"shard tensor unlisted", wm(all), func(dir string) {
			Write(filepath.Join(dir, shard2), []Writable{
				{Name: "b", DType: "F32", Shape: []int{2}, Data: F32Bytes([]float32{3, 4})},
				{Name: "extra", DType: "U8", Shape: []int{1}, Data: []byte{1}},
			}, nil)
		}, "extra", "not listed in the index"},
		{"wrong shard", wm(`"a":"` + shard2 + `","b":"` + shard2 + `","c":"` + shard3 + `"`), nil, "a", "not in shard"},
		{"tensor in two shards", wm(all), func(dir string) {
			// Rewrite shard 2 to also hold "a".
			Write(filepath.Join(dir, shard2), []Writable{
				{Name: "a", DType: "F32", Shape: []int{2}, Data: F32Bytes([]float32{9, 9})},
				{Name: "b", DType: "F32", Shape: []int{2}, Data: F32Bytes([]float32{3, 4})},
			}, nil)
		}, "a", "assigns it to shard"},
		{"corrupt shard", wm(all), func(dir string) {
			os.WriteFile(filepath.Join(dir, shard3), []byte("garbage!garbage"), 0o644)
		}, "", shard3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := shardedDir(t)
			if c.setup != nil {
				c.setup(dir)
			}
			index := filepath.Join(dir, "model.safetensors.index.json")
			if err := os.WriteFile(index, []byte(c.index), 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := OpenDir(dir)
			if err == nil {
				s.Close()
				t.Fatalf("opened: %v", s.Names())
			}
			want := []string{c.want}
			if c.tensor != "" {
				want = append(want, `tensor "`+c.tensor+`"`)
			}
			if !strings.Contains(err.Error(), dir) {
				t.Errorf("error %q does not name a file in %s", err, dir)
			}
			wantErr(t, err, want...)
		})
	}
	// Sanity: the unmodified folder opens, with unknown top-level keys and
	// odd metadata ignored.
	dir := shardedDir(t)
	os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"),
		[]byte(`{"metadata":{"total_size":24,"total_parameters":5,"x":[{}]},"other":[1,{"a":null}],"weight_map":{`+all+`}}`), 0o644)
	s, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.Names(); !reflect.DeepEqual(got, []string{"a", "b", "c"}) {
		t.Errorf("names %v", got)
	}
}
