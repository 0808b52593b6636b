// Package eval scores a model on examples: loss, perplexity and token counts
// with the conventions of DESIGN.md §4, so the numbers compare across tools.
package eval

import (
	"fmt"
	"math"

	"github.com/lorakit/lorakit/kvcache"
	"github.com/lorakit/lorakit/model/llama"
	"github.com/lorakit/lorakit/nn"
	"github.com/lorakit/lorakit/train/data"
)

// Result is the token-weighted evaluation of a file.
type Result struct {
	Loss       float64 `json:"loss"`       // total NLL / predicted tokens
	Perplexity float64 `json:"perplexity"` // exp(Loss)
	Tokens     int     `json:"tokens"`     // predicted (non-ignored) tokens
	Examples   int     `json:"examples"`
}

// Options control batching; the result does not depend on them.
type Options struct {
	BatchTokens int // pack examples into forward calls of about this many tokens (default 2048)
	// Progress, when set, is called after each batch with examples done so far.
	Progress func(done, total int)
}

// Evaluate runs the model over every example and sums the NLL of every
// non-ignored target: logits at position t predict labels[t+1].
func Evaluate(m *llama.Model, exs []data.Example, opt Options) (Result, error) {
	if opt.BatchTokens <= 0 {
		opt.BatchTokens = 2048
	}
	var total float64
	var count int
	for i := 0; i < len(exs); {
		var caches []*kvcache.Seq
		var toks [][]int
		var targets []int
		n := 0
		for ; i < len(exs) && (n == 0 || n+len(exs[i].InputIDs) <= opt.BatchTokens); i++ {
			ex := exs[i]
			if len(ex.InputIDs) == 0 {
				continue
			}
			caches = append(caches, m.NewCache())
			toks = append(toks, ex.InputIDs)
			targets = append(targets, nn.ShiftLabels(ex.Labels)...)
			n += len(ex.InputIDs)
		}
		if len(toks) == 0 {
			continue
		}
		logits, err := m.Forward(&llama.Step{Caches: caches, Tokens: toks, AllLogits: true})
		if err != nil {
			return Result{}, err
		}
		s, c := nn.CrossEntropy(logits, targets, m.Config.VocabSize)
		total += s
		count += c
		if opt.Progress != nil {
			opt.Progress(i, len(exs))
		}
	}
	if count == 0 {
		return Result{}, fmt.Errorf("evaluate: no predicted tokens (every label is masked or every example has one token)")
	}
	loss := total / float64(count)
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return Result{}, fmt.Errorf("evaluate: loss is %v", loss)
	}
	return Result{Loss: loss, Perplexity: math.Exp(loss), Tokens: count, Examples: len(exs)}, nil
}
