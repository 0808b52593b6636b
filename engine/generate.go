// Package engine runs models for users: single-sequence generation
// (Generate), the adapter registry (Registry) and the continuous-batching
// scheduler (Engine) that serves many adapters over one base model, one
// forward pass per step for every running sequence.
package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/lorakit/lorakit/kvcache"
	"github.com/lorakit/lorakit/model/llama"
	"github.com/lorakit/lorakit/sample"
	"github.com/lorakit/lorakit/tensor"
	"github.com/lorakit/lorakit/tokenizer"
)

// GenerateOptions control one generation.
type GenerateOptions struct {
	MaxTokens int
	Sample    sample.Params
	// Stop strings end generation; the text is cut before the first one.
	Stop []string
	// EOS token ids end generation (not included in the text).
	EOS []int
	// KVType is the KV cache's element type: "" for KVType(m), else F32,
	// BF16, F16 or kvcache.Q8_0 (see ParseKVCacheDType).
	KVType tensor.DType
}

// Result is what a generation produced.
type Result struct {
	Text         string
	Tokens       []int  // generated ids, EOS excluded
	PromptTokens int    // prompt length in tokens
	FinishReason string // "stop" (EOS or stop string) or "length"
	// Timing, filled in by the Engine: from Submit to the first generated
	// token, and from the first to the last one (a token that ended the
	// sequence, such as EOS, counts).
	FirstToken, Decoding time.Duration
}

// Generate decodes after prompt until an EOS token, a stop string or MaxTokens,
// calling onText with each new piece of text as soon as it is final (never half
// a UTF-8 character, never text that could still become a stop string).
func Generate(ctx context.Context, m *llama.Model, tok *tokenizer.Tokenizer, prompt []int, opt GenerateOptions, onText func(string) error) (Result, error) {
	if len(prompt) == 0 {
		return Result{}, fmt.Errorf("generate: empty prompt")
	}
	if err := opt.Sample.Validate(); err != nil {
		return Result{}, fmt.Errorf("generate: %w", err)
	}
	// The serving cache type (KVType, unless the options say), growing as
	// generation goes on.
	kvt := opt.KVType
	if kvt == "" {
		kvt = KVType(m)
	}
	if err := checkKVType(kvt, m.Config.KVDim(), m.Config.HeadDim); err != nil {
		return Result{}, fmt.Errorf("generate: %w", err)
	}
	res := Result{PromptTokens: len(prompt), FinishReason: "length"}
	cache := kvcache.NewOf(kvt, len(m.Layers), m.Config.KVDim())
	sampler := sample.New(opt.Sample)
	out := newTextOut(tok, opt.Stop)
	emit := func(final bool) error {
		if s := out.ready(final); s != "" && onText != nil {
			return onText(s)
		}
		return nil
	}
	history := append([]int(nil), prompt...)
	next := prompt
	for len(res.Tokens) < opt.MaxTokens {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		logits, err := m.Forward(&llama.Step{Caches: []*kvcache.Seq{cache}, Tokens: [][]int{next}})
		if err != nil {
			return res, err
		}
		id := sampler.Sample(logits, history)
		if contains(opt.EOS, id) {
			res.FinishReason = "stop"
			break
		}
		res.Tokens = append(res.Tokens, id)
		history = append(history, id)
		next = []int{id}
		if out.add(id) {
			break
		}
		if err := emit(false); err != nil {
			return res, err
		}
	}
	out.flush()
	if err := emit(true); err != nil {
		return res, err
	}
	res.Text = out.final()
	if out.stopped() {
		res.FinishReason = "stop"
	}
	return res, nil
}
