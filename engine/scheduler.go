package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lorakit/lorakit/kvcache"
	"github.com/lorakit/lorakit/lora"
	"github.com/lorakit/lorakit/model/llama"
	"github.com/lorakit/lorakit/sample"
	"github.com/lorakit/lorakit/tokenizer"
)

// Config sizes the scheduler.
type Config struct {
	// MaxBatch is the most sequences in the running batch (default 64).
	MaxBatch int
	// MaxQueue is the most requests waiting for a slot; Submit fails with
	// ErrQueueFull beyond it (default 256).
	MaxQueue int
	// MaxStepTokens caps the tokens of one forward step: every running
	// sequence's decode token, then prefill chunks of new sequences up to
	// the cap, so a long prompt cannot stall the others' decoding for long
	// (default max(512, 2·MaxBatch)).
	MaxStepTokens int
	// ContextLen bounds prompt + max_tokens (default: the model's window,
	// 2048 when it has none).
	ContextLen int
	// KVBudget bounds the KV cache memory of running sequences, in bytes.
	// Each sequence reserves its worst case (prompt + max_tokens positions)
	// at admission, so a running sequence never runs out of memory and
	// never has to be preempted (default: MaxBatch full contexts, at most
	// 4 GiB, at least one full context).
	KVBudget int64
	Metrics  *Metrics
	Logger   *slog.Logger
}

// Engine is the continuous-batching scheduler: one goroutine that, step
// after step, runs a single forward over every running sequence (prefill
// chunks of new ones and a decode token of each of the others), ordered so
// that sequences sharing an adapter are adjacent (one LoRA segment each),
// and then samples each sequence's next token with its own parameters.
// Requests join and leave the batch between steps.
type Engine struct {
	model Model
	spec  Spec
	tok   *tokenizer.Tokenizer
	cfg   Config
	met   *Metrics
	log   *slog.Logger

	mu       sync.Mutex
	queue    *fairQueue
	draining bool // no new requests
	abort    bool // end everything now (shutdown deadline passed)
	nextNum  uint64

	wake chan struct{} // capacity 1
	done chan struct{} // closed when the loop has exited

	// Owned by the loop goroutine.
	active     []*sequence // sorted by (adapter, num)
	kvReserved int64

	stats atomic.Pointer[Stats] // load snapshot for other goroutines
	// Totals since start, for benchmarks.
	steps, stepSeqs, stepTokens, forwardNs atomic.Int64
}

// Stats is a snapshot of the engine's load and work.
type Stats struct {
	Queued, Active int
	KVReserved     int64 // bytes
	// Since start: forward steps, sequences and tokens over all steps, and
	// time spent inside Model.Forward.
	Steps, StepSeqs, StepTokens int64
	Forward                     time.Duration
}

// Stats reports the current load (as of the last scheduler decision) and
// the work done so far.
func (e *Engine) Stats() Stats {
	var s Stats
	if p := e.stats.Load(); p != nil {
		s = *p
	}
	s.Steps, s.StepSeqs, s.StepTokens = e.steps.Load(), e.stepSeqs.Load(), e.stepTokens.Load()
	s.Forward = time.Duration(e.forwardNs.Load())
	return s
}

// New starts an engine over a model. tok decodes generated ids (stop
// strings work on text).
func New(m Model, spec Spec, tok *tokenizer.Tokenizer, cfg Config) (*Engine, error) {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 64
	}
	if cfg.MaxQueue <= 0 {
		cfg.MaxQueue = 256
	}
	if cfg.MaxStepTokens <= 0 {
		cfg.MaxStepTokens = max(512, 2*cfg.MaxBatch)
	}
	if cfg.MaxStepTokens <= cfg.MaxBatch {
		return nil, fmt.Errorf("engine: max step tokens %d must exceed max batch %d (every running sequence decodes one token per step)", cfg.MaxStepTokens, cfg.MaxBatch)
	}
	if cfg.ContextLen <= 0 {
		cfg.ContextLen = spec.MaxPositions
		if cfg.ContextLen <= 0 {
			cfg.ContextLen = 2048
		}
	}
	if spec.MaxPositions > 0 && cfg.ContextLen > spec.MaxPositions {
		return nil, fmt.Errorf("engine: context length %d exceeds the model's %d positions", cfg.ContextLen, spec.MaxPositions)
	}
	if err := checkKVType(spec.kvType(), spec.KVDim, spec.HeadDim); err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	full := int64(cfg.ContextLen) * spec.KVBytesPerToken()
	if cfg.KVBudget <= 0 {
		cfg.KVBudget = max(min(int64(cfg.MaxBatch)*full, 4<<30), full)
	}
	if cfg.KVBudget < full {
		return nil, fmt.Errorf("engine: KV budget %d bytes is less than one full context (%d positions × %d bytes)", cfg.KVBudget, cfg.ContextLen, spec.KVBytesPerToken())
	}
	if tok == nil {
		return nil, errors.New("engine: a tokenizer is required")
	}
	e := &Engine{
		model: m, spec: spec, tok: tok, cfg: cfg, met: cfg.Metrics, log: cfg.Logger,
		queue: newFairQueue(), wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if r, ok := m.(reserver); ok {
		r.Reserve(cfg.MaxStepTokens, cfg.MaxBatch)
	}
	e.met.setKVBudget(cfg.KVBudget)
	go e.loop()
	return e, nil
}

