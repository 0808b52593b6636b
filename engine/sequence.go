package engine

import (
	"context"
	"time"

	"github.com/lorakit/lorakit/kvcache"
	"github.com/lorakit/lorakit/sample"
)

// sequence is one request inside the engine: queued, then in the running
// batch until it finishes. After Submit, only the scheduler goroutine
// touches its fields (ctx and out are safe to use from anywhere).
type sequence struct {
	req   *Request
	ctx   context.Context
	out   *Stream
	stopC func() bool // stops the context.AfterFunc that wakes the scheduler
	num   uint64      // submission order, for FIFO prefill and stable sorting

	reserve int64 // KV cache bytes reserved at admission (its worst case)
	limit   int   // positions the cache may ever hold: prompt + max_tokens

	cache   *kvcache.Seq
	fed     int // prompt tokens already in the cache
	sampler *sample.Sampler
	history []int // prompt then generated ids, for the repetition penalty
	gen     []int // generated ids, EOS excluded
	text    *textOut

	submitted, firstToken, lastToken time.Time
}

// prefilling reports whether prompt tokens remain to be fed.
func (s *sequence) prefilling() bool { return s.fed < len(s.req.Prompt) }

// accept takes one sampled id; it reports whether the sequence is finished
// and why. It mirrors Generate's loop body exactly, so batched output
// equals single-sequence output.
func (s *sequence) accept(id int) (done bool, reason string) {
	if contains(s.req.EOS, id) {
		return true, "stop"
	}
	s.gen = append(s.gen, id)
	s.history = append(s.history, id)
	if s.text.add(id) {
		return true, "stop"
	}
	s.out.push(s.text.ready(false))
	if len(s.gen) >= s.req.MaxTokens {
		return true, "length"
	}
	return false, ""
}

// result flushes the text and builds the final result.
func (s *sequence) result(reason string) Result {
	s.text.flush()
	s.out.push(s.text.ready(true))
	if s.text.stopped() {
		reason = "stop"
	}
	res := Result{Text: s.text.final(), Tokens: s.gen, PromptTokens: len(s.req.Prompt), FinishReason: reason}
	if !s.firstToken.IsZero() {
		res.FirstToken = s.firstToken.Sub(s.submitted)
		res.Decoding = s.lastToken.Sub(s.firstToken)
	}
	return res
}
