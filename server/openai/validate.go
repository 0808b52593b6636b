package openai

import "unicode/utf8"

// Limits on stop strings: OpenAI allows 4; vLLM more. A cap keeps the
// per-token stop search cheap.
const (
	MaxStops   = 16
	MaxStopLen = 256
)

// Validate checks the ranges of the sampling fields (the model-dependent
// checks, such as the context length, come later).
func (s *Sampling) Validate() *Error {
	if s.N != nil && *s.N != 1 {
		return Invalid("n", "n = %d: this server returns exactly one choice (n = 1)", *s.N)
	}
	if s.MaxTokens != nil && *s.MaxTokens < 1 {
		return Invalid("max_tokens", "max_tokens must be at least 1, got %d", *s.MaxTokens)
	}
	if v := s.Temperature; v != nil && !(*v >= 0 && *v <= 2) {
		return Invalid("temperature", "temperature must be in [0, 2], got %v", *v)
	}
	if v := s.TopP; v != nil && !(*v > 0 && *v <= 1) {
		return Invalid("top_p", "top_p must be in (0, 1], got %v", *v)
	}
	if v := s.TopK; v != nil && *v < -1 {
		return Invalid("top_k", "top_k must be -1 (off), 0 (off) or positive, got %d", *v)
	}
	if v := s.MinP; v != nil && !(*v >= 0 && *v <= 1) {
		return Invalid("min_p", "min_p must be in [0, 1], got %v", *v)
	}
	if v := s.RepetitionPenalty; v != nil && !(*v > 0 && *v <= 10) {
		return Invalid("repetition_penalty", "repetition_penalty must be in (0, 10], got %v", *v)
	}
	if v := s.PresencePenalty; v != nil && *v != 0 {
		return Invalid("presence_penalty", "presence_penalty is not supported (use repetition_penalty)")
	}
	if v := s.FrequencyPenalty; v != nil && *v != 0 {
		return Invalid("frequency_penalty", "frequency_penalty is not supported (use repetition_penalty)")
	}
	if len(s.LogitBias) > 0 {
		return Invalid("logit_bias", "logit_bias is not supported")
	}
	if len(s.Stop) > MaxStops {
		return Invalid("stop", "at most %d stop strings, got %d", MaxStops, len(s.Stop))
	}
	for _, st := range s.Stop {
		if len(st) > MaxStopLen || !utf8.ValidString(st) {
			return Invalid("stop", "stop strings must be valid UTF-8 of at most %d bytes", MaxStopLen)
		}
	}
	if s.StreamOptions != nil && !s.Stream {
		return Invalid("stream_options", "stream_options is only allowed with stream: true")
	}
	return nil
}

// Validate checks a completion request's own fields.
func (r *CompletionRequest) Validate() *Error {
	if r.Model == "" {
		return Invalid("model", "model is required")
	}
	if !r.Prompt.Set {
		return Invalid("prompt", "prompt is required")
	}
	if r.Echo {
		return Invalid("echo", "echo is not supported")
	}
	if r.Logprobs != nil && *r.Logprobs != 0 {
		return Invalid("logprobs", "logprobs are not supported")
	}
	if r.BestOf != nil && *r.BestOf != 1 {
		return Invalid("best_of", "best_of must be 1")
	}
	if r.Suffix != nil && *r.Suffix != "" {
		return Invalid("suffix", "suffix is not supported")
	}
	return r.Sampling.Validate()
}

// chatRoles are the roles chat templates of real models know.
var chatRoles = map[string]bool{"system": true, "developer": true, "user": true, "assistant": true, "tool": true}

// Validate checks a chat request's own fields and folds
// max_completion_tokens (the newer name) into max_tokens.
func (r *ChatRequest) Validate() *Error {
	if r.Model == "" {
		return Invalid("model", "model is required")
	}
	if len(r.Messages) == 0 {
		return Invalid("messages", "messages must be a non-empty array")
	}
	for i, m := range r.Messages {
		if !chatRoles[m.Role] {
			return Invalid("messages", "messages[%d].role %q is not one of system, developer, user, assistant, tool", i, m.Role)
		}
	}
	if r.Logprobs != nil && *r.Logprobs {
		return Invalid("logprobs", "logprobs are not supported")
	}
	if r.TopLogprobs != nil && *r.TopLogprobs != 0 {
		return Invalid("top_logprobs", "top_logprobs are not supported")
	}
	if r.MaxCompletionTokens != nil {
		if r.MaxTokens != nil && *r.MaxTokens != *r.MaxCompletionTokens {
			return Invalid("max_completion_tokens", "max_tokens and max_completion_tokens disagree")
		}
		r.MaxTokens = r.MaxCompletionTokens
	}
	return r.Sampling.Validate()
}
