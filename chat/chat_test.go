package chat

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// golden is testdata/golden.json, written by testdata/gen_golden.py with
// Python's jinja2 set up as transformers' apply_chat_template.
type golden struct {
	Templates map[string]string `json:"templates"`
	Cases     []struct {
		Name                string    `json:"name"`
		Conversation        int       `json:"conversation"`
		AddGenerationPrompt bool      `json:"add_generation_prompt"`
		Messages            []Message `json:"messages"`
		Want                *string   `json:"want"`
		Error               string    `json:"error"`
	} `json:"cases"`
}

func loadGolden(t *testing.T) golden {
	t.Helper()
	b, err := os.ReadFile("testdata/golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// TestGolden renders every template of golden.json (ChatML, tiny-brown's,
// Llama 3's, Qwen 3's, Mistral Nemo's, Llama 2's, Zephyr's, Gemma's and
// whitespace/tojson probes) and compares with jinja2's text byte for byte.
func TestGolden(t *testing.T) {
	g := loadGolden(t)
	compiled := map[string]*Template{}
	for name, src := range g.Templates {
		tp, err := Compile(src)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		compiled[name] = tp
	}
	for _, c := range g.Cases {
		got, err := compiled[c.Name].Render(c.Messages, c.AddGenerationPrompt, map[string]any{"bos_token": "<BOS>", "eos_token": "<EOS>"})
		id := c.Name + "/" + string(rune('0'+c.Conversation))
		if c.AddGenerationPrompt {
			id += "/gen"
		}
		if c.Want == nil {
			var te *TemplateError
			if !errors.As(err, &te) || te.Msg != c.Error {
				t.Errorf("%s: want raise_exception(%q), got %q, %v", id, c.Error, got, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", id, err)
			continue
		}
		if got != *c.Want {
			t.Errorf("%s:\n got %q\nwant %q", id, got, *c.Want)
		}
	}
}

func TestChatMLExact(t *testing.T) {
	msgs := []Message{{"system", "S"}, {"user", "U"}, {"assistant", "A"}}
	got, err := Render(ChatML, msgs, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n<|im_start|>assistant\n"
	if got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	// tiny-brown's own template is ChatML too.
	b, err := os.ReadFile("../models/tiny-brown/tokenizer_config.json")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ChatTemplate string `json:"chat_template"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	got2, err := Render(cfg.ChatTemplate, msgs, true, nil)
	if err != nil || got2 != want {
		t.Fatalf("tiny-brown: got %q, %v", got2, err)
	}
}

// TestRealTemplates renders the chat_template of each tokenizer in
// testdata/tokenizers that has one and checks its markers.
func TestRealTemplates(t *testing.T) {
	msgs := []Message{{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello"}, {"user", "Bye"}}
	cases := []struct {
		dir, bos, eos string
		want          []string
	}{
		{"llama3", "<|begin_of_text|>", "<|end_of_text|>", []string{
			"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>",
			"<|start_header_id|>assistant<|end_header_id|>\n\nHello<|eot_id|>",
			"<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
		}},
		{"qwen3", "", "<|im_end|>", []string{
			"<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n",
			"<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n",
		}},
		{"mistral_nemo", "<s>", "</s>", []string{"<s>[INST]Hi[/INST]Hello</s>[INST]Be brief.\n\nBye[/INST]"}},
	}
	for _, c := range cases {
		t.Run(c.dir, func(t *testing.T) {
			b, err := os.ReadFile("../testdata/tokenizers/" + c.dir + "/tokenizer_config.json")
			if err != nil {
				t.Skip(err)
			}
			var cfg struct {
				ChatTemplate json.RawMessage `json:"chat_template"`
			}
			if err := json.Unmarshal(b, &cfg); err != nil {
				t.Fatal(err)
			}
			var src string
			if err := json.Unmarshal(cfg.ChatTemplate, &src); err != nil {
				t.Fatalf("chat_template is not a string: %s", cfg.ChatTemplate)
			}
			extra := map[string]any{"eos_token": c.eos}
			if c.bos != "" {
				extra["bos_token"] = c.bos
			}
			got, err := Render(src, msgs, true, extra)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("missing %q in\n%q", w, got)
				}
			}
		})
	}
}

func TestErrors(t *testing.T) {
	cases := []struct {
		name, src string
		compile   bool // the error comes from Compile
		want      string
	}{
		{"unclosed for", "{% for m in messages %}{{ m.content }}", true, "chat template does not parse"},
		{"unclosed expr", "{{ messages[0].content ", true, "chat template does not parse"},
		{"unknown tag", "{% frobnicate %}", true, "chat template does not parse"},
		{"raise", "{{ raise_exception('no system role') }}", false, "raise_exception: no system role"},
		{"unknown filter", "{{ messages | frobnicate }}", false, "frobnicate"},
		{"call a string", "{{ messages[0].content() }}", false, "chat template"},
		// gonja v2.9.1 loops for ever on these (guard.go).
		{"number dot non-ASCII", "{{ 8.趟 }}", true, "a number followed by '.'"},
		{"number dot non-ASCII in a statement", "{% if 1.é %}{% endif %}", true, "a number followed by '.'"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tp, err := Compile(c.src)
			if c.compile {
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("Compile: want error with %q, got %v", c.want, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, err = tp.Render([]Message{{"user", "x"}}, false, nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Render: want error with %q, got %v", c.want, err)
			}
		})
	}
}

func TestGuardKeepsStrings(t *testing.T) {
	got, err := Render(`{{ 'v1.é' }}{{ "2.ü" }} 3.é {# 4.é #}`, nil, false, nil)
	if err != nil || got != "v1.é2.ü 3.é " {
		t.Fatalf("%q %v", got, err)
	}
}

func TestGenerationTag(t *testing.T) {
	src := "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% set x = 1 %}{% endgeneration %}{% else %}{{ m.content }}{% endif %}{% endfor %}"
	got, err := Render(src, []Message{{"user", "u"}, {"assistant", "a"}}, false, nil)
	if err != nil || got != "ua" {
		t.Fatalf("%q %v", got, err)
	}
}

func TestStrftime(t *testing.T) {
	tm := time.Date(2024, 7, 5, 14, 3, 9, 0, time.UTC)
	if got := strftime(tm, "%d %b %Y|%Y-%m-%d %H:%M:%S|%A %B %j %I%p %%|%Q"); got != "05 Jul 2024|2024-07-05 14:03:09|Friday July 187 02PM %|%Q" {
		t.Fatal(got)
	}
	got, err := Render("{{ strftime_now('%Y') }}", nil, false, nil)
	if err != nil || len(got) != 4 {
		t.Fatalf("%q %v", got, err)
	}
}

func TestPyFloat(t *testing.T) {
	for f, want := range map[float64]string{1: "1.0", 1.5: "1.5", 0.1: "0.1", 1e-5: "1e-05", 1e16: "1e+16", 1e15: "1000000000000000.0", -2.5e-7: "-2.5e-07", 123456.789: "123456.789"} {
		if got := pyFloat(f); got != want {
			t.Errorf("pyFloat(%v) = %q, want %q", f, got, want)
		}
	}
}

// FuzzCompile: arbitrary template text never panics out of Compile or Render.
func FuzzCompile(f *testing.F) {
	g := []string{ChatML, "{% for m in messages %}{{ m.content | trim }}{% endfor %}", "{{ raise_exception('x') }}", "{% if %}", "{{ messages[::-1] | tojson }}", "{% set ns = namespace(a=1) %}{{ ns.a }}"}
	for _, s := range g {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		if strings.Contains(src, "range") {
			return // range() can ask for unbounded work
		}
		tp, err := Compile(src)
		if err != nil {
			return
		}
		_, _ = tp.Render([]Message{{"user", "u"}, {"assistant", "a"}}, true, map[string]any{"bos_token": "<s>"})
	})
}
