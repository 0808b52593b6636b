// Package ckpt writes and reads training checkpoints: the adapter, the AdamW
// moments and the trainer's position, as one folder that appears atomically
// (written under a temporary name, fsynced, renamed), so a killed run resumes
// from its last complete checkpoint.
package ckpt

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/lorakit/lorakit/format/safetensors"
	"github.com/lorakit/lorakit/lora"
	"github.com/lorakit/lorakit/tensor"
	"github.com/lorakit/lorakit/train/optim"
)

// State is the trainer's position: enough, with the adapter and the
// optimizer, to continue exactly where the run stopped.
type State struct {
	Step       int     `json:"step"` // optimizer steps done
	TotalSteps int     `json:"total_steps"`
	Epoch      float64 `json:"epoch"`
	Seed       uint64  `json:"seed"`
	// ConfigHash guards against resuming with different settings.
	ConfigHash  string  `json:"config_hash"`
	BestValLoss float64 `json:"best_val_loss,omitempty"`
}

const prefix = "checkpoint-"

// Save writes dir/checkpoint-<step> atomically.
func Save(dir string, st State, a *lora.Adapter, opt *optim.AdamW, names []string) (string, error) {
	final := filepath.Join(dir, prefix+strconv.Itoa(st.Step))
	tmp := filepath.Join(dir, ".tmp-"+prefix+strconv.Itoa(st.Step))
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", err
	}
	if err := a.Save(tmp); err != nil {
		return "", err
	}
	var ws []safetensors.Writable
	for i, n := range names {
		ws = append(ws,
			safetensors.Writable{Name: "exp_avg." + n, DType: tensor.F32, Shape: []int{len(opt.M[i])}, Data: safetensors.F32Bytes(opt.M[i])},
			safetensors.Writable{Name: "exp_avg_sq." + n, DType: tensor.F32, Shape: []int{len(opt.V[i])}, Data: safetensors.F32Bytes(opt.V[i])})
	}
	meta := map[string]string{"step": strconv.Itoa(opt.Step)}
	if err := safetensors.Write(filepath.Join(tmp, "optimizer.safetensors"), ws, meta); err != nil {
		return "", err
	}
	sb, _ := json.MarshalIndent(st, "", "  ")
	if err := safetensors.WriteFileAtomic(filepath.Join(tmp, "trainer_state.json"), sb); err != nil {
		return "", err
	}
	os.RemoveAll(final) // a stale one from an earlier run with the same step
	if err := os.Rename(tmp, final); err != nil {
		return "", err
	}
	if err := syncDir(dir); err != nil {
		return "", err
	}
	return final, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Latest returns the newest complete checkpoint folder in dir, or "" if none.
func Latest(dir string) (string, error) {
	steps, err := list(dir)
	if err != nil || len(steps) == 0 {
		return "", err
	}
	return filepath.Join(dir, prefix+strconv.Itoa(steps[len(steps)-1])), nil
}

func list(dir string) ([]int, error) {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var steps []int
	for _, e := range entries {
		s, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || !e.IsDir() {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "trainer_state.json")); err == nil {
			steps = append(steps, n)
		}
	}
	sort.Ints(steps)
	return steps, nil
}

// Prune keeps the newest keep checkpoints and removes leftover temporaries.
func Prune(dir string, keep int) error {
	steps, err := list(dir)
	if err != nil {
		return err
	}
	for i := 0; i < len(steps)-keep; i++ {
		if err := os.RemoveAll(filepath.Join(dir, prefix+strconv.Itoa(steps[i]))); err != nil {
			return err
		}
	}
	tmps, _ := filepath.Glob(filepath.Join(dir, ".tmp-"+prefix+"*"))
	for _, t := range tmps {
		os.RemoveAll(t)
	}
	return nil
}

// Load reads a checkpoint: its state, adapter and optimizer moments (for the
// parameter names given, in that order).
func Load(path string, names []string, beta1, beta2, eps, wd float64) (State, *lora.Adapter, *optim.AdamW, error) {
	var st State
	b, err := os.ReadFile(filepath.Join(path, "trainer_state.json"))
	if err != nil {
		return st, nil, nil, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, nil, nil, fmt.Errorf("%s: trainer_state.json: %w", path, err)
	}
	a, err := lora.Load(path)
	if err != nil {
		return st, nil, nil, err
	}
	f, err := safetensors.Open(filepath.Join(path, "optimizer.safetensors"))
	if err != nil {
		return st, nil, nil, err
	}
	defer f.Close()
	opt := &optim.AdamW{Beta1: beta1, Beta2: beta2, Eps: eps, WeightDecay: wd}
	opt.Step, err = strconv.Atoi(f.Metadata["step"])
	if err != nil {
		return st, nil, nil, fmt.Errorf("%s: optimizer step: %w", f.Path, err)
	}
	for _, n := range names {
		for _, which := range []string{"exp_avg.", "exp_avg_sq."} {
			t, ok := f.Tensor(which + n)
			if !ok {
				return st, nil, nil, fmt.Errorf("%s: no tensor %q (checkpoint of another adapter?)", f.Path, which+n)
			}
			v, err := t.Float32()
			if err != nil {
				return st, nil, nil, err
			}
			if which == "exp_avg." {
				opt.M = append(opt.M, v)
			} else {
				opt.V = append(opt.V, v)
			}
		}
	}
	return st, a, opt, nil
}
