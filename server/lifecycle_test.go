package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestGracefulShutdown: once shutdown starts, new requests get 503 and
// /readyz says so, while a stream already running finishes normally.
func TestGracefulShutdown(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	resp, first := openStream(t, h, `{"model":"tiny-brown","prompt":"The jury","max_tokens":200,"temperature":1,"seed":1,"stream":true}`)
	defer resp.Body.Close()

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		done <- h.srv.Shutdown(ctx)
	}()
	waitUntil(t, h.eng.Draining)
	if h.eng.Stats().Active != 1 {
		t.Fatal("the stream ended before shutdown began: nothing to drain")
	}
	status, body, hdr := h.post(t, "/v1/completions", "", `{"model":"tiny-brown","prompt":"a","max_tokens":1}`)
	if status != http.StatusServiceUnavailable || errCode(body) != "shutting_down" || hdr.Get("Retry-After") == "" {
		t.Fatalf("request while draining: %d %v", status, body)
	}
	if status, _, _ := h.do(t, "GET", "/readyz", "", nil); status != http.StatusServiceUnavailable {
		t.Fatalf("readyz while draining: %d", status)
	}
	if status, _, _ := h.do(t, "GET", "/healthz", "", nil); status != http.StatusOK {
		t.Fatalf("healthz while draining: %d", status)
	}
	events := append([]string{first}, readEvents(t, resp.Body)...)
	if last := events[len(events)-2]; events[len(events)-1] != "[DONE]" || !strings.Contains(last, `"finish_reason":"length"`) && !strings.Contains(last, `"finish_reason":"stop"`) {
		t.Fatalf("in-flight stream did not finish normally: %v", events[max(0, len(events)-3):])
	}
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// TestShutdownDeadline: a stream still running at the deadline ends with an
// error event (503) and [DONE], not a hang.
func TestShutdownDeadline(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	resp, _ := openStream(t, h, `{"model":"tiny-brown","prompt":"The jury","max_tokens":500,"stream":true,"temperature":1}`)
	defer resp.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := h.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("shutdown: %v", err)
	}
	events := readEvents(t, resp.Body)
	if len(events) < 2 || events[len(events)-1] != "[DONE]" || !strings.Contains(events[len(events)-2], "shutting_down") {
		t.Fatalf("stream at the deadline: %v", events[max(0, len(events)-2):])
	}
}

// TestMetricsAndIDs: /metrics carries the request, token, latency, batch
// and adapter series; every response carries its request id. The requests
// are greedy, so that none can end early on a sampled EOS and the token
// counts below are exact.
func TestMetricsAndIDs(t *testing.T) {
	h := newHarness(t, harnessOpts{adapters: 2, maxLoaded: 1})
	for _, m := range []string{"a0", "a1", "a0", "tiny-brown"} {
		if status, body, _ := h.post(t, "/v1/completions", "", map[string]any{"model": m, "prompt": "The", "max_tokens": 3, "temperature": 0}); status != 200 {
			t.Fatalf("%s: %d %v", m, status, body)
		}
	}
	h.post(t, "/v1/completions", "", map[string]any{"model": "made-up", "prompt": "The"})
	req, _ := http.NewRequest("GET", h.ts.URL+"/metrics", nil)
	req.Header.Set("X-Request-Id", "my-id-1")
	resp, err := h.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("X-Request-Id") != "my-id-1" {
		t.Fatalf("request id not echoed: %q", resp.Header.Get("X-Request-Id"))
	}
	b, _ := io.ReadAll(resp.Body)
	text := string(b)
	for _, want := range []string{
		`lorakit_http_requests_total{endpoint="/v1/completions",model="a0",status="200"} 2`,
		`lorakit_http_requests_total{endpoint="/v1/completions",model="-",status="404"} 1`,
		`lorakit_prompt_tokens_total{adapter="a1"}`,
		`lorakit_generation_tokens_total{adapter="base"} 3`,
		`lorakit_time_to_first_token_seconds_count 4`,
		`lorakit_inter_token_latency_seconds_count 8`,
		`lorakit_batch_size_bucket`,
		`lorakit_queue_depth 0`,
		`lorakit_adapter_loads_total 3`,
		`lorakit_adapter_evictions_total 2`,
		`lorakit_adapter_cache_hits_total 0`,
		`lorakit_adapters_loaded 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(text, "made-up") {
		t.Error("an unknown model name became a metric label")
	}
}

// TestChatStopsAtEndOfTurn: chat generation stops at the template's end of
// turn token as well as at EOS.
func TestChatStopsAtEndOfTurn(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	imEnd, _ := h.tok.TokenToID("<|im_end|>")
	if !slices.Contains(h.srv.chatEOS, imEnd) || !slices.Contains(h.srv.chatEOS, 0) {
		t.Fatalf("chat EOS %v lacks <|im_end|> (%d) or EOS", h.srv.chatEOS, imEnd)
	}
	ids, e := h.srv.encodeChat(nil)
	if e != nil || len(ids) == 0 || ids[0] != 0 {
		t.Fatalf("chat prompt without <bos>: %v %v", ids, e)
	}
}

// openStream starts a streaming request and reads its first event.
func openStream(t *testing.T, h *harness, body string) (*http.Response, string) {
	t.Helper()
	resp, err := h.ts.Client().Post(h.ts.URL+"/v1/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("stream: %d %s", resp.StatusCode, b)
	}
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{br, resp.Body}
	return resp, strings.TrimPrefix(strings.TrimSpace(line), "data: ")
}

// readEvents reads SSE data payloads to the end of the stream.
func readEvents(t *testing.T, r io.Reader) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			if d != "[DONE]" && !json.Valid([]byte(d)) {
				t.Fatalf("invalid event %q", d)
			}
			out = append(out, d)
		}
	}
	return out
}
