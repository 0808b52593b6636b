package tokenizer

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

const vectorsDir = "../testdata/tokenizers"

// vectorCase is one line of cases.jsonl / cases_spm.jsonl.
type vectorCase struct {
	Name               string  `json:"name"`
	Text               string  `json:"text"`
	IDs                []int   `json:"ids"`
	IDsWithSpecial     []int   `json:"ids_with_special"`
	Decoded            string  `json:"decoded"`
	DecodedWithSpecial string  `json:"decoded_with_special"`
	DecodedRaw         *string `json:"decoded_raw"`
}

func readCases(t testing.TB, path string) []vectorCase {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []vectorCase
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var c vectorCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		cases = append(cases, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cases
}

// Loaded tokenizers are shared between tests (loading the large ones takes a moment).
var (
	loadMu sync.Mutex
	loaded = map[string]*Tokenizer{}
)

func loadCached(t testing.TB, key string, load func() (*Tokenizer, error)) *Tokenizer {
	t.Helper()
	loadMu.Lock()
	defer loadMu.Unlock()
	if tk, ok := loaded[key]; ok {
		return tk
	}
	tk, err := load()
	if err != nil {
		t.Fatal(err)
	}
	loaded[key] = tk
	return tk
}

func loadVectorTokenizer(t testing.TB, folder string) *Tokenizer {
	return loadCached(t, folder, func() (*Tokenizer, error) {
		return LoadDir(filepath.Join(vectorsDir, folder))
	})
}

func vectorFolders(t testing.TB) []string {
	entries, err := os.ReadDir(vectorsDir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			if _, err := os.Stat(filepath.Join(vectorsDir, e.Name(), "tokenizer.json")); err == nil {
				out = append(out, e.Name())
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no tokenizer folders found")
	}
	return out
}

// firstDiff returns the first index where a and b differ (len of the shorter if one is a prefix).
func firstDiff[T comparable](a, b []T) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) == len(b) {
		return -1
	}
	return min(len(a), len(b))
}

func checkIDs(t *testing.T, what string, c vectorCase, got, want []int) {
	t.Helper()
	if i := firstDiff(got, want); i >= 0 {
		t.Errorf("%s %s: text %q: ids differ at index %d\n got %v\nwant %v", c.Name, what, c.Text, i, got, want)
	}
}

func checkText(t *testing.T, what string, c vectorCase, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s %s: text %q:\n got %q\nwant %q", c.Name, what, c.Text, got, want)
	}
}

// TestVectors checks every tokenizer.json folder against its cases.jsonl.
func TestVectors(t *testing.T) {
	for _, folder := range vectorFolders(t) {
		t.Run(folder, func(t *testing.T) {
			tk := loadVectorTokenizer(t, folder)
			cases := readCases(t, filepath.Join(vectorsDir, folder, "cases.jsonl"))
			cleanUp := tk.CleanUpSpaces()
			for _, c := range cases {
				t.Run(c.Name, func(t *testing.T) {
					checkIDs(t, "Encode(text, false)", c, tk.Encode(c.Text, false), c.IDs)
					checkIDs(t, "Encode(text, true)", c, tk.Encode(c.Text, true), c.IDsWithSpecial)
					if c.DecodedRaw != nil {
						checkText(t, "raw Decode(ids)", c, tk.Decode(c.IDs, DecodeOptions{}), *c.DecodedRaw)
					}
					checkText(t, "Decode(ids)", c, tk.Decode(c.IDs, DecodeOptions{CleanUp: cleanUp}), c.Decoded)
					checkText(t, "Decode(ids_with_special)", c, tk.Decode(c.IDsWithSpecial, DecodeOptions{CleanUp: cleanUp}), c.DecodedWithSpecial)
				})
			}
		})
	}
}

// TestSentencePieceVectors checks the llama2 tokenizer.model against SentencePiece's output.
func TestSentencePieceVectors(t *testing.T) {
	tk := loadCached(t, "llama2.model", func() (*Tokenizer, error) {
		return LoadSentencePieceModel(filepath.Join(vectorsDir, "llama2", "tokenizer.model"))
	})
	for _, c := range readCases(t, filepath.Join(vectorsDir, "llama2", "cases_spm.jsonl")) {
		t.Run(c.Name, func(t *testing.T) {
			checkIDs(t, "Encode(text, false)", c, tk.Encode(c.Text, false), c.IDs)
			checkIDs(t, "Encode(text, true)", c, tk.Encode(c.Text, true), c.IDsWithSpecial)
			checkText(t, "Decode(ids)", c, tk.Decode(c.IDs, DecodeOptions{}), c.Decoded)
			checkText(t, "Decode(ids_with_special)", c, tk.Decode(c.IDsWithSpecial, DecodeOptions{}), c.DecodedWithSpecial)
		})
	}
}

// streamDecode decodes ids one at a time and checks every chunk is valid UTF-8.
func streamDecode(t *testing.T, tk *Tokenizer, ids []int, skipSpecial bool) string {
	t.Helper()
	d := tk.NewStreamDecoder(skipSpecial)
	var b strings.Builder
	for i, id := range ids {
		s := d.Add(id)
		if !utf8.ValidString(s) {
			t.Errorf("chunk after ids[%d] is not valid UTF-8: %q", i, s)
		}
		b.WriteString(s)
	}
	s := d.Flush()
	if !utf8.ValidString(s) {
		t.Errorf("flushed chunk is not valid UTF-8: %q", s)
	}
	b.WriteString(s)
	return b.String()
}

// TestStreamDecoder checks that streaming reproduces Decode on every case of every tokenizer.
func TestStreamDecoder(t *testing.T) {
	type tk struct {
		name, cases string
		load        func(testing.TB) *Tokenizer
	}
	var all []tk
	for _, folder := range vectorFolders(t) {
		all = append(all, tk{folder, filepath.Join(vectorsDir, folder, "cases.jsonl"),
			func(t testing.TB) *Tokenizer { return loadVectorTokenizer(t, folder) }})
	}
	all = append(all, tk{"llama2.model", filepath.Join(vectorsDir, "llama2", "cases_spm.jsonl"),
		func(t testing.TB) *Tokenizer {
			return loadCached(t, "llama2.model", func() (*Tokenizer, error) {
				return LoadSentencePieceModel(filepath.Join(vectorsDir, "llama2", "tokenizer.model"))
			})
		}})
	for _, x := range all {
		t.Run(x.name, func(t *testing.T) {
			tok := x.load(t)
			for _, c := range readCases(t, x.cases) {
				t.Run(c.Name, func(t *testing.T) {
					for _, ids := range [][]int{c.IDs, c.IDsWithSpecial} {
						for _, skip := range []bool{false, true} {
							want := tok.Decode(ids, DecodeOptions{SkipSpecial: skip})
							if got := streamDecode(t, tok, ids, skip); got != want {
								t.Errorf("text %q skipSpecial=%v: stream decode\n got %q\nwant %q", c.Text, skip, got, want)
							}
						}
					}
				})
			}
		})
	}
}
