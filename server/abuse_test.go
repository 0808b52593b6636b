package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lorakit/lorakit/engine"
)

// TestAbuseStatuses: malformed and hostile requests get the right status
// and OpenAI's error shape, never a panic.
func TestAbuseStatuses(t *testing.T) {
	h := newHarness(t, harnessOpts{adapters: 1, maxLoaded: 2, apiKeys: []string{"user-key"}, adminKeys: []string{"admin-key"},
		engine: engine.Config{ContextLen: 64}})
	const key = "user-key"
	long := strings.Repeat("the jury said that ", 40) // > 64 tokens
	cases := []struct {
		name   string
		method string
		path   string
		key    string
		body   any
		status int
		code   string
	}{
		{"malformed JSON", "POST", "/v1/completions", key, `{"model": "tiny-brown", "prompt": `, 400, ""},
		{"not an object", "POST", "/v1/completions", key, `[1, 2]`, 400, ""},
		{"empty body", "POST", "/v1/completions", key, ``, 400, ""},
		{"two objects", "POST", "/v1/completions", key, `{"model":"tiny-brown","prompt":"a"} {}`, 400, ""},
		{"unknown field", "POST", "/v1/completions", key, `{"model":"tiny-brown","prompt":"a","max_tokenz":3}`, 400, ""},
		{"unknown chat field", "POST", "/v1/chat/completions", key, `{"model":"tiny-brown","messages":[{"role":"user","content":"hi","extra":1}]}`, 400, ""},
		{"wrong type", "POST", "/v1/completions", key, `{"model":"tiny-brown","prompt":"a","max_tokens":"3"}`, 400, ""},
		{"huge max_tokens", "POST", "/v1/completions", key, `{"model":"tiny-brown","prompt":"a","max_tokens":1000000000000}`, 400, "context_length_exceeded"},
		{"max_tokens overflow", "POST", "/v1/completions", key, `{"model":"tiny-brown","prompt":"a","max_tokens":1e400}`, 400, ""},
		{"zero max_tokens", "POST", "/v1/completions", key, `{"model":"tiny-brown","prompt":"a","max_tokens":0}`, 400, ""},
		{"prompt over context", "POST", "/v1/completions", key, map[string]any{"model": "tiny-brown", "prompt": long, "max_tokens": 1}, 400, "context_length_exceeded"},
		{"chat over context", "POST", "/v1/chat/completions", key, map[string]any{"model": "tiny-brown", "messages": []any{map[string]any{"role": "user", "content": long}}}, 400, "context_length_exceeded"},
		{"token ids outside vocab", "POST", "/v1/completions", key, `{"model":"tiny-brown","prompt":[1, 99999999],"max_tokens":1}`, 400, ""},
		{"negative token id", "POST", "/v1/completions", key, `{"model":"tiny-brown","prompt":[-1],"max_tokens":1}`, 400, ""},
		{"n=2", "POST", "/v1/completions", key, `{"model":"tiny-brown","prompt":"a","n":2}`, 400, ""},
		{"temperature 5", "POST", "/v1/completions", key, `{"model":"tiny-brown","prompt":"a","temperature":5}`, 400, ""},
		{"bad role", "POST", "/v1/chat/completions", key, `{"model":"tiny-brown","messages":[{"role":"wizard","content":"hi"}]}`, 400, ""},
		{"no messages", "POST", "/v1/chat/completions", key, `{"model":"tiny-brown","messages":[]}`, 400, ""},
		{"image content", "POST", "/v1/chat/completions", key, `{"model":"tiny-brown","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}`, 400, ""},
		{"missing model", "POST", "/v1/completions", key, `{"prompt":"a"}`, 400, ""},
		{"unknown model", "POST", "/v1/completions", key, `{"model":"nope","prompt":"a"}`, 404, "model_not_found"},
		{"traversal model", "POST", "/v1/completions", key, `{"model":"../../../etc/passwd","prompt":"a"}`, 404, "model_not_found"},
		{"dotdot model", "POST", "/v1/completions", key, `{"model":"..","prompt":"a"}`, 404, "model_not_found"},
		{"body too large", "POST", "/v1/completions", key, `{"model":"tiny-brown","prompt":"` + strings.Repeat("a", 5<<20) + `"}`, 413, "request_too_large"},
		{"no key", "POST", "/v1/completions", "", `{"model":"tiny-brown","prompt":"a"}`, 401, "invalid_api_key"},
		{"wrong key", "POST", "/v1/completions", "guess", `{"model":"tiny-brown","prompt":"a"}`, 401, "invalid_api_key"},
		{"wrong key models", "GET", "/v1/models", "guess", nil, 401, "invalid_api_key"},
		{"admin without key", "POST", "/v1/adapters", "", `{"name":"x"}`, 401, "invalid_api_key"},
		{"admin with user key", "POST", "/v1/adapters", key, `{"name":"x"}`, 403, "admin_key_required"},
		{"admin wrong key", "DELETE", "/v1/adapters/a0", "guess", nil, 401, "invalid_api_key"},
		{"admin traversal name", "POST", "/v1/adapters", "admin-key", `{"name":"../../etc","path":"a0"}`, 400, "invalid_name"},
		{"admin dotdot name", "POST", "/v1/adapters", "admin-key", `{"name":"..","path":"a0"}`, 400, "invalid_name"},
		{"admin slash name", "POST", "/v1/adapters", "admin-key", `{"name":"a/b","path":"a0"}`, 400, "invalid_name"},
		{"admin base name", "POST", "/v1/adapters", "admin-key", `{"name":"tiny-brown","path":"a0"}`, 400, ""},
		{"admin traversal path", "POST", "/v1/adapters", "admin-key", `{"name":"x","path":"../"}`, 403, "path_outside_dir"},
		{"admin absolute path", "POST", "/v1/adapters", "admin-key", `{"name":"x","path":"/etc"}`, 403, "path_outside_dir"},
		{"admin missing path", "POST", "/v1/adapters", "admin-key", `{"name":"x","path":"nothing-here"}`, 404, "model_not_found"},
		{"admin not an adapter", "POST", "/v1/adapters", "admin-key", `{"name":"x","path":"."}`, 400, "adapter_invalid"},
		{"admin unknown field", "POST", "/v1/adapters", "admin-key", `{"name":"x","path":"a0","force":true}`, 400, ""},
		{"admin delete traversal", "DELETE", "/v1/adapters/..%2F..%2Fetc", "admin-key", nil, 400, "invalid_name"},
		{"admin delete unknown", "DELETE", "/v1/adapters/ghost", "admin-key", nil, 404, "model_not_found"},
		{"wrong method", "GET", "/v1/completions", key, nil, 405, ""},
		{"unknown path", "GET", "/v2/anything", key, nil, 404, "unknown_url"},
	}
	for _, c := range cases {
		status, body, hdr := h.do(t, c.method, c.path, c.key, c.body)
		if status != c.status {
			t.Errorf("%s: status %d, want %d (%v)", c.name, status, c.status, body)
			continue
		}
		e, ok := body["error"].(map[string]any)
		if !ok || e["message"] == "" || e["type"] == "" {
			t.Errorf("%s: not OpenAI's error shape: %v", c.name, body)
			continue
		}
		if c.code != "" && errCode(body) != c.code {
			t.Errorf("%s: code %q, want %q (%v)", c.name, errCode(body), c.code, body)
		}
		if status == 401 && hdr.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", c.name)
		}
	}
	// And the server still works, for the base and the adapter.
	for _, model := range []string{"tiny-brown", "a0"} {
		if status, body, _ := h.post(t, "/v1/completions", key, map[string]any{"model": model, "prompt": "The", "max_tokens": 3}); status != 200 {
			t.Fatalf("%s after abuse: %d %v", model, status, body)
		}
	}
	// Admin: load under a new name, use it, unload it.
	if status, body, _ := h.post(t, "/v1/adapters", "admin-key", map[string]any{"name": "alias", "path": "a0"}); status != 200 || body["loaded"] != true {
		t.Fatalf("admin load: %d %v", status, body)
	}
	if status, body, _ := h.post(t, "/v1/completions", key, map[string]any{"model": "alias", "prompt": "The", "max_tokens": 2}); status != 200 {
		t.Fatalf("alias: %d %v", status, body)
	}
	if status, body, _ := h.do(t, "DELETE", "/v1/adapters/alias", "admin-key", nil); status != 200 || body["deleted"] != true {
		t.Fatalf("admin unload: %d %v", status, body)
	}
	if status, _, _ := h.post(t, "/v1/completions", key, map[string]any{"model": "alias", "prompt": "The", "max_tokens": 2}); status != 404 {
		t.Fatalf("alias after unload: %d", status)
	}
}

