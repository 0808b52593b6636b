package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/lorakit/lorakit/engine"
	"github.com/lorakit/lorakit/models"
	"github.com/lorakit/lorakit/sample"
	"github.com/lorakit/lorakit/server"
)

func newServeCmd() *cobra.Command {
	var (
		modelPath, adaptersDir, addr, name    string
		maxLoaded, maxBatch, maxQueue, ctxLen int
		maxStepTokens, kvBudgetMB             int
		kvCacheDType                          string
		apiKeys, adminKeys                    []string
		allowOutside                          bool
		shutdownTimeout                       time.Duration
	)
	cmd := &cobra.Command{
		Use:   "serve --model M --adapters DIR",
		Short: "Serve the base model and every adapter in DIR over an OpenAI-compatible HTTP API, batched across adapters",
		Long: `serve loads the base model once and serves it and the PEFT adapters found in
--adapters (one per subfolder, named after it) over an OpenAI-compatible API:
POST /v1/completions, POST /v1/chat/completions (streaming or not), GET /v1/models,
with "model" naming the base model or an adapter. Adapters load on first use and
stay in an LRU of --max-loaded; requests for different adapters share each
forward pass. Admin API (with --admin-key): POST /v1/adapters {"name","path"},
DELETE /v1/adapters/{name}. Also /metrics (Prometheus), /healthz, /readyz.
SIGTERM or SIGINT stops accepting and drains in-flight requests.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			servingGC()
			level := slog.LevelInfo
			if v, _ := cmd.Flags().GetBool("verbose"); v {
				level = slog.LevelDebug
			}
			logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			lm, err := loadModel(modelPath)
			if err != nil {
				return err
			}
			if name == "" {
				name = baseModelName(modelPath)
			}
			prom := prometheus.NewRegistry()
			prom.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			met := engine.NewMetrics(prom)
			var reg *engine.Registry
			if adaptersDir != "" {
				reg, err = engine.NewRegistry(engine.RegistryConfig{Dir: adaptersDir, MaxLoaded: maxLoaded, Base: lm.Model,
					Reserved: []string{name}, AllowOutsideDir: allowOutside, Metrics: met, Logger: logger})
				if err != nil {
					return err
				}
			}
			// The KV cache takes the weights' 16-bit type when they have
			// one (engine.KVType), halving its memory, unless
			// --kv-cache-dtype says otherwise (q8_0: about half again).
			spec := engine.SpecOf(lm.Model)
			if spec.KVType, err = engine.ParseKVCacheDType(kvCacheDType, lm.Model); err != nil {
				return fmt.Errorf("--kv-cache-dtype: %w", err)
			}
			eng, err := engine.New(lm.Model, spec, lm.Tok, engine.Config{
				MaxBatch: maxBatch, MaxQueue: maxQueue, MaxStepTokens: maxStepTokens, ContextLen: ctxLen,
				KVBudget: int64(kvBudgetMB) << 20, Metrics: met, Logger: logger,
			})
			if err != nil {
				return err
			}
			srv, err := server.New(server.Config{
				Engine: eng, Registry: reg, Tokenizer: lm.Tok, BaseName: name, BOS: lm.bosID(), EOS: lm.eosIDs(),
				Defaults: servingDefaults(lm), APIKeys: apiKeys, AdminKeys: adminKeys, Logger: logger, Metrics: prom,
			})
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
				ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			served := make(chan error, 1)
			go func() { served <- hs.Serve(ln) }()
			nAdapters := 0
			if reg != nil {
				infos, _ := reg.List()
				nAdapters = len(infos)
			}
			logger.Info("serving", "addr", ln.Addr().String(), "model", name, "adapters", nAdapters, "adapters_dir", adaptersDir,
				"context", eng.ContextLen(), "kv_cache", spec.KVType, "max_batch", maxBatch, "max_loaded", maxLoaded, "auth", len(apiKeys) > 0, "admin", len(adminKeys) > 0)
			select {
			case err := <-served:
				return err
			case <-ctx.Done():
			}
			stop()
			logger.Info("shutting down: draining in-flight requests", "timeout", shutdownTimeout)
			dctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			// The engine drains (new requests get 503) while the HTTP server
			// stops accepting and waits for open requests, streams included.
			drained := make(chan error, 1)
			go func() { drained <- srv.Shutdown(dctx) }()
			err = hs.Shutdown(dctx)
			if errors.Is(err, context.DeadlineExceeded) {
				hs.Close()
			}
			if derr := <-drained; derr != nil {
				logger.Warn("shutdown deadline passed: requests still running were ended", "err", derr)
			}
			logger.Info("stopped")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&modelPath, "model", "", "base model folder (default: the embedded tiny-brown)")
	f.StringVar(&adaptersDir, "adapters", "", "directory with one PEFT adapter per subfolder")
	f.StringVar(&addr, "addr", "127.0.0.1:8080", "listen address")
	f.StringVar(&name, "name", "", "the base model's name in requests (default: the model folder's name)")
	f.IntVar(&maxLoaded, "max-loaded", 64, "adapters held in memory at most (LRU)")
	f.IntVar(&maxBatch, "max-batch", 64, "sequences per forward step at most")
	f.IntVar(&maxQueue, "max-queue", 256, "requests waiting for a slot at most (then 429)")
	f.IntVar(&ctxLen, "ctx", 0, "context length: prompt + max_tokens at most (default: the model's)")
	f.IntVar(&maxStepTokens, "max-step-tokens", 0, "tokens per forward step at most, prefill chunks included (default: max(512, 2·max-batch))")
	f.IntVar(&kvBudgetMB, "kv-budget-mb", 0, "KV cache memory budget in MiB (default: max-batch full contexts, at most 4096)")
	f.StringVar(&kvCacheDType, "kv-cache-dtype", "auto", kvCacheDTypeUsage)
	f.StringArrayVar(&apiKeys, "api-key", nil, "accepted API key (repeatable; none: no key needed)")
	f.StringArrayVar(&adminKeys, "admin-key", nil, "admin API key (repeatable; none: admin API disabled)")
	f.BoolVar(&allowOutside, "allow-outside-dir", false, "let the admin API load adapters from paths outside --adapters")
	f.DurationVar(&shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long in-flight requests may take to finish on SIGTERM")
	return cmd
}

// kvCacheDTypeUsage describes --kv-cache-dtype (serve, bench serve, generate).
const kvCacheDTypeUsage = "KV cache element type: auto (the weights' 16-bit type, else f32), f32, bf16, f16 or q8_0 (llama.cpp's 8-bit blocks: 1.06 bytes a value; needs a head dim that is a multiple of 32)"

// baseModelName is how clients name the base model: the folder's name, or
// the embedded model's.
func baseModelName(path string) string {
	if path == "" || path == models.DefaultName {
		if _, err := os.Stat(path); path == "" || err != nil {
			return models.DefaultName
		}
	}
	if filepath.Ext(path) == ".safetensors" {
		path = filepath.Dir(path)
	}
	return filepath.Base(filepath.Clean(path))
}

// servingDefaults are the sampling parameters for fields a request leaves
// out: generation_config.json's when the model samples (as vLLM does), else
// OpenAI's default temperature of 1.
func servingDefaults(lm *loadedModel) sample.Params {
	p := sample.Params{Temperature: 1}
	if g := lm.Gen; g.DoSample {
		p = sample.Params{Temperature: float32(g.Temperature), TopK: g.TopK, TopP: float32(g.TopP),
			MinP: float32(g.MinP), RepetitionPenalty: float32(g.RepetitionPenalty)}
	}
	if p.Validate() != nil {
		fmt.Fprintln(os.Stderr, "lorakit: generation_config.json's sampling parameters are out of range; using temperature 1")
		p = sample.Params{Temperature: 1}
	}
	return p
}
