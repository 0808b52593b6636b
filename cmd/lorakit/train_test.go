package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lorakit/lorakit/internal/testutil"
)

// TestMain lets a test re-run this binary as the lorakit CLI in a child
// process (LORAKIT_CHILD_ARGS holds the arguments as JSON), so a test can
// SIGKILL a real training run.
func TestMain(m *testing.M) {
	if args := os.Getenv("LORAKIT_CHILD_ARGS"); args != "" {
		var a []string
		if err := json.Unmarshal([]byte(args), &a); err != nil {
			os.Exit(3)
		}
		cmd := newRoot()
		cmd.SetArgs(a)
		if err := cmd.Execute(); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// smallData writes the first n lines of a Brown file to a temp JSONL.
func smallData(t *testing.T, name string, n int) string {
	t.Helper()
	f, err := os.Open(testutil.Path("datasets", "brown", name+".jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var buf bytes.Buffer
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for i := 0; i < n && sc.Scan(); i++ {
		buf.Write(sc.Bytes())
		buf.WriteByte('\n')
	}
	p := filepath.Join(t.TempDir(), name+".jsonl")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTrainKillResumeBitwise kills a training run with SIGKILL between
// checkpoints, resumes it with --resume, and requires the final adapter to be
// bitwise identical to an uninterrupted run with the same seed.
func TestTrainKillResumeBitwise(t *testing.T) {
	data := smallData(t, "h_train", 48)
	common := []string{"train", "--data", data, "--steps", "30", "--save-every", "5", "--batch-size", "2",
		"--seq-len", "96", "--rank", "4", "--dropout", "0.1", "--seed", "7", "--val-size", "4", "--eval-every", "10"}
	dirA := filepath.Join(t.TempDir(), "a")
	run(t, append(common, "--out", dirA)...)

	dirB := filepath.Join(t.TempDir(), "b")
	args, _ := json.Marshal(append(common, "--out", dirB))
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), "LORAKIT_CHILD_ARGS="+string(args))
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := os.Stat(filepath.Join(dirB, "checkpoint-10", "trainer_state.json")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			child.Process.Kill()
			t.Fatal("no checkpoint-10 within 2 minutes")
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	if _, err := os.Stat(filepath.Join(dirB, "adapter_model.safetensors")); err == nil {
		t.Fatal("the run finished before it was killed; the test needs a slower run")
	}
	out := run(t, append(common, "--out", dirB, "--resume")...)
	if !strings.Contains(out, "done:") {
		t.Fatalf("resume output: %s", out)
	}
	a, _ := os.ReadFile(filepath.Join(dirA, "adapter_model.safetensors"))
	b, _ := os.ReadFile(filepath.Join(dirB, "adapter_model.safetensors"))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Fatalf("resumed adapter differs from the uninterrupted run (%d vs %d bytes)", len(a), len(b))
	}
	// metrics.jsonl has each step exactly once after the resume.
	mb, _ := os.ReadFile(filepath.Join(dirB, "metrics.jsonl"))
	if n := strings.Count(string(mb), "\n"); n != 30 {
		t.Fatalf("metrics.jsonl has %d lines, want 30", n)
	}
	if _, err := os.Stat(filepath.Join(dirB, "loss.png")); err != nil {
		t.Fatal(err)
	}
}

// runErr executes the CLI and returns its error.
func runErr(t *testing.T, args ...string) error {
	t.Helper()
	cmd := newRoot()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	return cmd.Execute()
}

// TestTrainBadInput: each bad input is a clear error naming the file and
// line, or the tensor, never a panic or a silent success.
func TestTrainBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	malformed := write("bad.jsonl", "{\"text\": \"fine\"}\n{\"text\": \"broken\"\n")
	masked := write("masked.jsonl", "{\"input_ids\": [0, 5, 6, 7], \"labels\": [-100, -100, -100, -100]}\n")
	microAdapter := testutil.Path("testdata", "oracle", "micro", "adapter")
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"malformed line", []string{"train", "--data", malformed, "--out", filepath.Join(dir, "o1"), "--steps", "1"}, []string{malformed + ":2"}},
		{"all labels masked", []string{"train", "--data", masked, "--out", filepath.Join(dir, "o2"), "--steps", "1"}, []string{"masked"}},
		{"rank larger than the layer", []string{"train", "--data", masked, "--out", filepath.Join(dir, "o3"), "--steps", "1", "--rank", "300"}, []string{"rank 300", "larger than the layer"}},
		{"adapter for another base", []string{"generate", "--adapter", microAdapter, "--prompt", "x", "--max-tokens", "1"}, []string{"lora_A.weight", "another base model"}},
		{"unknown target", []string{"train", "--data", masked, "--out", filepath.Join(dir, "o4"), "--targets", "c_attn"}, []string{"c_attn"}},
		{"unknown yaml key", []string{"train", "--config", write("run.yaml", "data: x.jsonl\nout: y\nlearning_rate: 1\n"), "--steps", "1"}, []string{"learning_rate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := runErr(t, tc.args...)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestTrainYAMLAndFlags: the YAML config uses the flag names, flags override it.
func TestTrainYAMLAndFlags(t *testing.T) {
	data := smallData(t, "p_train", 6)
	dir := t.TempDir()
	yml := filepath.Join(dir, "run.yaml")
	os.WriteFile(yml, []byte("data: "+data+"\nout: "+filepath.Join(dir, "out")+"\nrank: 2\nalpha: 4\ntargets: [q_proj, v_proj]\nsteps: 2\nbatch-size: 3\nseq-len: 64\nlr: 0.001\n"), 0o644)
	run(t, "train", "--config", yml, "--rank", "3")
	b, err := os.ReadFile(filepath.Join(dir, "out", "adapter_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		R       int      `json:"r"`
		Alpha   float64  `json:"lora_alpha"`
		Targets []string `json:"target_modules"`
	}
	json.Unmarshal(b, &c)
	if c.R != 3 || c.Alpha != 4 || strings.Join(c.Targets, ",") != "q_proj,v_proj" {
		t.Fatalf("adapter_config %+v: want r=3 (flag), alpha=4 and q_proj,v_proj (YAML)", c)
	}
	// The trained adapter applies to generate and eval, and merges.
	out := run(t, "eval", "--data", data, "--adapter", filepath.Join(dir, "out"), "--json")
	if !strings.Contains(out, "perplexity") {
		t.Fatal(out)
	}
	merged := filepath.Join(dir, "merged")
	run(t, "merge", "--adapter", filepath.Join(dir, "out"), "--out", merged)
	out2 := run(t, "eval", "--model", merged, "--data", data, "--json")
	var a, m struct{ Loss float64 }
	json.Unmarshal([]byte(out), &a)
	json.Unmarshal([]byte(out2), &m)
	if d := a.Loss - m.Loss; d > 1e-4 || d < -1e-4 {
		t.Fatalf("merged model loss %v, unmerged adapter %v", m.Loss, a.Loss)
	}
	for _, f := range []string{"tokenizer.json", "tokenizer_config.json", "config.json", "model.safetensors"} {
		if _, err := os.Stat(filepath.Join(merged, f)); err != nil {
			t.Fatalf("merged folder lacks %s", f)
		}
	}
}

// TestQuantizeRoundTrip: `quantize --format nf4` writes a bitsandbytes-layout
// folder (BF16 compute by default) that loads back to the same model as
// `--quantize nf4` at load, and `--format f32` of it writes exactly the
// dequantized weights: with float32 compute (--compute-dtype f32) the NF4
// folder scores the f32 export's loss to summation-order rounding, and BF16
// compute moves it by about BF16's precision.
func TestQuantizeRoundTrip(t *testing.T) {
	dir := t.TempDir()
	data := smallData(t, "h_test", 8)
	q4, f32 := filepath.Join(dir, "nf4"), filepath.Join(dir, "f32")
	run(t, "quantize", "--out", q4, "--format", "nf4")
	run(t, "quantize", "--model", q4, "--out", f32, "--format", "f32")
	a := run(t, "eval", "--model", q4, "--data", data, "--json")
	b := run(t, "eval", "--quantize", "nf4", "--data", data, "--json")
	a32 := run(t, "eval", "--model", q4, "--compute-dtype", "f32", "--data", data, "--json")
	c := run(t, "eval", "--model", f32, "--data", data, "--json")
	if a != b {
		t.Fatalf("nf4 folder %s, nf4 at load %s", a, b)
	}
	var la, la32, lc struct{ Loss float64 }
	json.Unmarshal([]byte(a), &la)
	json.Unmarshal([]byte(a32), &la32)
	json.Unmarshal([]byte(c), &lc)
	// The f32 export runs the float32 GEMM instead of the fused NF4 kernel:
	// the same weights, another summation order.
	if d := la32.Loss - lc.Loss; d > 1e-6 || d < -1e-6 {
		t.Fatalf("nf4 with f32 compute %s, f32 export %s", a32, c)
	}
	if d := math.Abs(la.Loss - la32.Loss); d == 0 || d > 1e-3 {
		t.Fatalf("nf4 with bf16 compute %s, with f32 compute %s: want a BF16-sized difference", a, a32)
	}
	cfg, _ := os.ReadFile(filepath.Join(q4, "config.json"))
	if !strings.Contains(string(cfg), `"bnb_4bit_quant_type": "nf4"`) || !strings.Contains(string(cfg), `"bnb_4bit_compute_dtype": "bfloat16"`) {
		t.Fatalf("config.json lacks the bitsandbytes quantization_config with bfloat16 compute:\n%s", cfg)
	}
	st, _ := os.Stat(filepath.Join(q4, "model.safetensors"))
	full, _ := os.Stat(testutil.Path("models", "tiny-brown", "model.safetensors"))
	if st.Size() > full.Size()/3 {
		t.Fatalf("nf4 file %d bytes vs float32 %d", st.Size(), full.Size())
	}
}