// reserver is a Model that can size its step buffers for the engine's
// limits up front (llama.Model.Reserve).
type reserver interface {
	Reserve(tokens, seqs int)
}

// ContextLen is the longest prompt + max_tokens the engine accepts.
func (e *Engine) ContextLen() int { return e.cfg.ContextLen }

// Submit queues a request and returns its output stream. It fails at once
// with ErrInvalid, *ContextLengthError, ErrQueueFull or ErrShuttingDown.
// Cancelling ctx (a client that went away) ends the request and frees its
// slot at the next step. req.Release is called in every case.
func (e *Engine) Submit(ctx context.Context, req *Request) (*Stream, error) {
	fail := func(err error) (*Stream, error) {
		if req.Release != nil {
			req.Release()
		}
		return nil, err
	}
	if err := req.validate(e.spec, e.cfg.ContextLen); err != nil {
		return fail(err)
	}
	limit := len(req.Prompt) + req.MaxTokens
	ctx, cancel := context.WithCancel(ctx)
	s := &sequence{
		req: req, ctx: ctx, out: newStream(cancel),
		limit:     limit,
		reserve:   int64(limit) * e.spec.KVBytesPerToken(),
		submitted: time.Now(),
	}
	// A cancelled request must leave the queue or batch promptly, even while
	// the scheduler is idle-waiting. Registered before the sequence is
	// visible to the scheduler, which reads stopC when it ends it.
	s.stopC = context.AfterFunc(ctx, e.signal)
	e.mu.Lock()
	switch {
	case e.draining:
		e.mu.Unlock()
		s.stopC()
		cancel()
		return fail(ErrShuttingDown)
	case e.queue.len() >= e.cfg.MaxQueue:
		e.mu.Unlock()
		s.stopC()
		cancel()
		return fail(ErrQueueFull)
	}
	e.nextNum++
	s.num = e.nextNum
	e.queue.push(s)
	e.met.setDepth(e.queue.len())
	e.mu.Unlock()
	e.signal()
	return s.out, nil
}

func (e *Engine) signal() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Shutdown stops accepting requests and lets running and queued ones finish;
// when ctx ends first, the rest fail with ErrShuttingDown. It returns once
// the scheduler has stopped.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	e.draining = true
	e.mu.Unlock()
	e.signal()
	select {
	case <-e.done:
		return nil
	case <-ctx.Done():
	}
	e.mu.Lock()
	e.abort = true
	e.mu.Unlock()
	e.signal()
	<-e.done
	return ctx.Err()
}

// Draining reports whether Shutdown has begun.
func (e *Engine) Draining() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.draining
}

// loop is the scheduler: the only goroutine that calls Model.Forward.
func (e *Engine) loop() {
	defer close(e.done)
	for {
		e.mu.Lock()
		abort, draining := e.abort, e.draining
		e.mu.Unlock()
		if abort {
			e.abortAll()
			return
		}
		e.reap()
		e.admit()
		if len(e.active) == 0 {
			e.mu.Lock()
			empty := e.queue.len() == 0
			e.mu.Unlock()
			if draining && empty {
				return
			}
			<-e.wake
			continue
		}
		e.step()
	}
}

