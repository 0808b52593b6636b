package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/lorakit/lorakit/format/safetensors"
	"github.com/lorakit/lorakit/model/llama"
	"github.com/lorakit/lorakit/tensor"
)

func newQuantizeCmd() *cobra.Command {
	var modelPath, out, format string
	cmd := &cobra.Command{
		Use:   "quantize --model M --out DIR --format nf4|f32|bf16",
		Short: "Write a quantized copy of a model (NF4, bitsandbytes layout) or a dequantized one (f32, bf16)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return fmt.Errorf("--out is required")
			}
			lm, err := loadModelAsStored(modelPath)
			if err != nil {
				return err
			}
			opt := llama.SaveOptions{}
			switch format {
			case "nf4":
				if err := lm.Model.QuantizeNF4(); err != nil {
					return err
				}
				if err := applyNF4Compute(lm.Model, true); err != nil {
					return err
				}
				opt.KeepNF4 = true
			case "f32":
				opt.DType = tensor.F32
			case "bf16":
				opt.DType = tensor.BF16
			default:
				return fmt.Errorf("--format %q: want nf4, f32 or bf16", format)
			}
			if err := lm.Model.Save(out, opt); err != nil {
				return err
			}
			for _, name := range tokenizerFiles {
				if b, err := lm.Source.ReadFile(name); err == nil {
					if err := safetensors.WriteFileAtomic(filepath.Join(out, name), b); err != nil {
						return err
					}
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%s)\n", out, format)
			return nil
		},
	}
	cmd.Flags().StringVar(&modelPath, "model", "", "model folder (default: the embedded tiny-brown)")
	cmd.Flags().StringVar(&out, "out", "", "output folder")
	cmd.Flags().StringVar(&format, "format", "nf4", "nf4 (4-bit, double quantization; norms, embeddings, lm_head stay float32), f32 or bf16")
	return cmd
}
