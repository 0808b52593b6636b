package engine

import (
	"errors"
	"fmt"

	"github.com/lorakit/lorakit/lora"
	"github.com/lorakit/lorakit/sample"
)

// Errors of Submit and of a running request; callers map them to statuses
// with errors.Is / errors.As.
var (
	ErrQueueFull    = errors.New("engine: request queue is full")
	ErrShuttingDown = errors.New("engine: shutting down")
	ErrInvalid      = errors.New("invalid request")
)

// ContextLengthError is a request that cannot fit the context window.
type ContextLengthError struct {
	Prompt, MaxTokens, Limit int
}

func (e *ContextLengthError) Error() string {
	if e.Prompt >= e.Limit {
		return fmt.Sprintf("the prompt has %d tokens; this server's context length is %d tokens", e.Prompt, e.Limit)
	}
	return fmt.Sprintf("the prompt has %d tokens and %d more were requested (max_tokens): %d in all, over this server's context length of %d tokens",
		e.Prompt, e.MaxTokens, e.Prompt+e.MaxTokens, e.Limit)
}

// Request is one generation to run.
type Request struct {
	ID string // for logs
	// Adapter names the adapter for fairness and metrics ("" = the base
	// model); LoRA is the adapter itself (nil = the base model).
	Adapter string
	LoRA    *lora.Adapter
	// Release, when set, is called exactly once when the engine is done
	// with the request (also when Submit fails): it unpins the adapter.
	Release func()

	Prompt    []int
	MaxTokens int
	Sample    sample.Params
	Stop      []string // stop strings: the text is cut before the first one
	EOS       []int    // token ids that end generation (not part of the text)
}

// validate checks a request against the model and the context window.
func (r *Request) validate(spec Spec, ctxLen int) error {
	if len(r.Prompt) == 0 {
		return fmt.Errorf("%w: empty prompt", ErrInvalid)
	}
	for i, id := range r.Prompt {
		if id < 0 || id >= spec.Vocab {
			return fmt.Errorf("%w: prompt token %d at position %d is outside the vocabulary (%d ids)", ErrInvalid, id, i, spec.Vocab)
		}
	}
	if r.MaxTokens < 1 {
		return fmt.Errorf("%w: max_tokens must be at least 1, got %d", ErrInvalid, r.MaxTokens)
	}
	if len(r.Prompt) >= ctxLen || r.MaxTokens > ctxLen-len(r.Prompt) {
		return &ContextLengthError{Prompt: len(r.Prompt), MaxTokens: r.MaxTokens, Limit: ctxLen}
	}
	if err := r.Sample.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return nil
}
