package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/lorakit/lorakit/engine"
	"github.com/lorakit/lorakit/internal/cpu"
	"github.com/lorakit/lorakit/kernels"
	"github.com/lorakit/lorakit/lora"
	"github.com/lorakit/lorakit/model"
	"github.com/lorakit/lorakit/models"
	"github.com/lorakit/lorakit/tokenizer"
)

func newBenchServeCmd() *cobra.Command {
	var (
		shape, modelPath, kvCacheDType         string
		nAdapters, rank, concurrency, requests int
		maxTokens, promptLen, maxBatch         int
		asJSON                                 bool
	)
	cmd := &cobra.Command{
		Use:   "serve --shape NAME|--model M --adapters N --concurrency C --requests R --max-tokens T",
		Short: "Serving throughput and latency: the batching engine in-process, requests spread over N random adapters",
		Long: `bench serve runs the serving engine in-process (no HTTP) on random weights of
a named shape or on a real model, with N random adapters (r=--rank on q,k,v,o;
N=0: the base model alone) spread evenly over the requests. C clients submit R
requests in all, each a random prompt of --prompt tokens generating exactly
--max-tokens tokens (no EOS). Reports aggregate generated tokens/s, time to first
token and per-token latency (time per output token after the first) percentiles.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			servingGC()
			if concurrency < 1 || requests < 1 || maxTokens < 1 || promptLen < 1 || nAdapters < 0 {
				return fmt.Errorf("--concurrency, --requests, --max-tokens and --prompt must be positive, --adapters not negative")
			}
			m, name, err := benchModel(shape, modelPath)
			if err != nil {
				return err
			}
			tok, err := benchTokenizer(modelPath)
			if err != nil {
				return err
			}
			ads := make([]*lora.Adapter, nAdapters)
			for i := range ads {
				if ads[i], err = engine.RandomAdapter(m, rank, lora.Attention, uint64(i+1), 0.02); err != nil {
					return err
				}
				ads[i].PrepareServing() // as the registry does at load
			}
			if maxBatch == 0 {
				maxBatch = concurrency
			}
			spec := engine.SpecOf(m)
			if spec.KVType, err = engine.ParseKVCacheDType(kvCacheDType, m); err != nil {
				return fmt.Errorf("--kv-cache-dtype: %w", err)
			}
			ctxLen := promptLen + maxTokens
			if spec.MaxPositions > 0 {
				ctxLen = min(ctxLen, spec.MaxPositions)
			}
			eng, err := engine.New(m, spec, tok, engine.Config{MaxBatch: maxBatch, MaxQueue: requests + concurrency, ContextLen: ctxLen})
			if err != nil {
				return err
			}
			defer eng.Shutdown(context.Background())
			rng := rand.New(rand.NewPCG(7, 8))
			prompts := make([][]int, requests)
			for i := range prompts {
				prompts[i] = randomIDs(rng, promptLen, m.Config.VocabSize)
			}
			run := func(i int) (engine.Result, error) {
				req := &engine.Request{Prompt: prompts[i], MaxTokens: maxTokens}
				if nAdapters > 0 {
					k := i % nAdapters
					req.Adapter, req.LoRA = fmt.Sprint("a", k), ads[k]
				}
				s, err := eng.Submit(context.Background(), req)
				if err != nil {
					return engine.Result{}, err
				}
				return s.Wait(context.Background())
			}
			// Warm-up: buffers, RoPE table and the kernels' worker pool.
			if _, err := run(0); err != nil {
				return err
			}
			before, cpu0 := eng.Stats(), processCPU()
			results := make([]engine.Result, requests)
			errs := make([]error, requests)
			var next int
			var mu sync.Mutex
			var wg sync.WaitGroup
			t0 := time.Now()
			for w := 0; w < concurrency; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						mu.Lock()
						i := next
						next++
						mu.Unlock()
						if i >= requests {
							return
						}
						results[i], errs[i] = run(i)
					}
				}()
			}
			wg.Wait()
			wall := time.Since(t0)
			after, cpuUsed := eng.Stats(), processCPU()-cpu0
			var ttft, tpot []float64
			generated := 0
			for i, r := range results {
				if errs[i] != nil {
					return fmt.Errorf("request %d: %w", i, errs[i])
				}
				generated += len(r.Tokens)
				ttft = append(ttft, r.FirstToken.Seconds()*1000)
				if len(r.Tokens) > 1 {
					tpot = append(tpot, r.Decoding.Seconds()*1000/float64(len(r.Tokens)-1))
				}
			}
			steps := after.Steps - before.Steps
			fwd := after.Forward - before.Forward
			res := map[string]any{
				"model": name, "adapters": nAdapters, "rank": rank, "concurrency": concurrency, "requests": requests,
				"max_tokens": maxTokens, "prompt": promptLen, "max_batch": maxBatch, "threads": kernels.Threads(), "cpu": cpu.Describe(),
				"tokens_per_s": float64(generated) / wall.Seconds(), "generated_tokens": generated, "wall_s": wall.Seconds(),
				"ttft_ms": percentiles(ttft), "tpot_ms": percentiles(tpot),
				"steps": steps, "mean_batch": float64(after.StepSeqs-before.StepSeqs) / float64(max(steps, 1)),
				"forward_share": fwd.Seconds() / wall.Seconds(), "ms_per_step": fwd.Seconds() * 1000 / float64(max(steps, 1)),
				// On a shared machine wall-clock rates move with the
				// neighbours' load; CPU seconds spent per token move much less.
				"cpu_s": cpuUsed.Seconds(), "tokens_per_cpu_s": float64(generated) / cpuUsed.Seconds(),
				// Memory: the base's weights as held (float32, BF16 or NF4)
				// and the process's peak resident set (VmHWM).
				"weight_bytes": m.WeightBytes(), "peak_rss_bytes": peakRSS(), "kv_dtype": spec.KVType,
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return emitJSON(out, res)
			}
			benchHeader(out, "serve "+name)
			what := "the base model"
			if nAdapters > 0 {
				what = fmt.Sprintf("%d adapters (r=%d on q,k,v,o)", nAdapters, rank)
			}
			fmt.Fprintf(out, "%d requests × %d tokens (prompt %d) over %s, %d concurrent, max batch %d\n",
				requests, maxTokens, promptLen, what, concurrency, maxBatch)
			fmt.Fprintf(out, "aggregate: %.1f tokens/s (%d tokens in %.2f s; %d steps, mean batch %.1f, %.1f ms/step, %.0f%% of the time in forward)\n",
				res["tokens_per_s"], generated, wall.Seconds(), steps, res["mean_batch"], res["ms_per_step"], 100*res["forward_share"].(float64))
			fmt.Fprintf(out, "process CPU: %.1f s (%.1f tokens per CPU-second)\n", cpuUsed.Seconds(), res["tokens_per_cpu_s"])
			fmt.Fprintf(out, "time to first token: %s\n", fmtPercentiles(res["ttft_ms"].(map[string]float64)))
			fmt.Fprintf(out, "per-token latency:   %s\n", fmtPercentiles(res["tpot_ms"].(map[string]float64)))
			fmt.Fprintf(out, "memory: weights %.1f MB, %s KV cache, peak RSS %.1f MB\n", float64(m.WeightBytes())/1e6, spec.KVType, float64(peakRSS())/1e6)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&shape, "shape", "smollm2-135m", "named shape: "+strings.Join(model.ShapeNames(), ", "))
	f.StringVar(&modelPath, "model", "", "a real model folder instead of --shape")
	f.IntVar(&nAdapters, "adapters", 0, "random adapters spread over the requests (0: the base model)")
	f.IntVar(&rank, "rank", 16, "LoRA rank of the random adapters")
	f.IntVar(&concurrency, "concurrency", 64, "requests in flight at once")
	f.IntVar(&requests, "requests", 64, "requests in all")
	f.IntVar(&maxTokens, "max-tokens", 128, "tokens generated per request")
	f.IntVar(&promptLen, "prompt", 16, "prompt tokens per request")
	f.IntVar(&maxBatch, "max-batch", 0, "engine batch limit (default: --concurrency)")
	f.StringVar(&kvCacheDType, "kv-cache-dtype", "auto", kvCacheDTypeUsage)
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

// benchTokenizer is the model's tokenizer, or tiny-brown's for a random
// shape: the engine decodes text for stop strings, and ids outside a
// tokenizer's vocabulary decode to nothing.
func benchTokenizer(modelPath string) (*tokenizer.Tokenizer, error) {
	if modelPath != "" {
		return loadTokenizer(modelPath)
	}
	return loadTokenizerFrom(models.TinyBrown())
}

// processCPU is the user+system CPU time the process has used so far, from
// /proc/self/stat (0 where there is none). Linux counts it in clock ticks
// of 10 ms, plenty for runs of seconds.
func processCPU() time.Duration {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) in ")": state
	// is field 3, utime 14 and stime 15.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// percentiles are p50, p90 and p99 (nearest rank) of xs.
func percentiles(xs []float64) map[string]float64 {
	out := map[string]float64{"p50": 0, "p90": 0, "p99": 0}
	if len(xs) == 0 {
		return out
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	at := func(p float64) float64 { return s[min(len(s)-1, int(p*float64(len(s))))] }
	out["p50"], out["p90"], out["p99"] = at(0.50), at(0.90), at(0.99)
	return out
}

func fmtPercentiles(p map[string]float64) string {
	return fmt.Sprintf("p50 %.1f ms, p90 %.1f ms, p99 %.1f ms", p["p50"], p["p90"], p["p99"])
}
