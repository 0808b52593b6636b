package data

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/lorakit/lorakit/chat"
)

// TestSpansRandom checks the labelled text of random conversations against
// what each template makes of the assistant turns: ChatML (prefix-stable),
// a Llama 3-like template (trims the content, always appends the generation
// prompt) and Mistral Nemo's (not prefix-stable: the system prompt goes to
// the last user turn, so turns are found by the fallback).
func TestSpansRandom(t *testing.T) {
	nemo := readTemplate(t, "mistral_nemo")
	cases := []struct {
		name, template string
		turn           func(content string) string // the labelled text of an assistant turn
	}{
		{"chatml", chat.ChatML, func(c string) string { return c + "<|im_end|>" }},
		{"llama3-like", llama3Like, func(c string) string { return strings.TrimSpace(c) + "<|eot|>" }},
		{"mistral_nemo", nemo, func(c string) string { return c + "</s>" }},
		// Neither prefix-stable (the count comes first) nor keeping the
		// probe (upper): the last resort, the difference.
		{"count-upper", countUpper, func(c string) string { return strings.ToUpper(c) + "<|im_end|>" }},
	}
	alphabet := []string{"a", "b", " ", "\n", "<", ">", "/", "s", "[", "]", "INST", "x y", "</s", "im_end"}
	rng := rand.New(rand.NewPCG(1, 2))
	content := func() string {
		var b strings.Builder
		for n := rng.IntN(6); n > 0; n-- {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		return b.String()
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for iter := 0; iter < 300; iter++ {
				var msgs []chat.Message
				if rng.IntN(2) == 0 {
					msgs = append(msgs, chat.Message{Role: "system", Content: "sys" + content()})
				}
				var want []string
				for turns := 1 + rng.IntN(3); turns > 0; turns-- {
					msgs = append(msgs, chat.Message{Role: "user", Content: "u" + content()})
					a := content()
					msgs = append(msgs, chat.Message{Role: "assistant", Content: a})
					want = append(want, c.turn(a))
				}
				line, _ := json.Marshal(map[string]any{"messages": msgs})
				exs, err := ReadOptions("r.jsonl", strings.NewReader(string(line)), fakeTok{}, fakeSp, Options{ChatTemplate: c.template})
				if err != nil {
					t.Fatal(err)
				}
				if got := labelledRuns(exs[0]); strings.Join(got, "|") != strings.Join(want, "|") {
					t.Fatalf("conversation %s\nlabelled %q\nwant     %q\nin %q", line, got, want, tokText(exs[0].InputIDs))
				}
			}
		})
	}
}

const countUpper = "{{ messages | length }}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content | upper }}<|im_end|>\n{% endfor %}"

// labelledRuns is the text of each run of labelled tokens (fakeTok).
func labelledRuns(ex Example) []string {
	var out []string
	var cur strings.Builder
	in := false
	for i, l := range ex.Labels {
		if l == IgnoreIndex {
			if in {
				out = append(out, cur.String())
				cur.Reset()
			}
			in = false
			continue
		}
		in = true
		s, _ := fakeTok{}.IDToToken(ex.InputIDs[i])
		cur.WriteString(s)
	}
	if in {
		out = append(out, cur.String())
	}
	return out
}

func TestDifference(t *testing.T) {
	sp := []string{"</s>", "<s>"}
	cases := []struct {
		a, b       string
		start, end int
	}{
		{"[/INST]ok</s>", "[/INST]</s>", 7, 9},
		// The content "<b>" could start at either "<": not inside "</s>".
		{"[/INST]<b></s>", "[/INST]</s>", 7, 10},
		{"ab", "axb", 1, 1},        // a lacks b's insertion: an empty span
		{"aXYb", "aZb", 1, 3},      // a replacement: all of it
		{"same", "same", 4, 4},     // nothing differs
		{"</s></s>", "</s>", 4, 8}, // rightmost when every shift is as good
	}
	for _, c := range cases {
		if s, e := difference(c.a, c.b, sp); s != c.start || e != c.end {
			t.Errorf("difference(%q, %q) = %d, %d, want %d, %d", c.a, c.b, s, e, c.start, c.end)
		}
	}
}

func TestEndOfTurn(t *testing.T) {
	sp := []string{"<|im_end|>", "<|im_end|>x", "</s>"}
	cases := []struct {
		text string
		want int
	}{
		{"<|im_end|>\n<|im_start|>", len("<|im_end|>")},
		{" </s>", len(" </s>")},
		{"\n\n<|im_end|>x", len("\n\n<|im_end|>x")}, // the longest
		{"x</s>", 0},
		{"", 0},
	}
	for _, c := range cases {
		if got := endOfTurn(c.text, 0, sp); got != c.want {
			t.Errorf("endOfTurn(%q) = %d, want %d", c.text, got, c.want)
		}
	}
}
