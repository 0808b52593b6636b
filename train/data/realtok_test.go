package data

import (
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/lorakit/lorakit/chat"
	"github.com/lorakit/lorakit/tokenizer"
)

var (
	tokMu    sync.Mutex
	tokCache = map[string]*tokenizer.Tokenizer{}
)

// realTok parses tokenizer.json and tokenizer_config.json of dir, once.
func realTok(t *testing.T, dir string) *tokenizer.Tokenizer {
	t.Helper()
	tokMu.Lock()
	defer tokMu.Unlock()
	if tk := tokCache[dir]; tk != nil {
		return tk
	}
	tj, err := os.ReadFile(dir + "/tokenizer.json")
	if err != nil {
		t.Skip(err)
	}
	cj, err := os.ReadFile(dir + "/tokenizer_config.json")
	if err != nil {
		t.Fatal(err)
	}
	tk, err := tokenizer.Parse(tj, cj)
	if err != nil {
		t.Fatal(err)
	}
	tokCache[dir] = tk
	return tk
}

const tinyBrown = "../../models/tiny-brown"

// runs decodes each run of labelled tokens.
func runs(tk *tokenizer.Tokenizer, ex Example) []string {
	var out []string
	var cur []int
	flush := func() {
		if len(cur) > 0 {
			out = append(out, tk.Decode(cur, tokenizer.DecodeOptions{}))
		}
		cur = nil
	}
	for i, l := range ex.Labels {
		if l == IgnoreIndex {
			flush()
			continue
		}
		if l != ex.InputIDs[i] {
			return []string{"label differs from input id"}
		}
		cur = append(cur, l)
	}
	flush()
	return out
}

func count(ids []int, id int) int {
	n := 0
	for _, x := range ids {
		if x == id {
			n++
		}
	}
	return n
}

