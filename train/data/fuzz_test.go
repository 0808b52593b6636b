package data

import (
	"strings"
	"testing"
)

// FuzzRead feeds arbitrary lines to ReadOptions with the fake tokenizer and
// checks it never panics and that every example it returns is well formed:
// as many labels as ids, and (except for pre-tokenized lines, whose labels
// are the author's) every label IgnoreIndex or the id at its position.
// The third argument picks the chat template: ChatML, a Llama 3-like one, or
// the real Qwen 3 and Mistral Nemo ones (not prefix-stable).
func FuzzRead(f *testing.F) {
	templates := []string{"", llama3Like, readTemplate(nil, "qwen3"), readTemplate(nil, "mistral_nemo")}
	seeds := []string{
		`{"text":"hello"}`,
		`{"text":""}`,
		`{"text":5}`,
		`{"prompt":"Q: ","completion":"A"}`,
		`{"prompt":"<|im_start|>","completion":"<|im_end|>"}`,
		`{"prompt":"x"}`,
		`{"instruction":"Add.","input":"2 2","output":"4"}`,
		`{"instruction":"Add.","output":"4"}`,
		`{"instruction":"Add.","input":null,"output":"4"}`,
		`{"instruction":1,"output":"4"}`,
		`{"messages":[{"role":"user","content":"U"},{"role":"assistant","content":"A"}]}`,
		`{"messages":[{"role":"system","content":"S"},{"role":"user","content":"U"},{"role":"assistant","content":"<|im_end|>x<s>"},{"role":"tool","content":"t"},{"role":"assistant","content":""}]}`,
		`{"messages":[{"role":"assistant","content":"first"}]}`,
		`{"messages":[{"role":"user","content":"only"}]}`,
		`{"messages":[]}`,
		`{"messages":[{"role":"wizard","content":"x"}]}`,
		`{"messages":[{"role":"user"}]}`,
		`{"messages":"x"}`,
		`{"input_ids":[1,2,3],"labels":[-100,2,3]}`,
		`{"input_ids":[1,2],"labels":[1]}`,
		`{"input_ids":[-1]}`,
		`{"foo":1}`,
		`{}`,
		`null`,
		`[1]`,
		`not json`,
		"{\"text\":\"a\"}\n\n{\"text\":\"\xff\xfe\"}",
	}
	for i, s := range seeds {
		f.Add(s, false, uint8(i))
		f.Add(s, true, uint8(i+1))
	}
	f.Fuzz(func(t *testing.T, body string, trainOnInputs bool, tmpl uint8) {
		opts := Options{TrainOnInputs: trainOnInputs, ChatTemplate: templates[int(tmpl)%len(templates)]}
		exs, err := ReadOptions("f.jsonl", strings.NewReader(body), fakeTok{}, fakeSp, opts)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.jsonl:") {
				t.Fatalf("error without file:line: %v", err)
			}
			return
		}
		lines := strings.Split(body, "\n")
		for _, ex := range exs {
			if len(ex.InputIDs) != len(ex.Labels) {
				t.Fatalf("line %d: %d ids, %d labels", ex.Line, len(ex.InputIDs), len(ex.Labels))
			}
			if ex.Line < 1 || ex.Line > len(lines) {
				t.Fatalf("line %d of %d", ex.Line, len(lines))
			}
			if strings.Contains(lines[ex.Line-1], `"input_ids"`) {
				continue
			}
			for i, l := range ex.Labels {
				if l != IgnoreIndex && l != ex.InputIDs[i] {
					t.Fatalf("line %d: label %d at %d, id %d", ex.Line, l, i, ex.InputIDs[i])
				}
			}
			if trainOnInputs && CountTargets([]Example{ex}) != len(ex.InputIDs)-1 {
				t.Fatalf("line %d: train on inputs left tokens masked", ex.Line)
			}
		}
	})
}
