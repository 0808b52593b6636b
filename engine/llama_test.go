package engine

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/lorakit/lorakit/lora"
	"github.com/lorakit/lorakit/model/llama"
	"github.com/lorakit/lorakit/models"
	"github.com/lorakit/lorakit/sample"
	"github.com/lorakit/lorakit/tensor"
)

func loadTinyBrown(t testing.TB) *llama.Model {
	t.Helper()
	m, err := llama.Load(models.TinyBrown())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestEngineMatchesGenerate: requests over several adapters and the base,
// greedy and seeded sampling, with stop strings, run concurrently through
// the batching scheduler (with prefill split into chunks), produce exactly
// what Generate produces for each alone with its adapter attached. With
// BF16 weights both keep a BF16 KV cache (KVType), written and read by the
// 16-bit attention paths, decode and prefill chunks alike.
func TestEngineMatchesGenerate(t *testing.T) {
	for _, dt := range []tensor.DType{tensor.F32, tensor.BF16} {
		t.Run(string(dt), func(t *testing.T) {
			m := loadTinyBrown(t)
			if err := m.ConvertWeights(dt); err != nil {
				t.Fatal(err)
			}
			if got := SpecOf(m).KVType; got != dt {
				t.Fatalf("KV cache type %s for %s weights", got, dt)
			}
			engineMatchesGenerate(t, m)
		})
	}
}

func engineMatchesGenerate(t *testing.T, m *llama.Model) {
	tok := tinyBrownTokenizer(t)
	var ads []*lora.Adapter
	for i := 0; i < 4; i++ {
		a, err := RandomAdapter(m, 4, lora.Attention, uint64(i+1), 0.05)
		if err != nil {
			t.Fatal(err)
		}
		ads = append(ads, a)
	}
	prompts := []string{"The jury said", "It was a", "In the morning the", "He", "The city of Atlanta"}
	type job struct {
		a      int // -1: base
		prompt []int
		opt    GenerateOptions
	}
	var jobs []job
	for i := 0; i < 15; i++ {
		p := append([]int{0}, tok.Encode(prompts[i%len(prompts)], true)...)
		opt := GenerateOptions{MaxTokens: 12 + i%9, EOS: []int{0}}
		if i%3 == 1 {
			opt.Sample = sample.Params{Temperature: 0.9, TopK: 40, TopP: 0.95, Seed: uint64(i)}
		}
		if i%4 == 2 {
			opt.Stop = []string{"the", "."}
		}
		jobs = append(jobs, job{a: i%5 - 1, prompt: p, opt: opt})
	}
	want := make([]Result, len(jobs))
	var wantText []string
	for i, j := range jobs {
		m.Detach()
		if j.a >= 0 {
			if err := m.Attach(ads[j.a]); err != nil {
				t.Fatal(err)
			}
		}
		var streamed string
		res, err := Generate(context.Background(), m, tok, j.prompt, j.opt, func(s string) error { streamed += s; return nil })
		if err != nil {
			t.Fatal(err)
		}
		want[i] = res
		wantText = append(wantText, streamed)
	}
	m.Detach()
	distinct := map[string]bool{}
	for _, w := range want {
		distinct[w.Text] = true
	}
	if len(distinct) < len(jobs)/2 {
		t.Fatalf("adapters barely change the output (%d distinct texts): the test would prove nothing", len(distinct))
	}

	e, err := New(m, SpecOf(m), tok, Config{MaxBatch: 6, MaxStepTokens: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown(context.Background())
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := &Request{ID: fmt.Sprint(i), Prompt: j.prompt, MaxTokens: j.opt.MaxTokens, Sample: j.opt.Sample, Stop: j.opt.Stop, EOS: j.opt.EOS}
			if j.a >= 0 {
				req.Adapter, req.LoRA = fmt.Sprint("a", j.a), ads[j.a]
			}
			s, err := e.Submit(context.Background(), req)
			if err != nil {
				t.Error(err)
				return
			}
			var streamed string
			for {
				text, done, err := s.Next(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				streamed += text
				if done {
					break
				}
			}
			got := s.Result()
			w := want[i]
			if got.Text != w.Text || got.FinishReason != w.FinishReason || fmt.Sprint(got.Tokens) != fmt.Sprint(w.Tokens) || got.PromptTokens != w.PromptTokens {
				t.Errorf("job %d (adapter %d): got %q %v %s, want %q %v %s", i, j.a, got.Text, got.Tokens, got.FinishReason, w.Text, w.Tokens, w.FinishReason)
			}
			if streamed != got.Text || streamed != wantText[i] {
				t.Errorf("job %d: streamed %q, final %q, Generate streamed %q", i, streamed, got.Text, wantText[i])
			}
		}()
	}
	wg.Wait()
}
