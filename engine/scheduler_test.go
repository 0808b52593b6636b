package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lorakit/lorakit/kvcache"
	"github.com/lorakit/lorakit/lora"
	"github.com/lorakit/lorakit/model/llama"
	"github.com/lorakit/lorakit/tensor"
)

func newTestEngine(t *testing.T, f *fakeModel, cfg Config) *Engine {
	t.Helper()
	e, err := New(f, fakeSpec, tinyBrownTokenizer(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.Shutdown(ctx)
	})
	return e
}

// fakeAdapters makes n distinct adapter values the fake tells apart.
func fakeAdapters(f *fakeModel, n int) []*lora.Adapter {
	out := make([]*lora.Adapter, n)
	for i := range out {
		out[i] = &lora.Adapter{}
		f.shift[out[i]] = i + 1
	}
	return out
}

// TestBatchedOutputs: many requests over several adapters (and the base),
// submitted at once, each get exactly their own sequence; every step keeps
// same-adapter sequences adjacent; Forward is never called concurrently;
// Release runs once per request.
func TestBatchedOutputs(t *testing.T) {
	f := newFake(fakeSpec.Vocab)
	f.delay = 2 * time.Millisecond // a step takes time, so submissions pile up into batches
	ads := fakeAdapters(f, 5)
	e := newTestEngine(t, f, Config{MaxBatch: 8, MaxStepTokens: 20})
	type job struct {
		a      *lora.Adapter
		name   string
		prompt []int
		n      int
	}
	var jobs []job
	for i := 0; i < 30; i++ {
		var a *lora.Adapter
		name := ""
		if i%6 != 5 {
			a, name = ads[i%5], fmt.Sprintf("a%d", i%5)
		}
		p := make([]int, 1+i%13)
		for j := range p {
			p[j] = 100 + (i*31+j*17)%900
		}
		jobs = append(jobs, job{a, name, p, 1 + (i*7)%20})
	}
	var released sync.WaitGroup
	released.Add(len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var once sync.Once
			s, err := e.Submit(context.Background(), &Request{
				ID: fmt.Sprint(i), Adapter: j.name, LoRA: j.a, Prompt: j.prompt, MaxTokens: j.n,
				Release: func() { once.Do(released.Done) },
			})
			if err != nil {
				t.Error(err)
				return
			}
			res, err := s.Wait(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			want := f.expected(j.a, j.prompt, j.n)
			if !slices.Equal(res.Tokens, want) || res.FinishReason != "length" || res.PromptTokens != len(j.prompt) {
				t.Errorf("job %d: got %v (%s), want %v", i, res.Tokens, res.FinishReason, want)
			}
			if res.Text != tinyBrownTokenizer(t).Decode(want, tokDecodeOpts) {
				t.Errorf("job %d: text %q", i, res.Text)
			}
		}()
	}
	wg.Wait()
	released.Wait()
	if f.concurrent.Load() {
		t.Fatal("Forward was called concurrently")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	maxSize := 0
	for si, st := range f.steps {
		maxSize = max(maxSize, len(st))
		seen := map[*lora.Adapter]bool{}
		for i, a := range st {
			if i > 0 && st[i-1] == a {
				continue
			}
			if seen[a] {
				t.Fatalf("step %d: adapter segments not adjacent: %v", si, st)
			}
			seen[a] = true
		}
	}
	if maxSize < 2 || maxSize > 8 {
		t.Fatalf("largest batch %d, want 2..8 (MaxBatch 8)", maxSize)
	}
}

// TestQueueFull: beyond MaxBatch running and MaxQueue waiting, Submit
// refuses at once.
func TestQueueFull(t *testing.T) {
	f := newFake(fakeSpec.Vocab)
	gate := make(chan struct{})
	f.gate = gate
	e := newTestEngine(t, f, Config{MaxBatch: 1, MaxQueue: 2, MaxStepTokens: 8})
	defer close(gate)
	var streams []*Stream
	for i := 0; i < 3; i++ {
		s, err := e.Submit(context.Background(), &Request{Prompt: []int{5}, MaxTokens: 1})
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		streams = append(streams, s)
		if i == 0 {
			waitFor(t, func() bool { f.mu.Lock(); defer f.mu.Unlock(); return len(f.steps) == 1 })
		}
	}
	released := false
	_, err := e.Submit(context.Background(), &Request{Prompt: []int{5}, MaxTokens: 1, Release: func() { released = true }})
	if !errors.Is(err, ErrQueueFull) || !released {
		t.Fatalf("4th request: err %v released %v, want ErrQueueFull and released", err, released)
	}
	for _, s := range streams {
		s.Cancel()
	}
}

// TestCancelFreesSlot: cancelling a running request frees its slot at the
// next step, and a queued request cancelled before it runs never runs.
func TestCancelFreesSlot(t *testing.T) {
	f := newFake(fakeSpec.Vocab)
	f.delay = time.Millisecond
	e := newTestEngine(t, f, Config{MaxBatch: 1, MaxStepTokens: 8})
	long, err := e.Submit(context.Background(), &Request{Prompt: []int{5}, MaxTokens: 400})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	queued, err := e.Submit(ctx, &Request{Prompt: []int{6}, MaxTokens: 3})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := queued.Wait(context.Background()); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled queued request: %v", err)
	}
	if _, _, err := long.Next(context.Background()); err != nil {
		t.Fatal(err)
	}
	long.Cancel()
	t0 := time.Now()
	short, err := e.Submit(context.Background(), &Request{Prompt: []int{7}, MaxTokens: 2})
	if err != nil {
		t.Fatal(err)
	}
	res, err := short.Wait(context.Background())
	if err != nil || len(res.Tokens) != 2 {
		t.Fatalf("short after cancel: %v %v", res, err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Fatalf("the slot was not freed promptly: %v", d)
	}
	if r, err := long.Wait(context.Background()); !errors.Is(err, context.Canceled) || len(r.Tokens) >= 400 {
		t.Fatalf("cancelled long request: %d tokens, %v", len(r.Tokens), err)
	}
}

// TestFairAcrossAdapters: with one slot, a backlog for one adapter does not
// make a later request for another adapter wait behind all of it.
func TestFairAcrossAdapters(t *testing.T) {
	f := newFake(fakeSpec.Vocab)
	ads := fakeAdapters(f, 2)
	gate := make(chan struct{})
	f.gate = gate
	e := newTestEngine(t, f, Config{MaxBatch: 1, MaxQueue: 64, MaxStepTokens: 8})
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	submit := func(name string, a *lora.Adapter) {
		s, err := e.Submit(context.Background(), &Request{Adapter: name, LoRA: a, Prompt: []int{9}, MaxTokens: 1})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Wait(context.Background()); err != nil {
				t.Error(err)
			}
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
		}()
	}
	submit("A", ads[0])
	waitFor(t, func() bool { f.mu.Lock(); defer f.mu.Unlock(); return len(f.steps) == 1 })
	for i := 0; i < 10; i++ {
		submit("A", ads[0])
	}
	submit("B", ads[1])
	submit("B", ads[1])
	go func() {
		for range 13 {
			gate <- struct{}{}
		}
	}()
	wg.Wait()
	// The order the model ran them in (one slot: one sequence per step) is
	// the admission order; the waiters' wake-up order is not.
	f.mu.Lock()
	var ran []string
	for _, step := range f.steps {
		for _, a := range step {
			name := "A"
			if a == ads[1] {
				name = "B"
			}
			ran = append(ran, name)
		}
	}
	f.mu.Unlock()
	first := slices.Index(ran, "B")
	if first < 0 || first > 3 {
		t.Fatalf("B waited behind the A backlog: ran %v (completions %v)", ran, order)
	}
}

