package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lorakit/lorakit/engine"
	"github.com/lorakit/lorakit/lora"
	"github.com/lorakit/lorakit/model/llama"
	"github.com/lorakit/lorakit/models"
	"github.com/lorakit/lorakit/tokenizer"
)

const baseName = "tiny-brown"

// harness is a server over the embedded tiny-brown model and a directory
// of adapters, on a loopback httptest server.
type harness struct {
	m    *llama.Model
	tok  *tokenizer.Tokenizer
	dir  string
	reg  *engine.Registry
	eng  *engine.Engine
	srv  *Server
	ts   *httptest.Server
	prom *prometheus.Registry
}

type harnessOpts struct {
	adapters  int // random adapters written to the directory as a0, a1, ...
	rank      int
	engine    engine.Config
	maxLoaded int
	apiKeys   []string
	adminKeys []string
}

func loadTinyBrown(t testing.TB) (*llama.Model, *tokenizer.Tokenizer) {
	t.Helper()
	src := models.TinyBrown()
	m, err := llama.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	tj, _ := src.ReadFile("tokenizer.json")
	tc, _ := src.ReadFile("tokenizer_config.json")
	tok, err := tokenizer.Parse(tj, tc)
	if err != nil {
		t.Fatal(err)
	}
	return m, tok
}

func newHarness(t *testing.T, o harnessOpts) *harness {
	t.Helper()
	m, tok := loadTinyBrown(t)
	h := &harness{m: m, tok: tok, dir: t.TempDir(), prom: prometheus.NewRegistry()}
	if o.rank == 0 {
		o.rank = 4
	}
	for i := 0; i < o.adapters; i++ {
		a, err := engine.RandomAdapter(m, o.rank, lora.Attention, uint64(i+1), 0.05)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Save(filepath.Join(h.dir, fmt.Sprint("a", i))); err != nil {
			t.Fatal(err)
		}
	}
	met := engine.NewMetrics(h.prom)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() && os.Getenv("LORAKIT_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	var err error
	h.reg, err = engine.NewRegistry(engine.RegistryConfig{Dir: h.dir, MaxLoaded: max(o.maxLoaded, 1), Base: m, Reserved: []string{baseName}, Metrics: met, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	ec := o.engine
	ec.Metrics, ec.Logger = met, logger
	h.eng, err = engine.New(m, engine.SpecOf(m), tok, ec)
	if err != nil {
		t.Fatal(err)
	}
	h.srv, err = New(Config{Engine: h.eng, Registry: h.reg, Tokenizer: tok, BaseName: baseName, BOS: 0, EOS: []int{0},
		APIKeys: o.apiKeys, AdminKeys: o.adminKeys, Logger: logger, Metrics: h.prom})
	if err != nil {
		t.Fatal(err)
	}
	h.ts = httptest.NewServer(h.srv.Handler())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		h.srv.Shutdown(ctx)
		h.ts.Close()
	})
	return h
}

// encodePrompt tokenizes as `lorakit generate` does: <bos> then the text.
func (h *harness) encodePrompt(text string) []int {
	return append([]int{0}, h.tok.Encode(text, true)...)
}

// post sends a JSON body (a string is sent as is) and decodes the JSON answer.
func (h *harness) post(t testing.TB, path, key string, body any) (int, map[string]any, http.Header) {
	t.Helper()
	return h.do(t, "POST", path, key, body)
}

func (h *harness) do(t testing.TB, method, path, key string, body any) (int, map[string]any, http.Header) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewReader([]byte(b))
	case []byte:
		rd = bytes.NewReader(b)
	default:
		js, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, h.ts.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := h.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 && raw[0] == '{' {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: bad JSON %q: %v", method, path, raw, err)
		}
	} else {
		out = map[string]any{"raw": string(raw)}
	}
	return resp.StatusCode, out, resp.Header
}

// errCode digs error.code out of an error body.
func errCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}
