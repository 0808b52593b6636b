package server

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/lorakit/lorakit/engine"
	"github.com/lorakit/lorakit/sample"
	"github.com/lorakit/lorakit/server/openai"
)

// generation is what the two endpoints share once their input is tokens.
type generation struct {
	model       string
	prompt      []int
	sampling    *openai.Sampling
	eos         []int
	promptParam string // "prompt" or "messages", for errors
}

// started is a request in the engine.
type started struct {
	id      string
	created int64
	stream  *engine.Stream
}

func (s *Server) handleCompletions(w http.ResponseWriter, r *http.Request) {
	var req openai.CompletionRequest
	if e := s.decode(w, r, &req); e != nil {
		s.writeError(w, r, e)
		return
	}
	if e := req.Validate(); e != nil {
		s.writeError(w, r, e)
		return
	}
	prompt := req.Prompt.Tokens
	if req.Prompt.IsText {
		prompt = s.encodeText(req.Prompt.Text)
	}
	st, e := s.start(r, generation{model: req.Model, prompt: prompt, sampling: &req.Sampling, eos: s.cfg.EOS, promptParam: "prompt"})
	if e != nil {
		s.writeError(w, r, e)
		return
	}
	st.id = "cmpl-" + info(r).id
	chunk := func(text string, finish *string) openai.Completion {
		return openai.Completion{ID: st.id, Object: "text_completion", Created: st.created, Model: req.Model,
			Choices: []openai.CompletionChoice{{Text: text, FinishReason: finish}}}
	}
	if !req.Stream {
		res, err := st.stream.Wait(r.Context())
		if err != nil {
			s.failed(w, r, err, req.Model)
			return
		}
		out := chunk(res.Text, &res.FinishReason)
		out.Usage = usage(res)
		writeJSON(w, http.StatusOK, out)
		return
	}
	sse := newSSE(w)
	res, err := s.pump(r.Context(), st, func(text string) error { return sse.send(chunk(text, nil)) })
	if err != nil {
		s.streamFailed(r, sse, err, req.Model)
		return
	}
	sse.send(chunk("", &res.FinishReason))
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		u := chunk("", nil)
		u.Choices, u.Usage = []openai.CompletionChoice{}, usage(res)
		sse.send(u)
	}
	sse.done()
}

func (s *Server) handleChat(w http.ResponseWriter, r *http.Request) {
	var req openai.ChatRequest
	if e := s.decode(w, r, &req); e != nil {
		s.writeError(w, r, e)
		return
	}
	if e := req.Validate(); e != nil {
		s.writeError(w, r, e)
		return
	}
	prompt, e := s.encodeChat(req.Messages)
	if e != nil {
		s.writeError(w, r, e)
		return
	}
	st, e := s.start(r, generation{model: req.Model, prompt: prompt, sampling: &req.Sampling, eos: s.chatEOS, promptParam: "messages"})
	if e != nil {
		s.writeError(w, r, e)
		return
	}
	st.id = "chatcmpl-" + info(r).id
	if !req.Stream {
		res, err := st.stream.Wait(r.Context())
		if err != nil {
			s.failed(w, r, err, req.Model)
			return
		}
		writeJSON(w, http.StatusOK, openai.ChatCompletion{ID: st.id, Object: "chat.completion", Created: st.created, Model: req.Model,
			Choices: []openai.ChatChoice{{Message: openai.ReplyMessage{Role: "assistant", Content: res.Text}, FinishReason: res.FinishReason}},
			Usage:   usage(res)})
		return
	}
	chunk := func(d openai.Delta, finish *string) openai.ChatChunk {
		return openai.ChatChunk{ID: st.id, Object: "chat.completion.chunk", Created: st.created, Model: req.Model,
			Choices: []openai.ChatChunkChoice{{Delta: d, FinishReason: finish}}}
	}
	sse := newSSE(w)
	sse.send(chunk(openai.Delta{Role: "assistant"}, nil))
	res, err := s.pump(r.Context(), st, func(text string) error { return sse.send(chunk(openai.Delta{Content: text}, nil)) })
	if err != nil {
		s.streamFailed(r, sse, err, req.Model)
		return
	}
	sse.send(chunk(openai.Delta{}, &res.FinishReason))
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		u := chunk(openai.Delta{}, nil)
		u.Choices, u.Usage = []openai.ChatChunkChoice{}, usage(res)
		sse.send(u)
	}
	sse.done()
}

