// Package openai holds the wire types of the OpenAI-compatible API that
// lorakit serves (completions, chat completions, models, errors) and their
// strict decoding and validation. Standard library only: it knows nothing of
// models or engines.
package openai

// Sampling are the generation fields shared by completions and chat
// completions. Pointers tell "absent" (server default) from zero.
type Sampling struct {
	MaxTokens         *int     `json:"max_tokens"`
	Temperature       *float64 `json:"temperature"`
	TopP              *float64 `json:"top_p"`
	TopK              *int     `json:"top_k"`              // vLLM extension; -1 or 0 = off
	MinP              *float64 `json:"min_p"`              // vLLM extension
	RepetitionPenalty *float64 `json:"repetition_penalty"` // vLLM extension
	Seed              *int64   `json:"seed"`
	Stop              Stop     `json:"stop"`
	N                 *int     `json:"n"`
	Stream            bool     `json:"stream"`
	StreamOptions     *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	User string `json:"user"` // accepted, ignored

	// Accepted only at their neutral values (lorakit does not implement
	// them; silently ignoring a non-neutral value would change results).
	PresencePenalty  *float64           `json:"presence_penalty"`
	FrequencyPenalty *float64           `json:"frequency_penalty"`
	LogitBias        map[string]float64 `json:"logit_bias"`
}

// CompletionRequest is POST /v1/completions.
type CompletionRequest struct {
	Model  string `json:"model"`
	Prompt Prompt `json:"prompt"`
	Sampling
	Echo     bool    `json:"echo"`
	Logprobs *int    `json:"logprobs"`
	BestOf   *int    `json:"best_of"`
	Suffix   *string `json:"suffix"`
}

// ChatRequest is POST /v1/chat/completions.
type ChatRequest struct {
	Model    string        `json:"model"`
	Messages []ChatMessage `json:"messages"`
	Sampling
	MaxCompletionTokens *int  `json:"max_completion_tokens"`
	Logprobs            *bool `json:"logprobs"`
	TopLogprobs         *int  `json:"top_logprobs"`
}

// ChatMessage is one message of a conversation. Content is a string or a
// list of text parts.
type ChatMessage struct {
	Role    string  `json:"role"`
	Content Content `json:"content"`
	Name    string  `json:"name,omitempty"`
}

// Usage counts tokens.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// Completion is the response (or, with Object "text_completion" too, one
// streamed chunk) of /v1/completions.
type Completion struct {
	ID                string             `json:"id"`
	Object            string             `json:"object"`
	Created           int64              `json:"created"`
	Model             string             `json:"model"`
	SystemFingerprint string             `json:"system_fingerprint,omitempty"`
	Choices           []CompletionChoice `json:"choices"`
	Usage             *Usage             `json:"usage,omitempty"`
}

// CompletionChoice is one completion; FinishReason is null until the end.
type CompletionChoice struct {
	Index        int     `json:"index"`
	Text         string  `json:"text"`
	Logprobs     any     `json:"logprobs"`
	FinishReason *string `json:"finish_reason"`
}

// ChatCompletion is the response of /v1/chat/completions.
type ChatCompletion struct {
	ID                string       `json:"id"`
	Object            string       `json:"object"` // "chat.completion"
	Created           int64        `json:"created"`
	Model             string       `json:"model"`
	SystemFingerprint string       `json:"system_fingerprint,omitempty"`
	Choices           []ChatChoice `json:"choices"`
	Usage             *Usage       `json:"usage,omitempty"`
}

// ChatChoice is one answer.
type ChatChoice struct {
	Index        int          `json:"index"`
	Message      ReplyMessage `json:"message"`
	Logprobs     any          `json:"logprobs"`
	FinishReason string       `json:"finish_reason"`
}

// ReplyMessage is the assistant's message.
type ReplyMessage struct {
	Role    string  `json:"role"`
	Content string  `json:"content"`
	Refusal *string `json:"refusal"`
}

// ChatChunk is one streamed piece of a chat completion.
type ChatChunk struct {
	ID                string            `json:"id"`
	Object            string            `json:"object"` // "chat.completion.chunk"
	Created           int64             `json:"created"`
	Model             string            `json:"model"`
	SystemFingerprint string            `json:"system_fingerprint,omitempty"`
	Choices           []ChatChunkChoice `json:"choices"`
	Usage             *Usage            `json:"usage,omitempty"`
}

// ChatChunkChoice carries a delta.
type ChatChunkChoice struct {
	Index        int     `json:"index"`
	Delta        Delta   `json:"delta"`
	Logprobs     any     `json:"logprobs"`
	FinishReason *string `json:"finish_reason"`
}

// Delta is the new part of the assistant's message.
type Delta struct {
	Role    string `json:"role,omitempty"`
	Content string `json:"content,omitempty"`
}

// Model is one entry of GET /v1/models.
type Model struct {
	ID      string `json:"id"`
	Object  string `json:"object"` // "model"
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
	Root    string `json:"root,omitempty"`   // the base model (vLLM)
	Parent  string `json:"parent,omitempty"` // an adapter's base model (vLLM)
}

// ModelList is GET /v1/models.
type ModelList struct {
	Object string  `json:"object"` // "list"
	Data   []Model `json:"data"`
}

// AdapterRequest is POST /v1/adapters (admin): load or reload an adapter.
type AdapterRequest struct {
	Name string `json:"name"`
	Path string `json:"path"`
}

// AdapterStatus answers the admin API.
type AdapterStatus struct {
	ID      string `json:"id"`
	Object  string `json:"object"` // "adapter"
	Path    string `json:"path,omitempty"`
	Loaded  bool   `json:"loaded"`
	Bytes   int64  `json:"bytes,omitempty"`
	Deleted bool   `json:"deleted,omitempty"`
}
