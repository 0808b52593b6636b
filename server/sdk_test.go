package server

import (
	"context"
	"errors"
	"net/http"
	"testing"

	oai "github.com/openai/openai-go"
	"github.com/openai/openai-go/option"

	"github.com/lorakit/lorakit/server/openai"
)

// TestOpenAISDK drives the server with the official OpenAI Go SDK:
// model list, completions and chat completions, streaming and not, usage,
// and errors surfacing as the SDK's typed errors.
func TestOpenAISDK(t *testing.T) {
	h := newHarness(t, harnessOpts{adapters: 2, maxLoaded: 2, apiKeys: []string{"sk-test"}})
	client := oai.NewClient(option.WithBaseURL(h.ts.URL+"/v1/"), option.WithAPIKey("sk-test"), option.WithMaxRetries(0),
		option.WithHTTPClient(h.ts.Client()))
	ctx := context.Background()

	models, err := client.Models.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range models.Data {
		ids = append(ids, m.ID)
	}
	if len(ids) != 3 || ids[0] != baseName || ids[1] != "a0" || ids[2] != "a1" {
		t.Fatalf("models: %v", ids)
	}

	for _, model := range []string{baseName, "a1"} {
		params := oai.CompletionNewParams{
			Model:       oai.CompletionNewParamsModel(model),
			Prompt:      oai.CompletionNewParamsPromptUnion{OfString: oai.String("The jury said")},
			MaxTokens:   oai.Int(12),
			Temperature: oai.Float(0),
		}
		c, err := client.Completions.New(ctx, params)
		if err != nil {
			t.Fatalf("%s: %v", model, err)
		}
		if len(c.Choices) != 1 || c.Choices[0].Text == "" || c.Model != model || c.Object != "text_completion" {
			t.Fatalf("%s: completion %+v", model, c)
		}
		want := len(h.encodePrompt("The jury said"))
		if c.Usage.PromptTokens != int64(want) || c.Usage.CompletionTokens < 1 || c.Usage.TotalTokens != c.Usage.PromptTokens+c.Usage.CompletionTokens {
			t.Fatalf("%s: usage %+v, want %d prompt tokens", model, c.Usage, want)
		}
		stream := client.Completions.NewStreaming(ctx, params)
		var text, finish string
		for stream.Next() {
			ch := stream.Current()
			for _, choice := range ch.Choices {
				text += choice.Text
				if choice.FinishReason != "" {
					finish = string(choice.FinishReason)
				}
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatalf("%s stream: %v", model, err)
		}
		if text != c.Choices[0].Text || finish != string(c.Choices[0].FinishReason) {
			t.Fatalf("%s: streamed %q (%s), not streamed %q (%s)", model, text, finish, c.Choices[0].Text, c.Choices[0].FinishReason)
		}
	}

	msgs := []oai.ChatCompletionMessageParamUnion{oai.SystemMessage("You are terse."), oai.UserMessage("Tell me about the jury.")}
	chatParams := oai.ChatCompletionNewParams{Model: "a0", Messages: msgs, MaxTokens: oai.Int(10), Temperature: oai.Float(0), Seed: oai.Int(7)}
	cc, err := client.Chat.Completions.New(ctx, chatParams)
	if err != nil {
		t.Fatal(err)
	}
	if len(cc.Choices) != 1 || cc.Choices[0].Message.Role != "assistant" || cc.Object != "chat.completion" {
		t.Fatalf("chat: %+v", cc)
	}
	prompt, e := h.srv.encodeChat([]openai.ChatMessage{{Role: "system", Content: "You are terse."}, {Role: "user", Content: "Tell me about the jury."}})
	if e != nil {
		t.Fatal(e)
	}
	if cc.Usage.PromptTokens != int64(len(prompt)) {
		t.Fatalf("chat prompt tokens %d, the template renders %d", cc.Usage.PromptTokens, len(prompt))
	}
	chatParams.StreamOptions = oai.ChatCompletionStreamOptionsParam{IncludeUsage: oai.Bool(true)}
	cs := client.Chat.Completions.NewStreaming(ctx, chatParams)
	acc := oai.ChatCompletionAccumulator{}
	for cs.Next() {
		acc.AddChunk(cs.Current())
	}
	if err := cs.Err(); err != nil {
		t.Fatal(err)
	}
	if got, want := acc.Choices[0].Message.Content, cc.Choices[0].Message.Content; got != want {
		t.Fatalf("chat streamed %q, not streamed %q", got, want)
	}
	if acc.Choices[0].FinishReason != cc.Choices[0].FinishReason || acc.Usage.TotalTokens != cc.Usage.TotalTokens {
		t.Fatalf("chat stream finish %q usage %+v; want %q %+v", acc.Choices[0].FinishReason, acc.Usage, cc.Choices[0].FinishReason, cc.Usage)
	}

	// Errors arrive as the SDK's typed error with OpenAI's fields.
	_, err = client.Completions.New(ctx, oai.CompletionNewParams{Model: "no-such-adapter",
		Prompt: oai.CompletionNewParamsPromptUnion{OfString: oai.String("x")}})
	var apiErr *oai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound || apiErr.Code != "model_not_found" {
		t.Fatalf("unknown model: %v", err)
	}
	bad := oai.NewClient(option.WithBaseURL(h.ts.URL+"/v1/"), option.WithAPIKey("wrong"), option.WithMaxRetries(0))
	_, err = bad.Models.List(ctx)
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong key: %v", err)
	}
}
