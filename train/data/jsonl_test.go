package data

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/lorakit/lorakit/chat"
)

func readOne(t *testing.T, tok Tokenizer, opts Options, line string) Example {
	t.Helper()
	exs, err := ReadOptions("x.jsonl", strings.NewReader(line+"\n"), tok, fakeSp, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(exs) != 1 {
		t.Fatalf("got %d examples", len(exs))
	}
	return exs[0]
}

const (
	alpacaWithInput = "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n### Instruction:\nAdd.\n\n### Input:\n2 2\n\n### Response:\n"
	alpacaNoInput   = "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nAdd.\n\n### Response:\n"
)

// TestFormats checks input ids and labels exactly, with the byte-level
// fake tokenizer, for every format.
func TestFormats(t *testing.T) {
	B, E := []int{fBOS}, []int{fEOS}
	imS, imE := []int{fIMStart}, []int{fIMEnd}
	chatml := func(role, content string) []int {
		return cat(imS, ids(role+"\n"+content), imE, ids("\n"))
	}
	cases := []struct {
		name       string
		tok        fakeTok
		opts       Options
		line       string
		ids, lbl   []int
		labelledAs string // labelledText, when ids/lbl are not spelled out
	}{
		{name: "text", line: `{"text":"hi"}`,
			ids: cat(B, ids("hi"), E), lbl: cat(B, ids("hi"), E)},
		{name: "text, tokenizer adds bos", tok: fakeTok{addsBOS: true}, line: `{"text":"hi"}`,
			ids: cat(B, ids("hi"), E), lbl: cat(B, ids("hi"), E)},
		{name: "prompt/completion", line: `{"prompt":"Q:","completion":" A"}`,
			ids: cat(B, ids("Q: A"), E), lbl: cat(masked(3), ids(" A"), E)},
		{name: "prompt/completion, train on inputs", opts: Options{TrainOnInputs: true}, line: `{"prompt":"Q:","completion":" A"}`,
			ids: cat(B, ids("Q: A"), E), lbl: cat(B, ids("Q: A"), E)},
		{name: "prompt/completion, empty completion", line: `{"prompt":"Q","completion":""}`,
			ids: cat(B, ids("Q"), E), lbl: cat(masked(2), E)},
		{name: "alpaca with input", line: `{"instruction":"Add.","input":"2 2","output":"4"}`,
			ids: cat(B, ids(alpacaWithInput+"4"), E), lbl: cat(masked(1+len(alpacaWithInput)), ids("4"), E)},
		{name: "alpaca, empty input", line: `{"instruction":"Add.","input":"","output":"4"}`,
			ids: cat(B, ids(alpacaNoInput+"4"), E), lbl: cat(masked(1+len(alpacaNoInput)), ids("4"), E)},
		{name: "alpaca, null input", line: `{"instruction":"Add.","input":null,"output":"4"}`,
			ids: cat(B, ids(alpacaNoInput+"4"), E), lbl: cat(masked(1+len(alpacaNoInput)), ids("4"), E)},
		{name: "alpaca, no input, extra text column", line: `{"instruction":"Add.","output":"4","text":"ignored"}`,
			ids: cat(B, ids(alpacaNoInput+"4"), E), lbl: cat(masked(1+len(alpacaNoInput)), ids("4"), E)},
		{name: "alpaca, train on inputs", opts: Options{TrainOnInputs: true}, line: `{"instruction":"Add.","output":"4"}`,
			ids: cat(B, ids(alpacaNoInput+"4"), E), lbl: cat(B, ids(alpacaNoInput+"4"), E)},
		{name: "messages, ChatML", line: `{"messages":[{"role":"system","content":"S"},{"role":"user","content":"U"},{"role":"assistant","content":"A"}]}`,
			ids: cat(B, chatml("system", "S"), chatml("user", "U"), chatml("assistant", "A")),
			lbl: cat(masked(1+len(chatml("system", "S"))+len(chatml("user", "U"))+1+len("assistant\n")), ids("A"), imE, masked(1))},
		{name: "messages, train on inputs", opts: Options{TrainOnInputs: true}, line: `{"messages":[{"role":"user","content":"U"},{"role":"assistant","content":"A"}]}`,
			ids: cat(B, chatml("user", "U"), chatml("assistant", "A")),
			lbl: cat(B, chatml("user", "U"), chatml("assistant", "A"))},
		{name: "messages, tokenizer adds bos", tok: fakeTok{addsBOS: true}, line: `{"messages":[{"role":"user","content":"U"},{"role":"assistant","content":"A"}]}`,
			ids: cat(B, chatml("user", "U"), chatml("assistant", "A")), labelledAs: "A<|im_end|>"},
		{name: "messages, two assistant turns and a tool", line: `{"messages":[{"role":"user","content":"U1"},{"role":"assistant","content":"A1"},{"role":"tool","content":"T"},{"role":"user","content":"U2"},{"role":"assistant","content":"A2\n"}]}`,
			labelledAs: "A1<|im_end|>|A2\n<|im_end|>"},
		{name: "messages, assistant first", line: `{"messages":[{"role":"assistant","content":"Hi!"},{"role":"user","content":"U"}]}`,
			labelledAs: "Hi!<|im_end|>"},
		{name: "messages, empty assistant content", line: `{"messages":[{"role":"user","content":"U"},{"role":"assistant","content":""}]}`,
			labelledAs: "<|im_end|>"},
		{name: "messages, content with markup", line: `{"messages":[{"role":"user","content":"U"},{"role":"assistant","content":"<b>\n"}]}`,
			labelledAs: "<b>\n<|im_end|>"},
		{name: "messages, the tokenizer's template",
			tok:  fakeTok{template: "{% for m in messages %}{{ m.role }}: {{ m.content }}<|eot|>\n{% endfor %}"},
			line: `{"messages":[{"role":"user","content":"U"},{"role":"assistant","content":"A"}]}`,
			// No generation prompt: the model writes the role itself.
			ids: cat(B, ids("user: U"), []int{fEOT}, ids("\nassistant: A"), []int{fEOT}, ids("\n")), labelledAs: "assistant: A<|eot|>"},
		{name: "messages, Options.ChatTemplate wins",
			tok:  fakeTok{template: "{{ raise_exception('not this one') }}"},
			opts: Options{ChatTemplate: chat.ChatML},
			line: `{"messages":[{"role":"user","content":"U"},{"role":"assistant","content":"A"}]}`, labelledAs: "A<|im_end|>"},
		{name: "messages, template writes bos (Llama 3 style, generation prompt always)",
			opts: Options{ChatTemplate: llama3Like},
			line: `{"messages":[{"role":"system","content":"S"},{"role":"user","content":"U"},{"role":"assistant","content":" A "},{"role":"user","content":"U2"},{"role":"assistant","content":"B"}]}`,
			ids: cat(B, imS, ids("system\n\nS"), []int{fEOT}, imS, ids("user\n\nU"), []int{fEOT}, imS, ids("assistant\n\nA"), []int{fEOT},
				imS, ids("user\n\nU2"), []int{fEOT}, imS, ids("assistant\n\nB"), []int{fEOT}, imS, ids("assistant\n\n")),
			labelledAs: "A<|eot|>|B<|eot|>"},
		// After the content comes "\n<|im_start|>", but that opens the next
		// turn: it is not there when the conversation ends with this one.
		{name: "messages, no end-of-turn token",
			opts:       Options{ChatTemplate: "{% for m in messages %}<|im_start|>{{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant: {% endif %}"},
			line:       `{"messages":[{"role":"user","content":"U"},{"role":"assistant","content":"A"},{"role":"user","content":"V"}]}`,
			labelledAs: "A"},
		{name: "pre-tokenized", line: `{"input_ids":[5,6,7],"labels":[-100,6,7]}`,
			ids: []int{5, 6, 7}, lbl: []int{IgnoreIndex, 6, 7}},
		{name: "pre-tokenized, no labels", opts: Options{TrainOnInputs: true}, line: `{"input_ids":[5,6]}`,
			ids: []int{5, 6}, lbl: []int{5, 6}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ex := readOne(t, c.tok, c.opts, c.line)
			if c.ids != nil && !reflect.DeepEqual(ex.InputIDs, c.ids) {
				t.Errorf("input ids\n got %v\nwant %v", ex.InputIDs, c.ids)
			}
			if c.lbl != nil && !reflect.DeepEqual(ex.Labels, c.lbl) {
				t.Errorf("labels\n got %v\nwant %v", ex.Labels, c.lbl)
			}
			if c.labelledAs != "" {
				if got := labelledText(ex); got != c.labelledAs {
					t.Errorf("labelled %q, want %q", got, c.labelledAs)
				}
			}
			if len(ex.InputIDs) != len(ex.Labels) || ex.Line != 1 {
				t.Errorf("len(ids) %d, len(labels) %d, line %d", len(ex.InputIDs), len(ex.Labels), ex.Line)
			}
			if !strings.Contains(c.line, "input_ids") {
				if n := strings.Count(tokText(ex.InputIDs), "<s>"); n != 1 {
					t.Errorf("%d <s> in %q", n, tokText(ex.InputIDs))
				}
			}
		})
	}
}

