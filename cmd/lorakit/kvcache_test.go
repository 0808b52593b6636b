package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/lorakit/lorakit/internal/testutil"
)

// TestKVCacheDTypeFlag: --kv-cache-dtype reaches generate's cache (q8_0's
// greedy text is float32's on a README prompt; an unknown name is an
// error naming the choices) and bench serve's engine (its JSON reports
// the cache type).
func TestKVCacheDTypeFlag(t *testing.T) {
	tiny := testutil.Path("models", "tiny-brown")
	gen := func(dt string) string {
		return run(t, "generate", "--model", tiny, "--prompt", "She looked at him and", "--max-tokens", "32", "--temperature", "0", "--kv-cache-dtype", dt)
	}
	if f32, q8 := gen("f32"), gen("q8_0"); q8 != f32 {
		t.Errorf("greedy with a q8_0 cache:\n%q\nwith f32:\n%q", q8, f32)
	}
	cmd := newRoot()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs([]string{"generate", "--model", tiny, "--prompt", "x", "--max-tokens", "1", "--kv-cache-dtype", "q4_0"})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "q8_0") {
		t.Errorf("--kv-cache-dtype q4_0: %v, want an error listing the choices", err)
	}
	for dt, want := range map[string]string{"q8_0": "Q8_0", "auto": "F32", "bf16": "BF16"} {
		js := run(t, "bench", "serve", "--model", tiny, "--requests", "2", "--concurrency", "2", "--max-tokens", "3", "--prompt", "8", "--kv-cache-dtype", dt, "--json")
		var res struct {
			KVDType         string `json:"kv_dtype"`
			GeneratedTokens int    `json:"generated_tokens"`
		}
		if err := json.Unmarshal([]byte(js), &res); err != nil {
			t.Fatalf("%v: %q", err, js)
		}
		if res.KVDType != want || res.GeneratedTokens != 6 {
			t.Errorf("bench serve --kv-cache-dtype %s: kv_dtype %q, %d tokens; want %q, 6", dt, res.KVDType, res.GeneratedTokens, want)
		}
	}
}