// reap ends sequences whose context is done: queued ones leave the queue,
// running ones free their slot and cache.
func (e *Engine) reap() {
	e.mu.Lock()
	gone := e.queue.removeIf(func(s *sequence) bool { return s.ctx.Err() != nil })
	e.mu.Unlock()
	for _, s := range gone {
		e.end(s, Result{PromptTokens: len(s.req.Prompt)}, s.ctx.Err(), "cancelled")
	}
	kept := e.active[:0]
	for _, s := range e.active {
		if s.ctx.Err() != nil {
			e.retire(s)
			e.end(s, Result{Text: s.text.final(), Tokens: s.gen, PromptTokens: len(s.req.Prompt)}, s.ctx.Err(), "cancelled")
			continue
		}
		kept = append(kept, s)
	}
	clear(e.active[len(kept):])
	e.active = kept
	e.publish()
}

// admit moves queued sequences into the batch, in the queue's fair order,
// while there are slots and KV budget.
func (e *Engine) admit() {
	e.mu.Lock()
	var in []*sequence
	for len(e.active)+len(in) < e.cfg.MaxBatch {
		s := e.queue.peek()
		if s == nil || e.kvReserved+s.reserve > e.cfg.KVBudget {
			break
		}
		e.queue.pop()
		e.kvReserved += s.reserve
		in = append(in, s)
	}
	e.mu.Unlock()
	for _, s := range in {
		s.cache = e.spec.newCache(s.limit)
		s.sampler = sample.New(s.req.Sample)
		s.history = append(make([]int, 0, s.limit), s.req.Prompt...)
		s.text = newTextOut(e.tok, s.req.Stop)
		e.active = append(e.active, s)
	}
	if len(in) > 0 {
		// Same-adapter sequences adjacent: each adapter is one LoRA segment.
		sort.Slice(e.active, func(i, j int) bool {
			a, b := e.active[i], e.active[j]
			if a.req.Adapter != b.req.Adapter {
				return a.req.Adapter < b.req.Adapter
			}
			return a.num < b.num
		})
	}
	e.publish()
}

// step runs one forward over the batch and samples every sequence that
// has consumed its whole prompt.
func (e *Engine) step() {
	// Decode tokens first (one per running sequence), then prefill chunks
	// from the remaining budget, oldest request first.
	budget := e.cfg.MaxStepTokens
	for _, s := range e.active {
		if !s.prefilling() {
			budget--
		}
	}
	chunk := map[*sequence]int{}
	var pre []*sequence
	for _, s := range e.active {
		if s.prefilling() {
			pre = append(pre, s)
		}
	}
	sort.Slice(pre, func(i, j int) bool { return pre[i].num < pre[j].num })
	for _, s := range pre {
		n := min(len(s.req.Prompt)-s.fed, budget)
		if n <= 0 {
			break
		}
		chunk[s] = n
		budget -= n
	}

	var (
		seqs     []*sequence
		caches   []*kvcache.Seq
		tokens   [][]int
		adapters []*lora.Adapter
		nTok     int
	)
	for _, s := range e.active {
		var toks []int
		if s.prefilling() {
			n := chunk[s]
			if n == 0 {
				continue // waits for budget in a later step
			}
			toks = s.req.Prompt[s.fed : s.fed+n]
		} else {
			toks = s.history[len(s.history)-1:]
		}
		s.cache.Reserve(s.cache.Len + len(toks)) // within its fixed room
		seqs = append(seqs, s)
		caches = append(caches, s.cache)
		tokens = append(tokens, toks)
		adapters = append(adapters, s.req.LoRA)
		nTok += len(toks)
	}
	// Adapters is always set (nil entries for the base model) so that an
	// adapter attached to the model can never leak into served requests.
	st := &llama.Step{Caches: caches, Tokens: tokens, Adapters: adapters}
	t0 := time.Now()
	logits, err := e.forward(st)
	now := time.Now()
	e.met.step(len(seqs), nTok, now.Sub(t0))
	e.steps.Add(1)
	e.stepSeqs.Add(int64(len(seqs)))
	e.stepTokens.Add(int64(nTok))
	e.forwardNs.Add(int64(now.Sub(t0)))
	if err != nil {
		// A failed forward leaves the caches in an unknown state: fail the
		// sequences of this step, keep serving the others.
		e.log.Error("forward failed", "err", err, "sequences", len(seqs), "tokens", nTok)
		failed := map[*sequence]bool{}
		for _, s := range seqs {
			failed[s] = true
		}
		e.removeWhere(func(s *sequence) bool { return failed[s] }, Result{}, fmt.Errorf("engine: forward: %w", err), "error")
		return
	}
	V := e.spec.Vocab
	finished := map[*sequence]string{}
	for i, s := range seqs {
		if s.prefilling() {
			s.fed += len(tokens[i])
			if s.prefilling() {
				continue // more prompt to feed; these logits are not needed
			}
		}
		id := s.sampler.Sample(logits[i*V:(i+1)*V], s.history)
		if len(s.gen) == 0 {
			e.met.firstToken(now.Sub(s.submitted))
			s.firstToken = now
		} else {
			e.met.nextToken(now.Sub(s.lastToken))
		}
		s.lastToken = now
		if done, reason := s.accept(id); done {
			finished[s] = reason
		}
	}
	if len(finished) > 0 {
		kept := e.active[:0]
		for _, s := range e.active {
			if reason, ok := finished[s]; ok {
				e.retire(s)
				e.end(s, s.result(reason), nil, reason)
				continue
			}
			kept = append(kept, s)
		}
		clear(e.active[len(kept):])
		e.active = kept
		e.publish()
	}
}

