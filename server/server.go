// Package server is lorakit's OpenAI-compatible HTTP API over the engine:
// completions and chat completions (streaming or not) for the base model
// and every adapter, the model list, an admin API to load and unload
// adapters, Prometheus metrics and health checks.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lorakit/lorakit/chat"
	"github.com/lorakit/lorakit/engine"
	"github.com/lorakit/lorakit/sample"
	"github.com/lorakit/lorakit/server/openai"
	"github.com/lorakit/lorakit/tokenizer"
)

// Config wires a server to its engine.
type Config struct {
	Engine    *engine.Engine
	Registry  *engine.Registry // nil: the base model only
	Tokenizer *tokenizer.Tokenizer
	// BaseName is the base model's name in requests and /v1/models.
	BaseName string
	// BOS is prepended to prompts (-1: none; set it only when the
	// tokenizer does not add one itself): <bos> exactly once, as in
	// training (DESIGN.md §4).
	BOS int
	// EOS ids end generation.
	EOS []int
	// ChatTemplate overrides the tokenizer's chat template; with neither,
	// ChatML.
	ChatTemplate string
	// Defaults apply to sampling fields a request leaves out.
	Defaults sample.Params
	// APIKeys accepted as "Authorization: Bearer KEY" on the inference API;
	// empty: no key needed. AdminKeys guard the admin API (and are accepted
	// on the inference API too); empty: the admin API is disabled.
	APIKeys, AdminKeys []string
	// MaxBodyBytes bounds request bodies (default 4 MiB).
	MaxBodyBytes int64
	Logger       *slog.Logger
	// Metrics is where the HTTP series are registered and what /metrics
	// serves (register the engine's there too). Nil: a private registry.
	Metrics *prometheus.Registry
}

// Server is the HTTP API.
type Server struct {
	cfg      Config
	tmpl     *chat.Template
	tmplVars map[string]any
	bosText  string // text of the <bos> the template may write itself
	chatEOS  []int  // EOS plus the end-of-turn tokens chat templates close turns with
	log      *slog.Logger
	met      *httpMetrics
	handler  http.Handler
	draining atomic.Bool
	reqNum   atomic.Uint64
	started  int64
}

// New checks the configuration and builds the routes.
func New(cfg Config) (*Server, error) {
	if cfg.Engine == nil || cfg.Tokenizer == nil {
		return nil, errors.New("server: an engine and a tokenizer are required")
	}
	if cfg.BaseName == "" {
		return nil, errors.New("server: the base model needs a name")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 4 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	if err := cfg.Defaults.Validate(); err != nil {
		return nil, fmt.Errorf("server: default sampling: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, started: time.Now().Unix()}
	if err := s.initChat(); err != nil {
		return nil, err
	}
	s.met = newHTTPMetrics(cfg.Metrics)
	s.handler = s.routes()
	return s, nil
}

// Handler is the server's http.Handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Shutdown stops accepting inference requests (503) and marks the server not
// ready, then lets the engine finish what is in flight until ctx ends.
// Shut the http.Server down alongside, so that open streams can complete.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	return s.cfg.Engine.Shutdown(ctx)
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	table := map[string]map[string]http.HandlerFunc{
		"/v1/completions":      {"POST": s.auth(false, s.handleCompletions)},
		"/v1/chat/completions": {"POST": s.auth(false, s.handleChat)},
		"/v1/models":           {"GET": s.auth(false, s.handleModels)},
		"/v1/models/{id}":      {"GET": s.auth(false, s.handleModel)},
		"/v1/adapters":         {"GET": s.auth(true, s.handleAdapterList), "POST": s.auth(true, s.handleAdapterLoad)},
		"/v1/adapters/{name}":  {"DELETE": s.auth(true, s.handleAdapterUnload)},
		"/healthz":             {"GET": s.handleHealth},
		"/readyz":              {"GET": s.handleReady},
		"/metrics":             {"GET": promhttp.HandlerFor(s.cfg.Metrics, promhttp.HandlerOpts{}).ServeHTTP},
	}
	for path, methods := range table {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			h, ok := methods[r.Method]
			if !ok && r.Method == http.MethodHead {
				h, ok = methods[http.MethodGet]
			}
			if !ok {
				var allow []string
				for m := range methods {
					allow = append(allow, m)
				}
				sort.Strings(allow)
				w.Header().Set("Allow", strings.Join(allow, ", "))
				s.writeError(w, r, &openai.Error{Status: http.StatusMethodNotAllowed, Type: openai.TypeInvalidRequest,
					Message: fmt.Sprintf("%s is not allowed on %s", r.Method, r.URL.Path)})
				return
			}
			h(w, r)
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, &openai.Error{Status: http.StatusNotFound, Type: openai.TypeNotFound, Code: "unknown_url",
			Message: fmt.Sprintf("unknown endpoint %s %s", r.Method, r.URL.Path)})
	})
	return s.middleware(mux)
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() || s.cfg.Engine.Draining() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "shutting down"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
