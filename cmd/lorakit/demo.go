package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lorakit/lorakit/datasets"
	"github.com/lorakit/lorakit/engine"
	"github.com/lorakit/lorakit/lora"
	"github.com/lorakit/lorakit/models"
	"github.com/lorakit/lorakit/train"
	"github.com/lorakit/lorakit/train/data"
)

var demoPrompts = []string{"The President said that", "She looked at him and"}

// demoLR is the demo's learning rate: a short run takes a larger step than
// the two-epoch default.
const demoLR = 2e-3

func newDemoCmd() *cobra.Command {
	var maxTokens, trainSteps int
	var adapterDir string
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
			base := map[string]float64{}
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
				base[name] = res.Perplexity
				fmt.Fprintf(out, "  %-7s perplexity %8.4f  loss %.6f  tokens %6d  (%.1fs)\n", name, res.Perplexity, res.Loss, res.Tokens, time.Since(t).Seconds())
			}
			if trainSteps <= 0 {
				return nil
			}
			// Train a LoRA adapter on the government-documents domain for
			// about a minute and compare perplexities on its held-out split.
			dir := adapterDir
			if dir == "" {
				if dir, err = os.MkdirTemp("", "lorakit-demo-"); err != nil {
					return err
				}
			}
			fmt.Fprintf(out, "\ntraining a LoRA adapter on h_train (government documents), %d steps...\n", trainSteps)
			b, err := datasets.Brown("h_train")
			if err != nil {
				return err
			}
			exs, err := data.ReadOptions("h_train.jsonl", bytesReader(b), lm.Tok, lm.specials(), data.Options{})
			if err != nil {
				return err
			}
			data.Truncate(exs, c.MaxPositions)
			cfg := train.Defaults()
			cfg.Data, cfg.Out, cfg.Steps, cfg.LR = "h_train.jsonl", dir, trainSteps, demoLR
			a, err := lora.New(cfg.LoRAConfig(models.DefaultName), lm.Model, cfg.Seed)
			if err != nil {
				return err
			}
			run := &train.Run{Cfg: cfg, Model: lm.Model, Adapter: a, Train: exs, Progress: cmd.ErrOrStderr()}
			res, err := run.Execute(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "trained %d steps in %v (%.0f tokens/s); adapter (PEFT format, %d parameters) in %s\n",
				res.Steps, res.Elapsed.Round(time.Second), res.TokensPerS, a.Params(), dir)
			trained, err := lora.Load(dir)
			if err != nil {
				return err
			}
			if err := lm.Model.Attach(trained); err != nil {
				return err
			}
			defer lm.Model.Detach()
			hb, _ := datasets.Brown("h_test")
			ev, err := evalFile(lm, "h_test.jsonl", hb, 0)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "  h_test perplexity: base %.4f -> adapter %.4f (%.1f%% lower)\n",
				base["h_test"], ev.Perplexity, 100*(1-ev.Perplexity/base["h_test"]))
			lm.Model.Detach()
			return demoServe(cmd.Context(), out, lm, trained)
		},
	}
	cmd.Flags().IntVar(&maxTokens, "max-tokens", 48, "tokens to generate per prompt")
	cmd.Flags().IntVar(&trainSteps, "train-steps", 100, "LoRA training steps on h_train (0 skips training)")
	cmd.Flags().StringVar(&adapterDir, "adapter-out", "", "where to write the demo adapter (default: a new temporary folder)")
	return cmd
}

// demoServe runs the serving engine over the base model and sends it two
// requests at once, one for the base and one for the trained adapter: they
// share one batched forward per step, each with its own adapter.
func demoServe(ctx context.Context, out io.Writer, lm *loadedModel, a *lora.Adapter) error {
	eng, err := engine.New(lm.Model, engine.SpecOf(lm.Model), lm.Tok, engine.Config{MaxBatch: 4})
	if err != nil {
		return err
	}
	defer eng.Shutdown(context.Background())
	const prompt = "The Secretary of the Treasury shall"
	fmt.Fprintf(out, "\nserving the base model and the adapter together (one batch), greedy, prompt %q:\n", prompt)
	type answer struct {
		text string
		err  error
	}
	names := []string{"base", "h-adapter"}
	adapters := []*lora.Adapter{nil, a}
	answers := make([]chan answer, 2)
	for i := range answers {
		answers[i] = make(chan answer, 1)
		st, err := eng.Submit(ctx, &engine.Request{ID: names[i], Adapter: map[bool]string{true: "", false: names[i]}[i == 0], LoRA: adapters[i],
			Prompt: lm.encodePrompt(prompt), MaxTokens: 32, EOS: lm.eosIDs()})
		if err != nil {
			return err
		}
		go func(i int) {
			var b strings.Builder
			for {
				t, done, err := st.Next(ctx)
				b.WriteString(t)
				if done || err != nil {
					answers[i] <- answer{b.String(), err}
					return
				}
			}
		}(i)
	}
	for i, ch := range answers {
		ans := <-ch
		if ans.err != nil {
			return ans.err
		}
		fmt.Fprintf(out, "  %-9s | %s%s\n", names[i], prompt, strings.ReplaceAll(ans.text, "\n", " "))
	}
	return nil
}