// TestTinyBrown reads every format with the real tiny-brown tokenizer (its
// <|endoftext|> is id 0, both <bos> and <eos>; ChatML is its template).
func TestTinyBrown(t *testing.T) {
	tk := realTok(t, tinyBrown)
	sp := Specials{BOS: 0, EOS: 0}
	body := strings.Join([]string{
		`{"text":"The cat sat."}`,
		`{"prompt":"The cat","completion":" sat on the mat."}`,
		`{"instruction":"Name a colour.","input":"","output":"Red."}`,
		`{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello there!"},{"role":"user","content":"Bye"},{"role":"assistant","content":"Bye."}]}`,
		`{"prompt":"Q: ","completion":"A"}`,
	}, "\n")
	exs, err := Read("tb.jsonl", strings.NewReader(body), tk, sp)
	if err != nil {
		t.Fatal(err)
	}
	enc := func(s string) []int { return tk.Encode(s, false) }
	t.Run("text", func(t *testing.T) {
		ex := exs[0]
		if want := cat([]int{0}, enc("The cat sat."), []int{0}); !reflect.DeepEqual(ex.InputIDs, want) || !reflect.DeepEqual(ex.Labels, want) {
			t.Errorf("got %v / %v, want %v", ex.InputIDs, ex.Labels, want)
		}
	})
	t.Run("prompt/completion", func(t *testing.T) {
		ex := exs[1]
		if want := cat([]int{0}, enc("The cat sat on the mat."), []int{0}); !reflect.DeepEqual(ex.InputIDs, want) {
			t.Errorf("ids %v, want %v", ex.InputIDs, want)
		}
		if got := runs(tk, ex); !reflect.DeepEqual(got, []string{" sat on the mat.<|endoftext|>"}) {
			t.Errorf("labelled %q", got)
		}
	})
	t.Run("alpaca", func(t *testing.T) {
		ex := exs[2]
		prompt := "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nName a colour.\n\n### Response:\n"
		if want := cat([]int{0}, enc(prompt+"Red."), []int{0}); !reflect.DeepEqual(ex.InputIDs, want) {
			t.Errorf("ids %v, want %v", ex.InputIDs, want)
		}
		if got := runs(tk, ex); !reflect.DeepEqual(got, []string{"Red.<|endoftext|>"}) {
			t.Errorf("labelled %q", got)
		}
	})
	t.Run("messages", func(t *testing.T) {
		ex := exs[3]
		text, err := chat.Render(chat.ChatML, []chat.Message{
			{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Hi"}, {Role: "assistant", Content: "Hello there!"},
			{Role: "user", Content: "Bye"}, {Role: "assistant", Content: "Bye."}}, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := cat([]int{0}, enc(text)); !reflect.DeepEqual(ex.InputIDs, want) {
			t.Errorf("ids %v, want %v", ex.InputIDs, want)
		}
		if ex.InputIDs[1] != 1 || count(ex.InputIDs, 0) != 1 {
			t.Errorf("want <|endoftext|> once then <|im_start|>: %v", ex.InputIDs[:4])
		}
		if got := runs(tk, ex); !reflect.DeepEqual(got, []string{"Hello there!<|im_end|>", "Bye.<|im_end|>"}) {
			t.Errorf("labelled %q", got)
		}
	})
	t.Run("prompt ending in a space", func(t *testing.T) {
		ex := exs[4]
		// Whatever the tokens at the boundary, the labelled ones end with
		// the completion and <eos>, and the masked ones are the prompt's.
		got := runs(tk, ex)
		if len(got) != 1 || !strings.HasSuffix(got[0], "A<|endoftext|>") || len(got[0]) > len(" A<|endoftext|>") {
			t.Errorf("labelled %q", got)
		}
	})
}

// TestRealTokenizers renders conversations with the templates and
// tokenizers of real models: <bos> once (written by the template, or by
// the post-processor, or absent for Qwen 3), the assistant turns with
// their end-of-turn token labelled.
func TestRealTokenizers(t *testing.T) {
	conv := `{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello there!"},{"role":"user","content":"Bye"},{"role":"assistant","content":"<think>\nok\n</think>\n\nBye."}]}`
	cases := []struct {
		dir  string
		sp   Specials
		bos  int // -1: none
		want []string
	}{
		{"llama3", Specials{BOS: 128000, EOS: 128001}, 128000,
			[]string{"Hello there!<|eot_id|>", "<think>\nok\n</think>\n\nBye.<|eot_id|>"}},
		{"qwen3", Specials{BOS: -1, EOS: 151645}, -1,
			[]string{"Hello there!<|im_end|>", "<think>\nok\n</think>\n\nBye.<|im_end|>"}},
		// The tokenizer adds <s> itself (so the caller passes BOS -1) and
		// the template writes it too: it must appear once.
		{"mistral_nemo", Specials{BOS: -1, EOS: 2}, 1,
			[]string{"Hello there!</s>", "<think>\nok\n</think>\n\nBye.</s>"}},
	}
	for _, c := range cases {
		t.Run(c.dir, func(t *testing.T) {
			tk := realTok(t, "../../testdata/tokenizers/"+c.dir)
			exs, err := Read(c.dir+".jsonl", strings.NewReader(conv), tk, c.sp)
			if err != nil {
				t.Fatal(err)
			}
			ex := exs[0]
			if c.bos >= 0 && (ex.InputIDs[0] != c.bos || count(ex.InputIDs, c.bos) != 1) {
				t.Errorf("want <bos> %d once, first: %v", c.bos, ex.InputIDs[:3])
			}
			if got := runs(tk, ex); !reflect.DeepEqual(got, c.want) {
				t.Errorf("labelled %q\nwant     %q", got, c.want)
			}
		})
	}
}

// BenchmarkReadMessages reads three-turn ChatML conversations with
// tiny-brown's tokenizer (per example: renders and prefix tokenizations).
func BenchmarkReadMessages(b *testing.B) {
	tj, err := os.ReadFile(tinyBrown + "/tokenizer.json")
	if err != nil {
		b.Skip(err)
	}
	cj, _ := os.ReadFile(tinyBrown + "/tokenizer_config.json")
	tk, err := tokenizer.Parse(tj, cj)
	if err != nil {
		b.Fatal(err)
	}
	line := `{"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"What is the capital of France? Please answer in one sentence."},{"role":"assistant","content":"The capital of France is Paris, on the Seine."},{"role":"user","content":"And of Italy?"},{"role":"assistant","content":"Rome is the capital of Italy."},{"role":"user","content":"Thanks."},{"role":"assistant","content":"You are welcome!"}]}` + "\n"
	body := strings.Repeat(line, 100)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Read("b.jsonl", strings.NewReader(body), tk, Specials{BOS: 0, EOS: 0}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*100), "µs/example")
}