// TestKVBudget: admission never reserves more KV memory than the budget.
func TestKVBudget(t *testing.T) {
	f := newFake(fakeSpec.Vocab)
	f.delay = time.Millisecond
	per := int64(10) * fakeSpec.KVBytesPerToken() // prompt 2 + max_tokens 8
	e := newTestEngine(t, f, Config{MaxBatch: 16, MaxStepTokens: 64, ContextLen: 10, KVBudget: 3 * per})
	var wg sync.WaitGroup
	for i := 0; i < 12; i++ {
		s, err := e.Submit(context.Background(), &Request{Prompt: []int{1, 2}, MaxTokens: 8})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); s.Wait(context.Background()) }()
	}
	wg.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, n := range f.sizes {
		if n > 3 {
			t.Fatalf("step %d ran %d sequences; the budget holds 3", i, n)
		}
	}
}

// TestContextLimits: requests that cannot fit the window are refused.
func TestContextLimits(t *testing.T) {
	f := newFake(fakeSpec.Vocab)
	e := newTestEngine(t, f, Config{ContextLen: 16})
	var cl *ContextLengthError
	if _, err := e.Submit(context.Background(), &Request{Prompt: make([]int, 16), MaxTokens: 1}); !errors.As(err, &cl) {
		t.Fatalf("prompt of the whole context: %v", err)
	}
	if _, err := e.Submit(context.Background(), &Request{Prompt: make([]int, 4), MaxTokens: 1 << 40}); !errors.As(err, &cl) {
		t.Fatalf("huge max_tokens: %v", err)
	}
	if _, err := e.Submit(context.Background(), &Request{Prompt: []int{fakeSpec.Vocab}, MaxTokens: 1}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("token outside the vocabulary: %v", err)
	}
	if _, err := e.Submit(context.Background(), &Request{Prompt: nil, MaxTokens: 1}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty prompt: %v", err)
	}
}

