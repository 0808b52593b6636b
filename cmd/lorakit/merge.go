package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/lorakit/lorakit/format/safetensors"
	"github.com/lorakit/lorakit/model/llama"
	"github.com/lorakit/lorakit/tensor"
)

// tokenizerFiles are copied next to a merged model so it is a complete folder.
var tokenizerFiles = []string{"tokenizer.json", "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json", "generation_config.json"}

func newMergeCmd() *cobra.Command {
	var modelPath, out, dtype string
	var adapters []string
	var shardMB int64
	cmd := &cobra.Command{
		Use:   "merge --model M --adapter A --out DIR",
		Short: "Merge LoRA adapters into the base weights (W + s·B·A) and write a Hugging Face folder",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(adapters) == 0 || out == "" {
				return fmt.Errorf("--adapter and --out are required")
			}
			lm, err := loadModel(modelPath)
			if err != nil {
				return err
			}
			if err := lm.attachAdapters(adapters); err != nil {
				return err
			}
			// Attach validated and combined them; fold the attached one in.
			if err := mergeAttached(lm.Model); err != nil {
				return err
			}
			if err := lm.Model.Save(out, llama.SaveOptions{DType: tensor.DType(dtype), MaxShardBytes: shardMB << 20}); err != nil {
				return err
			}
			for _, name := range tokenizerFiles {
				b, err := lm.Source.ReadFile(name)
				if err != nil {
					continue // optional files
				}
				if err := safetensors.WriteFileAtomic(filepath.Join(out, name), b); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "merged %d adapter(s) into %s (%s)\n", len(adapters), out, dtype)
			return nil
		},
	}
	cmd.Flags().StringVar(&modelPath, "model", "", "base model folder (default: the embedded tiny-brown)")
	cmd.Flags().StringArrayVar(&adapters, "adapter", nil, "PEFT adapter folder (repeat to merge several)")
	cmd.Flags().StringVar(&out, "out", "", "output folder")
	cmd.Flags().StringVar(&dtype, "dtype", "F32", "weight dtype of the merged model: F32, BF16 or F16")
	cmd.Flags().Int64Var(&shardMB, "max-shard-mb", 0, "shard the weights into files of at most this many MB (0: one file)")
	return cmd
}

// mergeAttached folds each projection's attached adapter into its weight.
func mergeAttached(m *llama.Model) error {
	for _, l := range m.Layers {
		for _, p := range l.Projections() {
			if mod := p.Linear.LoRA; mod != nil {
				p.Linear.Dequantize() // an NF4 base merges into full precision
				mod.Delta(p.Linear.W, 1)
				p.Linear.LoRA = nil
			}
		}
	}
	return nil
}
