// Command lorakit fine-tunes LoRA adapters for Llama-family models and runs
// them, on a CPU, in one binary.
package main

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"

	"github.com/spf13/cobra"

	"github.com/lorakit/lorakit/kernels"
)

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "lorakit:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	var threads int
	var verbose bool
	var cpuProfile, memProfile string
	var stopProfile func()
	root := &cobra.Command{
		Use:           "lorakit",
		Short:         "LoRA fine-tuning and multi-adapter serving for Llama-family models, on a CPU",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, args []string) {
			if threads > 0 {
				kernels.SetThreads(threads)
			}
			level := slog.LevelWarn
			if verbose {
				level = slog.LevelDebug
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err == nil && pprof.StartCPUProfile(f) == nil {
					stopProfile = func() { pprof.StopCPUProfile(); f.Close() }
				}
			}
		},
		PersistentPostRun: func(cmd *cobra.Command, args []string) {
			if stopProfile != nil {
				stopProfile()
			}
			if memProfile != "" {
				// The allocation profile (pprof's alloc_space / inuse_space).
				if f, err := os.Create(memProfile); err == nil {
					pprof.Lookup("allocs").WriteTo(f, 0)
					f.Close()
				}
			}
		},
	}
	root.PersistentFlags().StringVar(&quantizeAtLoad, "quantize", "", "quantize the base model's projections at load: nf4 (QLoRA; norms, embeddings and lm_head keep their type, see --dtype)")
	root.PersistentFlags().StringVar(&computeDTypeAtLoad, "compute-dtype", "", "dtype the NF4 products compute in: bf16 or f32 (bnb_4bit_compute_dtype; default bf16 with --quantize nf4, as stored for an NF4 folder)")
	root.PersistentFlags().StringVar(&dtypeAtLoad, "dtype", "", "hold the weights not quantized in f32, bf16 or f16 (like torch_dtype; default: as stored)")
	root.PersistentFlags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile (go tool pprof) to this file")
	root.PersistentFlags().StringVar(&memProfile, "memprofile", "", "write a heap allocation profile (go tool pprof) to this file at exit")
	root.PersistentFlags().IntVar(&threads, "threads", 0, "threads for the kernels (default: LORAKIT_THREADS or all cores)")
	root.PersistentFlags().BoolVarP(&verbose, "verbose", "v", false, "debug logging")
	root.AddCommand(newGenerateCmd(), newTokenizeCmd(), newEvalCmd(), newInspectCmd(), newDemoCmd(), newTrainCmd(), newBenchCmd(), newMergeCmd(), newQuantizeCmd())
	root.AddCommand(newServeCmd())
	return root
}