// TestForwardFailure: a failing forward fails the requests of that step with
// an error and the engine keeps serving.
func TestForwardFailure(t *testing.T) {
	f := newFake(fakeSpec.Vocab)
	f.fail = errors.New("boom")
	e := newTestEngine(t, f, Config{})
	s, err := e.Submit(context.Background(), &Request{Prompt: []int{3}, MaxTokens: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Wait(context.Background()); err == nil {
		t.Fatal("want an error")
	}
	f.mu.Lock()
	f.fail = nil
	f.mu.Unlock()
	s, err = e.Submit(context.Background(), &Request{Prompt: []int{3}, MaxTokens: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestShutdown: in-flight requests finish, new ones are refused; past the
// deadline the rest fail with ErrShuttingDown.
func TestShutdown(t *testing.T) {
	f := newFake(fakeSpec.Vocab)
	f.delay = 2 * time.Millisecond
	e := newTestEngine(t, f, Config{MaxBatch: 2})
	a, err := e.Submit(context.Background(), &Request{Prompt: []int{3}, MaxTokens: 5})
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Submit(context.Background(), &Request{Prompt: []int{3}, MaxTokens: 400})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(5 * time.Millisecond)
		if _, err := e.Submit(context.Background(), &Request{Prompt: []int{3}, MaxTokens: 1}); !errors.Is(err, ErrShuttingDown) {
			t.Errorf("submit while draining: %v", err)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = e.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("shutdown: %v", err)
	}
	if r, err := a.Wait(context.Background()); err != nil || len(r.Tokens) != 5 {
		t.Fatalf("short request: %v %v", r, err)
	}
	if _, err := b.Wait(context.Background()); !errors.Is(err, ErrShuttingDown) {
		t.Fatalf("long request: %v", err)
	}
	if _, err := e.Submit(context.Background(), &Request{Prompt: []int{3}, MaxTokens: 1}); !errors.Is(err, ErrShuttingDown) {
		t.Fatalf("submit after shutdown: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting")
		}
	}
}

// TestCacheReservedOnceAndFreed: a running sequence's KV cache has room for
// exactly prompt + max_tokens positions from its first step (no growth, no
// copies), in the Spec's type, and is freed when the sequence ends.
func TestCacheReservedOnceAndFreed(t *testing.T) {
	for _, dt := range []tensor.DType{tensor.F32, tensor.BF16} {
		f := newFake(fakeSpec.Vocab)
		spec := fakeSpec
		spec.KVType = dt
		type seen struct{ room int }
		caches := map[*kvcache.Seq]*seen{}
		var bad []string
		f.onStep = func(st *llama.Step) {
			for r, c := range st.Caches {
				s := caches[c]
				if s == nil {
					s = &seen{room: c.Cap()}
					caches[c] = s
				}
				if c.Cap() != s.room || c.DType != dt {
					bad = append(bad, fmt.Sprintf("cache %p: room %d (was %d), type %s at Len %d + %d", c, c.Cap(), s.room, c.DType, c.Len, len(st.Tokens[r])))
				}
			}
		}
		e, err := New(f, spec, tinyBrownTokenizer(t), Config{MaxBatch: 4, MaxStepTokens: 6})
		if err != nil {
			t.Fatal(err)
		}
		want := map[int]bool{}
		var wg sync.WaitGroup
		for i := 0; i < 6; i++ {
			prompt := make([]int, 3+i)
			for j := range prompt {
				prompt[j] = 100 + j
			}
			want[len(prompt)+5+i] = true
			s, err := e.Submit(context.Background(), &Request{Prompt: prompt, MaxTokens: 5 + i})
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() { defer wg.Done(); s.Wait(context.Background()) }()
		}
		wg.Wait()
		e.Shutdown(context.Background())
		f.mu.Lock()
		if len(bad) > 0 {
			t.Fatalf("%s: %v", dt, bad)
		}
		if len(caches) != 6 {
			t.Fatalf("%s: %d caches for 6 requests", dt, len(caches))
		}
		for c, s := range caches {
			if !want[s.room] {
				t.Errorf("%s: a cache had room for %d positions; want prompt + max_tokens, one of %v", dt, s.room, want)
			}
			if c.Cap() != 0 {
				t.Errorf("%s: a finished sequence's cache still holds %d positions", dt, c.Cap())
			}
		}
		f.mu.Unlock()
	}
}

// TestBadKVType: a cache type the kernels cannot read is refused up front,
// not when the first request arrives.
func TestBadKVType(t *testing.T) {
	spec := fakeSpec
	spec.KVType = tensor.F64
	if _, err := New(newFake(spec.Vocab), spec, tinyBrownTokenizer(t), Config{}); err == nil {
		t.Fatal("an F64 KV cache was accepted")
	}
}
