package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lorakit/lorakit/internal/cpu"
	"github.com/lorakit/lorakit/kernels"
	"github.com/lorakit/lorakit/kvcache"
	"github.com/lorakit/lorakit/lora"
	"github.com/lorakit/lorakit/model"
	"github.com/lorakit/lorakit/model/llama"
	"github.com/lorakit/lorakit/nn"
	"github.com/lorakit/lorakit/sample"
	"github.com/lorakit/lorakit/tensor"
	"github.com/lorakit/lorakit/train"
	"github.com/lorakit/lorakit/train/optim"
)

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure kernels, decoding and training on random weights of a named shape",
	}
	cmd.AddCommand(newBenchMatmulCmd(), newBenchDecodeCmd(), newBenchTrainCmd())
	cmd.AddCommand(newBenchServeCmd())
	return cmd
}

// benchHeader says what a figure was measured on.
func benchHeader(w io.Writer, what string) {
	fmt.Fprintf(w, "%s: %d threads, %s, %s/%s\n", what, kernels.Threads(), cpu.Describe(), runtime.GOOS, runtime.GOARCH)
}

func emitJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func newBenchMatmulCmd() *cobra.Command {
	var size, repeats int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "matmul --size N",
		Short: "float32 GEMM C = A·Bᵀ of N×N matrices: GFLOPS (median of repeats)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			n := size
			rng := rand.New(rand.NewPCG(1, 2))
			a, b, c := make([]float32, n*n), make([]float32, n*n), make([]float32, n*n)
			for i := range a {
				a[i], b[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
			}
			kernels.MatMulT(c, a, b, n, n, n, false) // warm up the pool and caches
			var rates []float64
			for r := 0; r < repeats; r++ {
				iters, t0 := 0, time.Now()
				for time.Since(t0) < 300*time.Millisecond || iters == 0 {
					kernels.MatMulT(c, a, b, n, n, n, false)
					iters++
				}
				rates = append(rates, 2*float64(n)*float64(n)*float64(n)*float64(iters)/time.Since(t0).Seconds()/1e9)
			}
			out := cmd.OutOrStdout()
			res := map[string]any{"size": n, "threads": kernels.Threads(), "gflops": median(rates), "gflops_max": maxOf(rates), "repeats": repeats, "cpu": cpu.Describe()}
			if asJSON {
				return emitJSON(out, res)
			}
			benchHeader(out, "matmul")
			fmt.Fprintf(out, "M=N=K=%d float32: %.1f GFLOPS median of %d (best %.1f)\n", n, median(rates), repeats, maxOf(rates))
			return nil
		},
	}
	cmd.Flags().IntVar(&size, "size", 1024, "matrix size N")
	cmd.Flags().IntVar(&repeats, "repeats", 5, "timed repeats (each at least 0.3 s)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

func maxOf(xs []float64) float64 {
	m := 0.0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

// benchModel builds a random-weight model of a named shape or loads one.
func benchModel(shape, path string) (*llama.Model, string, error) {
	if path != "" {
		lm, err := loadModel(path)
		if err != nil {
			return nil, "", err
		}
		return lm.Model, lm.Source.Name(), nil
	}
	cfg, err := model.NamedShape(shape)
	if err != nil {
		return nil, "", err
	}
	var m *llama.Model
	if quantizeAtLoad == "nf4" {
		// Quantized layer by layer: the float32 model never exists, so the
		// peak RSS is the NF4 model's.
		restore := train.LeanGC()
		if d := strings.ToLower(dtypeAtLoad); d == "bf16" || d == "f16" {
			// The embedding drawn straight into 16 bits: no float32 copy.
			m, err = llama.NewRandomNF4With16(cfg, 1, tensor.DType(strings.ToUpper(d)))
		} else {
			m, err = llama.NewRandomNF4(cfg, 1)
			if err == nil {
				err = applyDType(m)
			}
		}
		restore()
		if err == nil {
			err = applyNF4Compute(m, true)
		}
		if err != nil {
			return nil, "", err
		}
	} else {
		m = llama.NewRandom(cfg, 1)
		if err := applyQuantize(m); err != nil {
			return nil, "", err
		}
	}
	name := shape + " (random weights)"
	if quantizeAtLoad != "" {
		name = shape + " (random weights, " + quantizeAtLoad + ", " + m.Config.QuantComputeDType + " compute)"
	}
	return m, name, nil
}

func randomIDs(rng *rand.Rand, n, vocab int) []int {
	ids := make([]int, n)
	for i := range ids {
		ids[i] = rng.IntN(vocab)
	}
	return ids
}

func newBenchDecodeCmd() *cobra.Command {
	var shape, modelPath string
	var prompt, gen, repeats int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "decode --shape NAME|--model PATH [--dtype f32|bf16|f16] --prompt 128 --gen 64",
		Short: "Prefill and decode speed (tokens/s) on random weights of a named shape",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			m, name, err := benchModel(shape, modelPath)
			if err != nil {
				return err
			}
			dtype := strings.ToLower(string(m.WeightDType()))
			rng := rand.New(rand.NewPCG(3, 4))
			var pre, dec []float64
			for r := 0; r < repeats; r++ {
				ids := randomIDs(rng, prompt, m.Config.VocabSize)
				cache := m.NewCache()
				t0 := time.Now()
				logits, err := m.Forward(&llama.Step{Caches: []*kvcache.Seq{cache}, Tokens: [][]int{ids}})
				if err != nil {
					return err
				}
				pre = append(pre, float64(prompt)/time.Since(t0).Seconds())
				t1 := time.Now()
				for i := 0; i < gen; i++ {
					next := sample.Greedy(logits)
					if logits, err = m.Forward(&llama.Step{Caches: []*kvcache.Seq{cache}, Tokens: [][]int{{next}}}); err != nil {
						return err
					}
				}
				dec = append(dec, float64(gen)/time.Since(t1).Seconds())
			}
			out := cmd.OutOrStdout()
			res := map[string]any{"model": name, "dtype": dtype, "threads": kernels.Threads(), "prompt": prompt, "gen": gen,
				"prefill_tok_s": median(pre), "decode_tok_s": median(dec), "repeats": repeats, "cpu": cpu.Describe()}
			if asJSON {
				return emitJSON(out, res)
			}
			benchHeader(out, fmt.Sprintf("decode %s %s (%.0f MB of weights)", name, dtype, float64(m.WeightBytes())/1e6))
			fmt.Fprintf(out, "prefill %d tokens: %.1f tok/s; decode %d tokens: %.1f tok/s (medians of %d)\n", prompt, median(pre), gen, median(dec), repeats)
			return nil
		},
	}
	cmd.Flags().StringVar(&shape, "shape", "smollm2-135m", "named shape: "+strings.Join(model.ShapeNames(), ", "))
	cmd.Flags().StringVar(&modelPath, "model", "", "a real model folder instead of --shape")
	cmd.Flags().IntVar(&prompt, "prompt", 128, "prompt tokens")
	cmd.Flags().IntVar(&gen, "gen", 64, "generated tokens")
	cmd.Flags().IntVar(&repeats, "repeats", 3, "repeats")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

func newBenchTrainCmd() *cobra.Command {
	var shape, modelPath, targets string
	var batch, seq, rank, steps int
	var asJSON, ckpt bool
	cmd := &cobra.Command{
		Use:   "train --shape NAME|--model M --batch B --seq T --rank R --targets LIST",
		Short: "LoRA training speed: tokens/s of forward+backward+AdamW steps, and peak RSS",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			m, name, err := benchModel(shape, modelPath)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("gradient-checkpointing") {
				ckpt = m.Quantized() // train's default
			}
			m.SetGradientCheckpointing(ckpt)
			defer train.LeanGC()() // as the training loop runs
			cfg := lora.Config{PeftType: "LORA", R: rank, Alpha: float64(2 * rank), TargetModules: strings.Split(targets, ",")}
			a, err := lora.New(cfg, m, 1)
			if err != nil {
				return err
			}
			if err := m.Attach(a); err != nil {
				return err
			}
			var ps, gs [][]float32
			var sizes []int
			for _, n := range a.Names() {
				mod := a.Modules[n]
				mod.GradA, mod.GradB = make([]float32, len(mod.A)), make([]float32, len(mod.B))
				ps, gs = append(ps, mod.A, mod.B), append(gs, mod.GradA, mod.GradB)
				sizes = append(sizes, len(mod.A), len(mod.B))
			}
			opt := optim.NewAdamW(sizes, 0.9, 0.999, 1e-8, 0)
			rng := rand.New(rand.NewPCG(5, 6))
			var rates []float64
			for s := 0; s <= steps; s++ { // step 0 is warm-up
				toks, tgts := make([][]int, batch), make([][]int, batch)
				for b := range toks {
					toks[b] = randomIDs(rng, seq, m.Config.VocabSize)
					tgts[b] = nn.ShiftLabels(toks[b])
				}
				for _, g := range gs {
					clear(g)
				}
				t0 := time.Now()
				if _, _, err := m.LossAndGrad(toks, tgts, float64(batch*(seq-1))); err != nil {
					return err
				}
				if err := opt.Update(ps, gs, 1e-4); err != nil {
					return err
				}
				if s > 0 {
					rates = append(rates, float64(batch*seq)/time.Since(t0).Seconds())
				}
			}
			rss := peakRSS()
			out := cmd.OutOrStdout()
			res := map[string]any{"model": name, "batch": batch, "seq": seq, "rank": rank, "targets": targets, "threads": kernels.Threads(),
				"tokens_per_s": median(rates), "peak_rss_bytes": rss, "steps": steps, "lora_params": a.Params(), "cpu": cpu.Describe(),
				"gradient_checkpointing": ckpt}
			if asJSON {
				return emitJSON(out, res)
			}
			benchHeader(out, "train "+name)
			onOff := map[bool]string{false: "off", true: "on"}[ckpt]
			fmt.Fprintf(out, "B=%d T=%d r=%d on %s (%d LoRA parameters), gradient checkpointing %s: %.1f tokens/s (median of %d steps), peak RSS %s\n",
				batch, seq, rank, targets, a.Params(), onOff, median(rates), steps, humanBytes(int(rss)))
			return nil
		},
	}
	cmd.Flags().StringVar(&shape, "shape", "smollm2-135m", "named shape: "+strings.Join(model.ShapeNames(), ", "))
	cmd.Flags().StringVar(&modelPath, "model", "", "a real model folder instead of --shape")
	cmd.Flags().IntVar(&batch, "batch", 4, "sequences per step")
	cmd.Flags().IntVar(&seq, "seq", 256, "tokens per sequence")
	cmd.Flags().IntVar(&rank, "rank", 16, "LoRA rank")
	cmd.Flags().StringVar(&targets, "targets", "q_proj,k_proj,v_proj,o_proj", "target modules")
	cmd.Flags().IntVar(&steps, "steps", 5, "timed steps (after one warm-up step)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	cmd.Flags().BoolVar(&ckpt, "gradient-checkpointing", false, gradientCheckpointingHelp)
	return cmd
}

// peakRSS is the process's peak resident set (VmHWM) in bytes, 0 if unknown.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(v)
			if len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}
