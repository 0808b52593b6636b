package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/spf13/cobra"

	"github.com/lorakit/lorakit/engine"
	"github.com/lorakit/lorakit/sample"
)

type sampleFlags struct {
	maxTokens         int
	temperature, topP float32
	minP, repPenalty  float32
	topK              int
	seed              uint64
	stop              []string
}

func (f *sampleFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.IntVar(&f.maxTokens, "max-tokens", 128, "tokens to generate at most")
	fl.Float32Var(&f.temperature, "temperature", 0, "sampling temperature; 0 = greedy (default: generation_config.json's, greedy if it does not sample)")
	fl.Float32Var(&f.topP, "top-p", 0, "nucleus sampling mass (default: generation_config.json's)")
	fl.IntVar(&f.topK, "top-k", 0, "keep the k most likely tokens (default: generation_config.json's)")
	fl.Float32Var(&f.minP, "min-p", 0, "keep tokens with p >= min-p · p_max")
	fl.Float32Var(&f.repPenalty, "repetition-penalty", 0, "HF repetition penalty (1 = off)")
	fl.Uint64Var(&f.seed, "seed", 0, "random seed for sampling")
	fl.StringArrayVar(&f.stop, "stop", nil, "stop string (repeatable)")
}

// params merges explicit flags over generation_config.json's defaults, the
// way transformers' generate() merges kwargs over the generation config.
func (f *sampleFlags) params(cmd *cobra.Command, lm *loadedModel) sample.Params {
	p := sample.Params{Seed: f.seed}
	if g := lm.Gen; g.DoSample {
		p.Temperature, p.TopK, p.TopP = float32(g.Temperature), g.TopK, float32(g.TopP)
		p.MinP, p.RepetitionPenalty = float32(g.MinP), float32(g.RepetitionPenalty)
	}
	ch := cmd.Flags().Changed
	if ch("temperature") {
		p.Temperature = f.temperature
	}
	if ch("top-p") {
		p.TopP = f.topP
	}
	if ch("top-k") {
		p.TopK = f.topK
	}
	if ch("min-p") {
		p.MinP = f.minP
	}
	if ch("repetition-penalty") {
		p.RepetitionPenalty = f.repPenalty
	}
	return p
}

func newGenerateCmd() *cobra.Command {
	var modelPath, prompt, kvCacheDType string
	var adapters []string
	var sf sampleFlags
	cmd := &cobra.Command{
		Use:   "generate --model PATH --prompt TEXT",
		Short: "Generate text from a prompt, streamed to stdout",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			lm, err := loadModel(modelPath)
			if err != nil {
				return err
			}
			if err := lm.attachAdapters(adapters); err != nil {
				return err
			}
			kvt, err := engine.ParseKVCacheDType(kvCacheDType, lm.Model)
			if err != nil {
				return fmt.Errorf("--kv-cache-dtype: %w", err)
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			out := cmd.OutOrStdout()
			fmt.Fprint(out, prompt)
			_, err = engine.Generate(ctx, lm.Model, lm.Tok, lm.encodePrompt(prompt), engine.GenerateOptions{
				MaxTokens: sf.maxTokens, Sample: sf.params(cmd, lm), Stop: sf.stop, EOS: lm.eosIDs(), KVType: kvt,
			}, func(s string) error { _, err := fmt.Fprint(out, s); return err })
			fmt.Fprintln(out)
			return err
		},
	}
	cmd.Flags().StringVar(&modelPath, "model", "", "model folder (default: the embedded tiny-brown)")
	cmd.Flags().StringVar(&prompt, "prompt", "", "prompt text")
	cmd.Flags().StringArrayVar(&adapters, "adapter", nil, "PEFT adapter folder applied unmerged (repeat to combine several)")
	cmd.Flags().StringVar(&kvCacheDType, "kv-cache-dtype", "auto", kvCacheDTypeUsage)
	sf.register(cmd)
	return cmd
}