// decode reads the body strictly, bounded by MaxBodyBytes.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) *openai.Error {
	return openai.Decode(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes), v)
}

// start resolves the model, fills in sampling defaults and submits.
func (s *Server) start(r *http.Request, g generation) (*started, *openai.Error) {
	in := info(r)
	req := &engine.Request{ID: in.id, Prompt: g.prompt, EOS: g.eos, Stop: g.sampling.Stop, Sample: s.params(g.sampling)}
	if g.sampling.MaxTokens != nil {
		req.MaxTokens = *g.sampling.MaxTokens
	} else {
		// OpenAI's chat default, and vLLM's for both: the rest of the window.
		req.MaxTokens = max(1, s.cfg.Engine.ContextLen()-len(g.prompt))
	}
	if g.model != s.cfg.BaseName {
		if s.cfg.Registry == nil {
			return nil, apiError(fmt.Errorf("%w %q", engine.ErrUnknownAdapter, g.model), g.model, g.promptParam)
		}
		a, release, err := s.cfg.Registry.Acquire(r.Context(), g.model)
		if err != nil {
			return nil, apiError(err, g.model, g.promptParam)
		}
		req.Adapter, req.LoRA, req.Release = g.model, a, release
	}
	in.model = g.model
	stream, err := s.cfg.Engine.Submit(r.Context(), req)
	if err != nil {
		return nil, apiError(err, g.model, g.promptParam)
	}
	return &started{created: time.Now().Unix(), stream: stream}, nil
}

// params merges a request's sampling fields over the server's defaults. A
// request without a seed gets a random one: sampling varies between
// requests, as with OpenAI.
func (s *Server) params(sp *openai.Sampling) sample.Params {
	p := s.cfg.Defaults
	if sp.Temperature != nil {
		p.Temperature = float32(*sp.Temperature)
	}
	if sp.TopP != nil {
		p.TopP = float32(*sp.TopP)
	}
	if sp.TopK != nil {
		p.TopK = max(0, *sp.TopK)
	}
	if sp.MinP != nil {
		p.MinP = float32(*sp.MinP)
	}
	if sp.RepetitionPenalty != nil {
		p.RepetitionPenalty = float32(*sp.RepetitionPenalty)
	}
	if sp.Seed != nil {
		p.Seed = uint64(*sp.Seed)
	} else {
		p.Seed = rand.Uint64()
	}
	return p
}

// pump forwards the stream's text to send until the request ends. A send
// error means the client is gone: the request is cancelled at once.
func (s *Server) pump(ctx context.Context, st *started, send func(string) error) (engine.Result, error) {
	for {
		text, done, err := st.stream.Next(ctx)
		if err != nil {
			return st.stream.Result(), err
		}
		if text != "" {
			if err := send(text); err != nil {
				st.stream.Cancel()
				return st.stream.Result(), err
			}
		}
		if done {
			return st.stream.Result(), nil
		}
	}
}

// failed answers a non-streaming request that the engine could not finish.
func (s *Server) failed(w http.ResponseWriter, r *http.Request, err error, model string) {
	if r.Context().Err() != nil {
		return // the client is gone; nobody to answer
	}
	s.writeError(w, r, apiError(err, model, "prompt"))
}

// streamFailed ends a stream that broke after its headers went out: an
// error event (OpenAI's shape), then [DONE].
func (s *Server) streamFailed(r *http.Request, sse *sseWriter, err error, model string) {
	if r.Context().Err() != nil || errors.Is(err, errClientGone) {
		return
	}
	sse.send(apiError(err, model, "prompt").Body())
	sse.done()
}

func usage(res engine.Result) *openai.Usage {
	return &openai.Usage{PromptTokens: res.PromptTokens, CompletionTokens: len(res.Tokens), TotalTokens: res.PromptTokens + len(res.Tokens)}
}
