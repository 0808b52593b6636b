package train

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeYAML(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "run.yaml")
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestGradientCheckpointingConfig: unset, it follows the base (on for NF4,
// off for float32); a YAML value, in the flag's spelling or HF/Axolotl's
// underscore one, overrides it either way.
func TestGradientCheckpointingConfig(t *testing.T) {
	c := Defaults()
	if c.GradientCheckpointing != nil || c.Checkpointing(false) || !c.Checkpointing(true) {
		t.Fatal("default: want off for float32, on for a quantized base")
	}
	for _, tc := range []struct {
		yaml string
		want bool
	}{
		{"gradient-checkpointing: true\n", true},
		{"gradient_checkpointing: true\n", true},
		{"gradient_checkpointing: false\nbatch_size: 3\n", false},
		{"# a comment\ngradient-checkpointing: false\n", false},
	} {
		c := Defaults()
		if err := c.LoadYAML(writeYAML(t, "data: x.jsonl\n"+tc.yaml)); err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		if c.GradientCheckpointing == nil || c.Checkpointing(!tc.want) != tc.want || c.Checkpointing(tc.want) != tc.want {
			t.Fatalf("%q: got %v, want %v whatever the base", tc.yaml, c.GradientCheckpointing, tc.want)
		}
		if c.Data != "x.jsonl" {
			t.Fatalf("%q: data %q", tc.yaml, c.Data)
		}
		if strings.Contains(tc.yaml, "batch_size") && c.BatchSize != 3 {
			t.Fatalf("batch_size: %d", c.BatchSize)
		}
	}
	// An unknown key is still an error, by the name it was written with.
	c = Defaults()
	err := c.LoadYAML(writeYAML(t, "gradient_checkpointing: true\nlearning_rate: 1\n"))
	if err == nil || !strings.Contains(err.Error(), "learning_rate") {
		t.Fatalf("unknown key: %v", err)
	}
}
