package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/lorakit/lorakit/lora"
	"github.com/lorakit/lorakit/train"
	"github.com/lorakit/lorakit/train/data"
)

func newTrainCmd() *cobra.Command {
	def := train.Defaults()
	var fl train.Config
	var configPath string
	cmd := &cobra.Command{
		Use:   "train --model M --data D.jsonl --out DIR",
		Short: "Train a LoRA adapter on a JSONL dataset and save it in PEFT format",
		Long: `Trains a LoRA adapter (PEFT format: adapter_config.json + adapter_model.safetensors)
on JSON Lines data: {"text"}, {"prompt","completion"}, Alpaca, {"messages"} or pre-tokenized.
Settings come from the defaults, then --config run.yaml (same names as the flags), then flags.
Writes DIR/metrics.jsonl, DIR/loss.png and checkpoints DIR/checkpoint-N (--resume continues).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg := def
			if configPath != "" {
				if err := cfg.LoadYAML(configPath); err != nil {
					return err
				}
			}
			if err := overlayFlags(&cfg, &fl, cmd.Flags()); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runTrain(ctx, cmd, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "YAML file with the same names as the flags")
	f.StringVar(&fl.Model, "model", "", "base model folder (default: the embedded tiny-brown)")
	f.StringVar(&fl.Data, "data", "", "training data (JSONL)")
	f.StringVar(&fl.Out, "out", "", "output folder for the adapter, metrics and checkpoints")
	f.StringVar(&fl.EvalData, "eval-data", "", "validation data (JSONL); or use --val-size")
	f.StringVar(&fl.InitAdapter, "init-adapter", "", "continue training this PEFT adapter (its rank, alpha and targets are used)")
	f.IntVar(&fl.Rank, "rank", def.Rank, "LoRA rank r")
	f.Float64Var(&fl.Alpha, "alpha", def.Alpha, "LoRA alpha (scale = alpha/r)")
	f.Float64Var(&fl.Dropout, "dropout", def.Dropout, "LoRA dropout")
	f.StringSliceVar(&fl.Targets, "targets", def.Targets, "target modules: q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj or all-linear")
	f.BoolVar(&fl.RSLoRA, "rslora", false, "rank-stabilised LoRA (scale = alpha/sqrt(r))")
	f.Float64Var(&fl.LR, "lr", def.LR, "peak learning rate")
	f.StringVar(&fl.Schedule, "schedule", def.Schedule, "constant, linear or cosine")
	f.Float64Var(&fl.Warmup, "warmup", def.Warmup, "warmup: a ratio of the steps if < 1, else a step count; 0 disables")
	f.Float64Var(&fl.Epochs, "epochs", def.Epochs, "passes over the data")
	f.IntVar(&fl.Steps, "steps", 0, "optimizer steps (overrides --epochs)")
	f.IntVar(&fl.BatchSize, "batch-size", def.BatchSize, "sequences per micro-batch")
	f.IntVar(&fl.GradAccum, "grad-accum", def.GradAccum, "micro-batches per optimizer step")
	f.IntVar(&fl.SeqLen, "seq-len", 0, "truncate examples to this many tokens (default: max_position_embeddings)")
	f.Float64Var(&fl.WeightDecay, "weight-decay", def.WeightDecay, "AdamW decoupled weight decay")
	f.Float64Var(&fl.Clip, "clip", def.Clip, "clip the global gradient norm to this; 0 disables")
	f.Uint64Var(&fl.Seed, "seed", def.Seed, "seed for initialisation, shuffling and dropout")
	f.BoolVar(&fl.NoShuffle, "no-shuffle", false, "keep the file order")
	f.BoolVar(&fl.Packing, "packing", false, "pack examples into rows of seq-len tokens")
	f.BoolVar(&fl.TrainOnInputs, "train-on-inputs", false, "loss on prompts too (prompt/completion, Alpaca, messages)")
	f.Float64Var(&fl.ValSize, "val-size", 0, "hold out this fraction (< 1) or number of examples for validation")
	f.IntVar(&fl.EvalEvery, "eval-every", 0, "validate every N steps (default: ten times per run)")
	f.IntVar(&fl.SaveEvery, "save-every", 0, "checkpoint every N steps (default: ten times per run)")
	f.IntVar(&fl.KeepCheckpoints, "keep-checkpoints", def.KeepCheckpoints, "checkpoints to keep")
	f.BoolVar(&fl.Resume, "resume", false, "continue from the newest checkpoint in --out")
	fl.GradientCheckpointing = new(bool) // copied onto the config only when the flag is given
	f.BoolVar(fl.GradientCheckpointing, "gradient-checkpointing", false, gradientCheckpointingHelp)
	return cmd
}

// gradientCheckpointingHelp documents the default of --gradient-checkpointing
// on train and bench train.
const gradientCheckpointingHelp = "recompute each layer's activations in the backward instead of keeping them (same gradients, " +
	"far less memory, about one more forward of time). Default: on for a quantized base (--quantize nf4 or an NF4 folder), " +
	"as QLoRA recipes do, since there the saved activations dominate memory; off for float32. " +
	"--gradient-checkpointing=true|false overrides (YAML: gradient-checkpointing or gradient_checkpointing)"

// overlayFlags copies every flag the user set onto cfg, matching flags to
// fields by their YAML names (the same names).
func overlayFlags(cfg, fl *train.Config, flags *pflag.FlagSet) error {
	dst, src := reflect.ValueOf(cfg).Elem(), reflect.ValueOf(fl).Elem()
	byName := map[string]int{}
	for i := 0; i < dst.NumField(); i++ {
		byName[strings.Split(dst.Type().Field(i).Tag.Get("yaml"), ",")[0]] = i
	}
	var err error
	flags.Visit(func(f *pflag.Flag) {
		if i, ok := byName[f.Name]; ok {
			dst.Field(i).Set(src.Field(i))
		} else if f.Name != "config" && f.Name != "threads" && f.Name != "verbose" && f.Name != "cpuprofile" && f.Name != "quantize" {
			err = fmt.Errorf("flag --%s has no config field", f.Name)
		}
	})
	return err
}

func runTrain(ctx context.Context, cmd *cobra.Command, cfg train.Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := slog.Default()
	lm, err := loadModel(cfg.Model)
	if err != nil {
		return err
	}
	if cfg.SeqLen == 0 {
		cfg.SeqLen = lm.Model.Config.MaxPositions
	}
	opts := data.Options{TrainOnInputs: cfg.TrainOnInputs, ChatTemplate: lm.Tok.ChatTemplate(), SeqLen: cfg.SeqLen}
	exs, err := lm.readData(cfg.Data, opts)
	if err != nil {
		return err
	}
	var val []data.Example
	switch {
	case cfg.EvalData != "":
		if val, err = lm.readData(cfg.EvalData, opts); err != nil {
			return err
		}
	case cfg.ValSize > 0:
		n := int(cfg.ValSize)
		if cfg.ValSize < 1 {
			n = int(math.Round(cfg.ValSize * float64(len(exs))))
		}
		if n < 1 || n >= len(exs) {
			return fmt.Errorf("--val-size %v leaves %d of %d examples for validation", cfg.ValSize, n, len(exs))
		}
		// The last n examples of the file, so the split does not depend on the seed.
		exs, val = exs[:len(exs)-n], exs[len(exs)-n:]
	}
	if cfg.Packing {
		exs = data.Pack(exs, cfg.SeqLen)
	}
	base := cfg.Model
	if base == "" {
		base = "tiny-brown"
	}
	var adapter *lora.Adapter
	if cfg.InitAdapter != "" {
		if adapter, err = lora.Load(cfg.InitAdapter); err != nil {
			return err
		}
		c := adapter.Config
		cfg.Rank, cfg.Alpha, cfg.Targets, cfg.RSLoRA = c.R, c.Alpha, c.TargetModules, c.UseRSLoRA
		adapter.Config.Dropout = cfg.Dropout
	} else if adapter, err = lora.New(cfg.LoRAConfig(base), lm.Model, cfg.Seed); err != nil {
		return err
	}
	if err := adapter.Check(lm.Model); err != nil {
		return err
	}
	run := &train.Run{Cfg: cfg, Model: lm.Model, Adapter: adapter, Train: exs, Val: val, Progress: cmd.ErrOrStderr(), Log: log}
	out := cmd.OutOrStdout()
	ckpt := "off"
	if cfg.Checkpointing(lm.Model.Quantized()) {
		ckpt = "on"
	}
	fmt.Fprintf(out, "training %d examples (%d target tokens), validation %d; %d steps (%d per epoch); adapter r=%d alpha=%g on %v: %d parameters; gradient checkpointing %s\n",
		len(exs), data.CountTargets(exs), len(val), run.TotalSteps(), run.StepsPerEpoch(), cfg.Rank, cfg.Alpha, adapter.Config.Targets(), adapter.Params(), ckpt)
	res, err := run.Execute(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "done: %d steps in %v (%.0f tokens/s), last train loss %.4f", res.Steps, res.Elapsed.Round(1e9), res.TokensPerS, res.TrainLoss)
	if !math.IsNaN(res.ValLoss) {
		fmt.Fprintf(out, ", validation loss %.4f (perplexity %.3f)", res.ValLoss, math.Exp(res.ValLoss))
	}
	fmt.Fprintf(out, "\nadapter written to %s\n", cfg.Out)
	return nil
}