// TestQueueFullStatus: beyond the queue, 429 with Retry-After.
func TestQueueFullStatus(t *testing.T) {
	h := newHarness(t, harnessOpts{engine: engine.Config{MaxBatch: 1, MaxQueue: 1}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Two long streams: one runs, one waits; a third request overflows.
	for i := 0; i < 2; i++ {
		req, _ := http.NewRequestWithContext(ctx, "POST", h.ts.URL+"/v1/completions",
			strings.NewReader(`{"model":"tiny-brown","prompt":"The","max_tokens":400,"stream":true}`))
		resp, err := h.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
	}
	waitUntil(t, func() bool { s := h.eng.Stats(); return s.Active == 1 && s.Queued == 1 })
	status, body, hdr := h.post(t, "/v1/completions", "", `{"model":"tiny-brown","prompt":"a","max_tokens":1}`)
	if status != 429 || hdr.Get("Retry-After") == "" || errCode(body) != "queue_full" {
		t.Fatalf("overflow: %d %v Retry-After=%q", status, body, hdr.Get("Retry-After"))
	}
}

// TestDisconnects: 1,000 requests, streaming or not, whose clients give up
// at random moments. The server keeps answering correctly, every slot is
// freed, and afterwards no goroutine is left and the heap is back to idle.
func TestDisconnects(t *testing.T) {
	h := newHarness(t, harnessOpts{adapters: 4, maxLoaded: 4, engine: engine.Config{MaxBatch: 16, MaxQueue: 64}})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	// Warm up (model buffers, adapters, connections) before the baseline.
	for i := 0; i < 4; i++ {
		if status, body, _ := h.post(t, "/v1/completions", "", map[string]any{"model": fmt.Sprint("a", i), "prompt": "The", "max_tokens": 4}); status != 200 {
			t.Fatalf("warm-up: %d %v", status, body)
		}
	}
	client.CloseIdleConnections()
	h.ts.Client().CloseIdleConnections()
	baseGoroutines := settledGoroutines(0, 0)
	baseHeap := heapInUse()

	const total, workers = 1000, 32
	var next, ok200, ok429, cut atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			for {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				model := "tiny-brown"
				if k := rng.IntN(5); k < 4 {
					model = fmt.Sprint("a", k)
				}
				stream := rng.IntN(2) == 0
				body, _ := json.Marshal(map[string]any{"model": model, "prompt": "The jury said", "max_tokens": 1 + rng.IntN(40),
					"stream": stream, "temperature": 0.7, "seed": i})
				ctx, cancel := context.WithCancel(context.Background())
				// Most clients give up at a random moment; some wait.
				if rng.IntN(4) != 0 {
					time.AfterFunc(time.Duration(rng.IntN(30000))*time.Microsecond, cancel)
				}
				req, _ := http.NewRequestWithContext(ctx, "POST", h.ts.URL+"/v1/completions", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					cut.Add(1)
					cancel()
					continue
				}
				switch resp.StatusCode {
				case 200:
					if stream && rng.IntN(2) == 0 {
						// Read one event, then hang up mid-stream.
						bufio.NewReader(resp.Body).ReadString('\n')
						resp.Body.Close()
						cancel()
						cut.Add(1)
						continue
					}
					if _, err := io.ReadAll(resp.Body); err != nil {
						cut.Add(1)
					} else {
						ok200.Add(1)
					}
				case 429:
					ok429.Add(1)
					io.ReadAll(resp.Body)
				default:
					b, _ := io.ReadAll(resp.Body)
					t.Errorf("request %d: status %d %s", i, resp.StatusCode, b)
				}
				resp.Body.Close()
				cancel()
			}
		}()
	}
	wg.Wait()
	t.Logf("%d complete, %d refused (429), %d cut off by their client", ok200.Load(), ok429.Load(), cut.Load())
	if ok200.Load() == 0 || cut.Load() == 0 {
		t.Fatal("the mix did not exercise both completions and disconnects")
	}
	waitUntil(t, func() bool { s := h.eng.Stats(); return s.Active == 0 && s.Queued == 0 && s.KVReserved == 0 })

	// Still serving.
	if status, body, _ := h.post(t, "/v1/completions", "", map[string]any{"model": "a1", "prompt": "The", "max_tokens": 3}); status != 200 {
		t.Fatalf("after the storm: %d %v", status, body)
	}
	client.CloseIdleConnections()
	h.ts.Client().CloseIdleConnections()
	if n := settledGoroutines(baseGoroutines, 10*time.Second); n > baseGoroutines {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines after, %d before:\n%s", n, baseGoroutines, buf[:runtime.Stack(buf, true)])
	}
	if heap := heapInUse(); heap > baseHeap+16<<20 {
		t.Fatalf("heap in use %d MB after, %d MB idle before", heap>>20, baseHeap>>20)
	} else {
		t.Logf("heap in use: %.1f MB idle before, %.1f MB after", float64(baseHeap)/(1<<20), float64(heap)/(1<<20))
	}
}

// settledGoroutines waits (up to wait) for the goroutine count to drop to
// target and returns the last count; with wait 0 it samples until stable.
func settledGoroutines(target int, wait time.Duration) int {
	n := runtime.NumGoroutine()
	if wait == 0 {
		for i := 0; i < 20; i++ {
			time.Sleep(20 * time.Millisecond)
			m := runtime.NumGoroutine()
			if m == n {
				return n
			}
			n = m
		}
		return n
	}
	for deadline := time.Now().Add(wait); n > target && time.Now().Before(deadline); n = runtime.NumGoroutine() {
		time.Sleep(20 * time.Millisecond)
	}
	return n
}

func heapInUse() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting")
		}
	}
}
