package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/lorakit/lorakit/engine"
	"github.com/lorakit/lorakit/lora"
)

// TestNoCrossTalk: 50 different adapters queried concurrently over HTTP at
// temperature 0, half of them streaming, return exactly what
// single-sequence generation returns with that adapter attached (engine.Generate,
// what `lorakit generate --adapter` runs), although the server computes
// them together in mixed-adapter batches.
func TestNoCrossTalk(t *testing.T) {
	const n, maxTokens = 50, 16
	h := newHarness(t, harnessOpts{adapters: n, maxLoaded: n, engine: engine.Config{MaxBatch: 64}})
	prompts := []string{"The jury said", "It was a", "In the morning", "He said that the", "The city of"}

	// References: a separate model instance (the server's belongs to its
	// scheduler), each adapter read back from its folder and attached.
	ref, tok := loadTinyBrown(t)
	want := make([]engine.Result, n)
	for i := range want {
		a, err := lora.Load(filepath.Join(h.dir, fmt.Sprint("a", i)))
		if err != nil {
			t.Fatal(err)
		}
		if err := ref.Attach(a); err != nil {
			t.Fatal(err)
		}
		want[i], err = engine.Generate(context.Background(), ref, tok, h.encodePrompt(prompts[i%len(prompts)]),
			engine.GenerateOptions{MaxTokens: maxTokens, EOS: []int{0}}, nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	distinct := map[string]bool{}
	for _, w := range want {
		distinct[w.Text] = true
	}
	if len(distinct) < n/2 {
		t.Fatalf("only %d distinct outputs from %d adapters: too few to detect cross-talk", len(distinct), n)
	}

	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := map[string]any{"model": fmt.Sprint("a", i), "prompt": prompts[i%len(prompts)], "max_tokens": maxTokens,
				"temperature": 0, "stream": i%2 == 1}
			var text, finish string
			var usage map[string]any
			if i%2 == 1 {
				text, finish = streamCompletion(t, h, body)
			} else {
				status, out, _ := h.post(t, "/v1/completions", "", body)
				if status != 200 {
					t.Errorf("adapter %d: status %d %v", i, status, out)
					return
				}
				ch := out["choices"].([]any)[0].(map[string]any)
				text, finish = ch["text"].(string), ch["finish_reason"].(string)
				usage = out["usage"].(map[string]any)
			}
			w := want[i]
			if text != w.Text || finish != w.FinishReason {
				t.Errorf("adapter a%d: got %q (%s), single-sequence generation gives %q (%s)", i, text, finish, w.Text, w.FinishReason)
			}
			if usage != nil && (int(usage["prompt_tokens"].(float64)) != w.PromptTokens || int(usage["completion_tokens"].(float64)) != len(w.Tokens)) {
				t.Errorf("adapter a%d: usage %v, want %d + %d", i, usage, w.PromptTokens, len(w.Tokens))
			}
		}()
	}
	wg.Wait()
}

// streamCompletion posts a streaming completion and concatenates its text.
func streamCompletion(t testing.TB, h *harness, body map[string]any) (text, finish string) {
	t.Helper()
	js, _ := json.Marshal(body)
	resp, err := h.ts.Client().Post(h.ts.URL+"/v1/completions", "application/json", strings.NewReader(string(js)))
	if err != nil {
		t.Error(err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Errorf("stream: status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		return
	}
	sc := bufio.NewScanner(resp.Body)
	sawDone := false
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Errorf("stream: unexpected line %q", line)
			return
		}
		if data == "[DONE]" {
			sawDone = true
			break
		}
		var c struct {
			Choices []struct {
				Text         string  `json:"text"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
			Error any `json:"error"`
		}
		if err := json.Unmarshal([]byte(data), &c); err != nil || c.Error != nil {
			t.Errorf("stream: bad event %q: %v", data, err)
			return
		}
		for _, ch := range c.Choices {
			text += ch.Text
			if ch.FinishReason != nil {
				finish = *ch.FinishReason
			}
		}
	}
	if !sawDone {
		t.Error("stream: no [DONE]")
	}
	return text, finish
}