// llama3Like is Llama 3's template over fakeTok's tokens: bos_token written
// by the template, content trimmed, and the generation prompt appended
// whether or not add_generation_prompt is set.
const llama3Like = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|im_start|>' + message['role'] + '\n\n'+ message['content'] | trim + '<|eot|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{{ '<|im_start|>assistant\n\n' }}"

func tokText(ids []int) string {
	var b strings.Builder
	for _, id := range ids {
		s, _ := fakeTok{}.IDToToken(id)
		b.WriteString(s)
	}
	return b.String()
}

// TestRealTemplatesFake renders the chat templates of real models
// (testdata/tokenizers) with the fake tokenizer and checks the turns found.
func TestRealTemplatesFake(t *testing.T) {
	conv := `{"messages":[{"role":"system","content":"Be nice."},{"role":"user","content":"Q1"},{"role":"assistant","content":" <think>\nr1\n</think>\n\nA1 "},{"role":"user","content":"Q2"},{"role":"assistant","content":"<think>\nr2\n</think>\n\nA2"}]}`
	cases := []struct{ dir, want string }{
		// Qwen 3 drops the reasoning of turns before the last user query;
		// the model writes the <think> block itself after the prompt.
		{"qwen3", "A1 <|im_end|>|<think>\nr2\n</think>\n\nA2<|im_end|>"},
		// Mistral Nemo puts the system prompt into the last user turn, so
		// the text before a turn is not a prefix of the whole.
		{"mistral_nemo", " <think>\nr1\n</think>\n\nA1 </s>|<think>\nr2\n</think>\n\nA2</s>"},
		{"llama3", "<think>\nr1\n</think>\n\nA1|<think>\nr2\n</think>\n\nA2"}, // <|eot_id|> is no fakeTok special
	}
	for _, c := range cases {
		t.Run(c.dir, func(t *testing.T) {
			src := readTemplate(t, c.dir)
			ex := readOne(t, fakeTok{}, Options{ChatTemplate: src}, conv)
			if got := labelledText(ex); got != c.want {
				t.Errorf("labelled %q\nwant     %q\nin %q", got, c.want, tokText(ex.InputIDs))
			}
		})
	}
}

