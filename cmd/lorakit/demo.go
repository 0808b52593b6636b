package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/lorakit/lorakit/datasets"
	"github.com/lorakit/lorakit/engine"
	"github.com/lorakit/lorakit/models"
)

var demoPrompts = []string{"The President said that", "She looked at him and"}

func newDemoCmd() *cobra.Command {
	var maxTokens int
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the embedded tiny-brown model: generate from two prompts, then perplexity on held-out domains",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			t0 := time.Now()
			lm, err := loadModel(models.DefaultName)
			if err != nil {
				return err
			}
			c := lm.Model.Config
			fmt.Fprintf(out, "model: %s (%s, %d layers, hidden %d, %.1fM parameters), loaded in %v\n\n",
				lm.Source.Name(), c.ModelType, c.NumLayers, c.HiddenSize, float64(lm.Model.NumParams())/1e6, time.Since(t0).Round(time.Millisecond))
			for _, p := range demoPrompts {
				fmt.Fprintf(out, "greedy> %s", p)
				t := time.Now()
				res, err := engine.Generate(context.Background(), lm.Model, lm.Tok, lm.encodePrompt(p),
					engine.GenerateOptions{MaxTokens: maxTokens, EOS: lm.eosIDs()},
					func(s string) error { _, err := fmt.Fprint(out, s); return err })
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "\n  [%d tokens, %.0f tokens/s]\n\n", len(res.Tokens), float64(len(res.Tokens))/time.Since(t).Seconds())
			}
			fmt.Fprintln(out, "held-out domains (never seen in pretraining), {\"text\"} convention:")
			for _, name := range []string{"h_test", "p_test"} {
				b, err := datasets.Brown(name)
				if err != nil {
					return err
				}
				t := time.Now()
				res, err := evalFile(lm, name+".jsonl", b, 0)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "  %-7s perplexity %8.4f  loss %.6f  tokens %6d  (%.1fs)\n", name, res.Perplexity, res.Loss, res.Tokens, time.Since(t).Seconds())
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&maxTokens, "max-tokens", 48, "tokens to generate per prompt")
	return cmd
}
