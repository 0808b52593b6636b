package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lorakit/lorakit/internal/testutil"
)

// run executes the CLI in-process and returns stdout.
func run(t *testing.T, args ...string) string {
	t.Helper()
	cmd := newRoot()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	if err := cmd.Execute(); err != nil {
		t.Fatalf("lorakit %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// TestEvalMatchesReference checks `lorakit eval` against the PyTorch figures in
// models/tiny-brown/README.md ("Perplexity with the {"text"} data
// convention"): h_test 10,030 tokens, ppl 98.0384; p_test 9,498 tokens, ppl
// 100.4286 — to 4 significant digits and the exact token count.
func TestEvalMatchesReference(t *testing.T) {
	if testing.Short() {
		t.Skip("scores 20k tokens")
	}
	for _, tc := range []struct {
		file   string
		tokens int
		loss   float64
		ppl    float64
	}{
		{"h_test", 10030, 4.585360, 98.0384},
		{"p_test", 9498, 4.609447, 100.4286},
	} {
		t.Run(tc.file, func(t *testing.T) {
			out := run(t, "eval", "--model", testutil.Path("models", "tiny-brown"), "--data", testutil.Path("datasets", "brown", tc.file+".jsonl"), "--json")
			var res struct {
				Loss, Perplexity float64
				Tokens           int
			}
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("%v: %q", err, out)
			}
			if res.Tokens != tc.tokens {
				t.Fatalf("tokens %d, want %d", res.Tokens, tc.tokens)
			}
			if math.Abs(res.Perplexity-tc.ppl)/tc.ppl > 5e-5 || math.Abs(res.Loss-tc.loss) > 1e-5 {
				t.Fatalf("loss %.6f ppl %.4f, want %.6f / %.4f", res.Loss, res.Perplexity, tc.loss, tc.ppl)
			}
			t.Logf("%s: loss %.6f perplexity %.4f tokens %d", tc.file, res.Loss, res.Perplexity, res.Tokens)
		})
	}
}

// TestGreedyMatchesReference: greedy continuations of the README's prompts
// (48 new tokens after <|endoftext|> + prompt), token for token as text.
func TestGreedyMatchesReference(t *testing.T) {
	for _, tc := range []struct{ prompt, want string }{
		{"The President said that", "The President said that the first time the first time the first time the first time the first time the first time.\nThe first time the first time the first time the first time, the first time the first time, the first time, and the first time"},
		{"She looked at him and", "She looked at him and he was not to be a little more than the first time.\n\"I'll be a good thing.\"\n\"I'll have a little more than the man's. I'll have to be a little to the man's. I"},
		{"The results of the experiment", "The results of the experiment, the first time is the first time. The first time the same time is the same. The first time the same time is the same. The first time the same time is the same. The first time the same time is the same"},
	} {
		got := run(t, "generate", "--model", testutil.Path("models", "tiny-brown"), "--prompt", tc.prompt, "--max-tokens", "48", "--temperature", "0")
		if strings.TrimSuffix(got, "\n") != tc.want {
			t.Errorf("prompt %q:\n got %q\nwant %q", tc.prompt, got, tc.want)
		}
	}
}

func TestTokenizeCLI(t *testing.T) {
	got := run(t, "tokenize", "--tokenizer", testutil.Path("models", "tiny-brown", "tokenizer.json"), "A")
	if got != "[68]\n" { // byte 'A' = 65 → id 3 + 65
		t.Fatalf("got %q", got)
	}
	// Batch mode: one array per {"text"} line of stdin.
	cmd := newRoot()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetIn(strings.NewReader("{\"text\": \"A\"}\n\n{\"text\": \"\"}\n"))
	cmd.SetArgs([]string{"tokenize", "--tokenizer", testutil.Path("models", "tiny-brown")})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if out.String() != "[68]\n[]\n" {
		t.Fatalf("batch: %q", out.String())
	}
	cmd = newRoot()
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetIn(strings.NewReader("{\"text\": \"A\"}\n{\"txt\": 1}\n"))
	cmd.SetArgs([]string{"tokenize"})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "stdin:2") {
		t.Fatalf("malformed line: err = %v", err)
	}
}

func TestInspect(t *testing.T) {
	out := run(t, "inspect", testutil.Path("models", "tiny-brown"))
	for _, want := range []string{"LlamaForCausalLM", "layers 6", "5770496 parameters", "dtype F32"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	out = run(t, "inspect", testutil.Path("models", "tiny-brown", "model.safetensors"))
	if !strings.Contains(out, "56 tensors") {
		t.Errorf("inspect of a file:\n%s", out)
	}
}

func TestEvalReportsBadLines(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(p, []byte("{\"text\": \"fine\"}\n{\"text\": 3}\n"), 0o644)
	cmd := newRoot()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs([]string{"eval", "--data", p})
	err := cmd.Execute()
	if err == nil || !strings.Contains(err.Error(), p+":2") {
		t.Fatalf("err = %v, want one naming %s:2", err, p)
	}
}

// TestGGUFModel: the GGUF export of tiny-brown generates exactly what the
// safetensors folder generates (llama.cpp adds <bos> itself: add_bos_token).
func TestGGUFModel(t *testing.T) {
	gguf := testutil.Path("testdata", "gguf", "tiny-brown-f32.gguf")
	a := run(t, "generate", "--model", gguf, "--prompt", "She looked at him and", "--max-tokens", "24", "--temperature", "0")
	b := run(t, "generate", "--model", testutil.Path("models", "tiny-brown"), "--prompt", "She looked at him and", "--max-tokens", "24", "--temperature", "0")
	if a != b {
		t.Fatalf("GGUF: %q\nsafetensors: %q", a, b)
	}
	if got := run(t, "tokenize", "--tokenizer", gguf, "--add-special", "A"); got != "[0,68]\n" {
		t.Fatalf("GGUF tokenizer with specials: %q", got)
	}
}