// forward calls the model, turning a panic into an error: one bad batch
// must not take the server down.
func (e *Engine) forward(st *llama.Step) (logits []float32, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic in forward: %v", r)
		}
	}()
	logits, err = e.model.Forward(st)
	if err == nil && len(logits) < len(st.Tokens)*e.spec.Vocab {
		err = fmt.Errorf("model returned %d logits for %d sequences of vocabulary %d", len(logits), len(st.Tokens), e.spec.Vocab)
	}
	return logits, err
}

// removeWhere ends every running sequence for which drop is true.
func (e *Engine) removeWhere(drop func(*sequence) bool, res Result, err error, reason string) {
	kept := e.active[:0]
	for _, s := range e.active {
		if drop(s) {
			e.retire(s)
			r := res
			r.PromptTokens = len(s.req.Prompt)
			e.end(s, r, err, reason)
			continue
		}
		kept = append(kept, s)
	}
	clear(e.active[len(kept):])
	e.active = kept
	e.publish()
}

// retire frees a running sequence's reservation and cache. The cache's
// memory goes back to the OS now (kvcache.NewFixed), not at some later
// collection: nothing refers to it after the step that ended it.
func (e *Engine) retire(s *sequence) {
	e.kvReserved -= s.reserve
	if s.cache != nil {
		s.cache.Free()
		s.cache = nil
	}
}

// end delivers the outcome of a sequence and releases what it held.
func (e *Engine) end(s *sequence, res Result, err error, reason string) {
	// Metrics first: a client holding its response must find its request
	// counted in /metrics (recorded after, they raced a scrape that
	// followed the response).
	e.met.finish(reason)
	e.met.tokens(s.req.Adapter, res.PromptTokens, len(res.Tokens))
	s.out.close(res, err)
	s.stopC()
	s.out.cancel()
	if s.req.Release != nil {
		s.req.Release()
	}
	e.log.Debug("request finished", "request_id", s.req.ID, "adapter", s.req.Adapter, "reason", reason,
		"prompt_tokens", res.PromptTokens, "completion_tokens", len(res.Tokens), "took", time.Since(s.submitted))
}

// abortAll ends everything at the shutdown deadline.
func (e *Engine) abortAll() {
	e.removeWhere(func(*sequence) bool { return true }, Result{}, ErrShuttingDown, "shutdown")
	e.mu.Lock()
	gone := e.queue.removeIf(func(*sequence) bool { return true })
	e.mu.Unlock()
	for _, s := range gone {
		e.end(s, Result{PromptTokens: len(s.req.Prompt)}, ErrShuttingDown, "shutdown")
	}
	e.publish()
}

// publish updates the queue and batch gauges.
func (e *Engine) publish() {
	e.mu.Lock()
	n := e.queue.len()
	e.mu.Unlock()
	e.met.setDepth(n)
	e.met.setBatch(len(e.active), e.kvReserved)
	e.stats.Store(&Stats{Queued: n, Active: len(e.active), KVReserved: e.kvReserved})
}
