package train

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/lorakit/lorakit/lora"
	"github.com/lorakit/lorakit/model/llama"
	"github.com/lorakit/lorakit/models"
	"github.com/lorakit/lorakit/train/data"
)

// TestRunGradientCheckpointing: a run with gradient checkpointing writes the
// same adapter, byte for byte, as one without (LoRA dropout on, two
// micro-batches per step); unset, it is on for an NF4 base and off for
// float32; the model's setting is restored afterwards.
func TestRunGradientCheckpointing(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	var exs []data.Example
	for i := 0; i < 8; i++ {
		ids := make([]int, 10+rng.IntN(20))
		for j := range ids {
			ids[j] = rng.IntN(200)
		}
		exs = append(exs, data.Example{InputIDs: ids, Labels: ids})
	}
	train := func(ckpt *bool, nf4 bool) ([]byte, Result) {
		m, err := llama.Load(models.TinyBrown())
		if err != nil {
			t.Fatal(err)
		}
		if nf4 {
			if err := m.QuantizeNF4(); err != nil {
				t.Fatal(err)
			}
		}
		cfg := Defaults()
		cfg.Data, cfg.Out = "mem", filepath.Join(t.TempDir(), "out")
		cfg.Steps, cfg.BatchSize, cfg.GradAccum, cfg.Rank, cfg.Dropout = 3, 2, 2, 4, 0.1
		cfg.GradientCheckpointing = ckpt
		a, err := lora.New(cfg.LoRAConfig("tiny-brown"), m, cfg.Seed)
		if err != nil {
			t.Fatal(err)
		}
		res, err := (&Run{Cfg: cfg, Model: m, Adapter: a, Train: exs}).Execute(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if m.GradientCheckpointing() {
			t.Fatal("the model's checkpointing setting was not restored")
		}
		b, err := os.ReadFile(filepath.Join(cfg.Out, "adapter_model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		return b, res
	}
	on, off := true, false
	a, ra := train(&on, false)
	b, rb := train(nil, false)
	if !ra.GradientCheckpointing || rb.GradientCheckpointing {
		t.Fatalf("float32: explicit on gave %v, default gave %v (want off)", ra.GradientCheckpointing, rb.GradientCheckpointing)
	}
	if !bytes.Equal(a, b) || ra.TrainLoss != rb.TrainLoss {
		t.Fatalf("float32: the adapter trained with checkpointing differs (loss %v vs %v)", ra.TrainLoss, rb.TrainLoss)
	}
	c, rc := train(nil, true)
	d, rd := train(&off, true)
	if !rc.GradientCheckpointing || rd.GradientCheckpointing {
		t.Fatalf("nf4: default gave %v (want on), explicit off gave %v", rc.GradientCheckpointing, rd.GradientCheckpointing)
	}
	if !bytes.Equal(c, d) || rc.TrainLoss != rd.TrainLoss {
		t.Fatalf("nf4: the adapter trained with checkpointing differs (loss %v vs %v)", rc.TrainLoss, rd.TrainLoss)
	}
}
