// Package engine runs models for users: the generation loop now, the
// adapter cache and the batching scheduler later.
package engine

import (
	"context"
	"fmt"
	"strings"

	"github.com/lorakit/lorakit/kvcache"
	"github.com/lorakit/lorakit/model/llama"
	"github.com/lorakit/lorakit/sample"
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
}

// Result is what a generation produced.
type Result struct {
	Text         string
	Tokens       []int  // generated ids, EOS excluded
	PromptTokens int    // prompt length in tokens
	FinishReason string // "stop" (EOS or stop string) or "length"
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
	res := Result{PromptTokens: len(prompt), FinishReason: "length"}
	cache := m.NewCache()
	sampler := sample.New(opt.Sample)
	stream := tok.NewStreamDecoder(false)
	var text strings.Builder // all final text so far
	emitted := 0             // bytes of text already passed to onText
	history := append([]int(nil), prompt...)
	next := prompt
	emit := func(final bool) error {
		s := text.String()
		if cut, ok := findStop(s, opt.Stop); ok {
			s = s[:cut]
			final = true
		}
		upto := len(s)
		if !final {
			upto -= holdBack(s, opt.Stop)
		}
		if upto > emitted {
			if onText != nil {
				if err := onText(s[emitted:upto]); err != nil {
					return err
				}
			}
			emitted = upto
		}
		return nil
	}
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
		text.WriteString(stream.Add(id))
		if _, ok := findStop(text.String(), opt.Stop); ok {
			res.FinishReason = "stop"
			break
		}
		if err := emit(false); err != nil {
			return res, err
		}
	}
	text.WriteString(stream.Flush())
	if err := emit(true); err != nil {
		return res, err
	}
	res.Text = text.String()
	if cut, ok := findStop(res.Text, opt.Stop); ok {
		res.Text = res.Text[:cut]
		res.FinishReason = "stop"
	}
	return res, nil
}

func contains(ids []int, id int) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// findStop returns where the earliest stop string starts in s.
func findStop(s string, stops []string) (int, bool) {
	best, found := len(s), false
	for _, st := range stops {
		if st == "" {
			continue
		}
		if i := strings.Index(s, st); i >= 0 && i < best {
			best, found = i, true
		}
	}
	return best, found
}

// holdBack is how many trailing bytes of s could be the start of a stop string
// and so must not be streamed yet.
func holdBack(s string, stops []string) int {
	n := 0
	for _, st := range stops {
		for k := min(len(st)-1, len(s)); k > n; k-- {
			if strings.HasSuffix(s, st[:k]) {
				n = k
				break
			}
		}
	}
	return n
}