// readTemplate is the chat_template of a tokenizer in testdata/tokenizers;
// "" (ChatML) when it cannot be read and t is nil.
func readTemplate(t testing.TB, dir string) string {
	b, err := os.ReadFile("../../testdata/tokenizers/" + dir + "/tokenizer_config.json")
	var cfg struct {
		ChatTemplate string `json:"chat_template"`
	}
	if err == nil {
		err = json.Unmarshal(b, &cfg)
	}
	if err != nil && t != nil {
		t.Skip(err)
	}
	return cfg.ChatTemplate
}

func TestErrors(t *testing.T) {
	good := `{"text":"ok"}`
	cases := []struct {
		name, body string
		opts       Options
		want       string
	}{
		{"not json", "hello", Options{}, "x.jsonl:1: not a JSON object"},
		{"a list", "[1,2]", Options{}, "x.jsonl:1: not a JSON object"},
		{"null", "null", Options{}, "x.jsonl:1: not a JSON object: null"},
		{"truncated", `{"text":"a`, Options{}, "x.jsonl:1: not a JSON object"},
		{"line number counts blank lines", good + "\n\n" + good + "\n{oops}\n" + good, Options{}, "x.jsonl:4: not a JSON object"},
		{"text not a string", `{"text":5}`, Options{}, `x.jsonl:1: field "text" must be a string, not a number`},
		{"text null", `{"text":null}`, Options{}, `x.jsonl:1: field "text" must be a string, not null`},
		{"prompt only", `{"prompt":"a"}`, Options{}, `x.jsonl:1: prompt/completion example: missing field "completion"`},
		{"completion a list", `{"prompt":"a","completion":["b"]}`, Options{}, `field "completion" must be a string, not a list`},
		{"alpaca no output", `{"instruction":"a","input":""}`, Options{}, `x.jsonl:1: alpaca example: missing field "output"`},
		{"alpaca no instruction", `{"output":"a"}`, Options{}, `alpaca example: missing field "instruction"`},
		{"alpaca input a number", `{"instruction":"a","input":3,"output":"b"}`, Options{}, `field "input" must be a string, not a number`},
		{"messages not a list", `{"messages":"hi"}`, Options{}, `field "messages" must be a list of messages, not a string`},
		{"messages empty", `{"messages":[]}`, Options{}, `x.jsonl:1: field "messages" is empty`},
		{"message not an object", `{"messages":[1]}`, Options{}, `messages[0] must be an object, not a number`},
		{"message without content", `{"messages":[{"role":"user"}]}`, Options{}, `messages[0]: missing field "content"`},
		{"content null", `{"messages":[{"role":"user","content":null},{"role":"assistant","content":"a"}]}`, Options{}, `messages[0]: field "content" must be a string, not null`},
		{"role a number", `{"messages":[{"role":1,"content":"x"}]}`, Options{}, `messages[0]: field "role" must be a string`},
		{"unknown role", `{"messages":[{"role":"user","content":"x"},{"role":"wizard","content":"x"}]}`, Options{}, `messages[1]: unknown role "wizard"`},
		{"no assistant", `{"messages":[{"role":"user","content":"x"}]}`, Options{}, `x.jsonl:1: messages has no assistant turn`},
		{"template raises", `{"messages":[{"role":"user","content":"x"},{"role":"assistant","content":"y"}]}`,
			Options{ChatTemplate: "{{ raise_exception('roles must alternate') }}"}, "x.jsonl:1: chat template: raise_exception: roles must alternate"},
		{"template does not parse", `{"messages":[{"role":"user","content":"x"},{"role":"assistant","content":"y"}]}`,
			Options{ChatTemplate: "{% for m in messages %}"}, "x.jsonl:1: chat template does not parse"},
		{"unknown keys", `{"foo":1,"bar":2}`, Options{}, `x.jsonl:1: unrecognised example with keys ["bar" "foo"]`},
		{"empty object", `{}`, Options{}, `x.jsonl:1: unrecognised example with keys []`},
		{"input_ids not ints", `{"input_ids":"x"}`, Options{}, `field "input_ids" must be a list of ints`},
		{"input_ids empty", `{"input_ids":[]}`, Options{}, `field "input_ids" is empty`},
		{"input_ids null", `{"input_ids":null}`, Options{}, `field "input_ids" must be a list of ints`},
		{"labels length", `{"input_ids":[1,2],"labels":[1]}`, Options{}, "labels has 1 entries, input_ids 2"},
		{"negative id", `{"input_ids":[1,-2]}`, Options{}, "input_ids[1] = -2 is negative"},
		{"bad label", `{"input_ids":[1,2],"labels":[1,-1]}`, Options{}, "labels[1] = -1: negative labels must be -100"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			exs, err := ReadOptions("x.jsonl", strings.NewReader(c.body), fakeTok{}, fakeSp, c.opts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want error containing %q, got %v (%d examples)", c.want, err, len(exs))
			}
			if exs != nil {
				t.Errorf("examples returned with the error")
			}
		})
	}
}

