package main

import (
	"bufio"
	"bytes"
	"encoding/json"
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