func TestReadLinesAndDefaults(t *testing.T) {
	body := "\xef\xbb\xbf" + `{"text":"a"}` + "\r\n\n  \n" + `{"prompt":"p","completion":"c"}` // BOM, CRLF, blanks, no final newline
	exs, err := Read("x.jsonl", strings.NewReader(body), fakeTok{}, fakeSp)
	if err != nil {
		t.Fatal(err)
	}
	if len(exs) != 2 || exs[0].Line != 1 || exs[1].Line != 4 {
		t.Fatalf("got %+v", exs)
	}
	// An all-masked example is returned; CountTargets tells.
	exs, err = Read("x.jsonl", strings.NewReader(`{"prompt":"p","completion":""}`), fakeTok{}, Specials{BOS: fBOS, EOS: -1})
	if err != nil || len(exs) != 1 || CountTargets(exs) != 0 {
		t.Fatalf("%v %+v", err, exs)
	}
	path := t.TempDir() + "/d.jsonl"
	if err := os.WriteFile(path, []byte(`{"text":"a"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if exs, err := ReadFile(path, fakeTok{}, fakeSp); err != nil || len(exs) != 1 {
		t.Fatalf("ReadFile: %v %v", exs, err)
	}
	if _, err := ReadFileOptions(path+".missing", fakeTok{}, fakeSp, Options{}); err == nil {
		t.Fatal("no error for a missing file")
	}
}

func TestAlpacaPrompt(t *testing.T) {
	if got := AlpacaPrompt("Add.", "2 2"); got != alpacaWithInput {
		t.Errorf("with input: %q", got)
	}
	if got := AlpacaPrompt("Add.", ""); got != alpacaNoInput {
		t.Errorf("no input: %q", got)
	}
}
