// Package layering checks that imports flow one way (DESIGN.md §5): files →
// tensors → model → training or serving → CLI. A package may import only
// project packages of a lower layer.
package layering

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/lorakit/lorakit"

// layer of every project package; a new package must be placed here.
var layer = map[string]int{
	"tensor":             0,
	"datasets":           0,
	"internal/testutil":  0,
	"internal/layering":  0,
	"internal/cpu":       0,
	"tokenizer":          1,
	"format/safetensors": 1,
	"format/gguf":        1,
	"kernels":            1,
	"kvcache":            1,
	"quant":              2,
	"quant/nf4":          2,
	"sample":             2,
	"train/data":         2,
	"model":              3,
	"lora":               3,
	"train/optim":        2,
	"models":             4,
	"nn":                 4,
	"model/llama":        5,
	"eval":               6,
	"engine":             6,
	"server":             7,
	"server/openai":      0,
	"chat":               1,
	"train/sched":        0,
	"train/ckpt":         4,
	"train":              7,
	"cmd/lorakit":        9,
}

func TestImportsFlowOneWay(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}:{{join .Imports " "}}`, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, ":")
		rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
		l, ok := layer[rel]
		if !ok {
			t.Errorf("package %s has no layer: add it to the table in internal/layering", rel)
			continue
		}
		for _, imp := range strings.Fields(imports) {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			irel := strings.TrimPrefix(imp, module+"/")
			il, ok := layer[irel]
			if !ok {
				continue // reported on its own line
			}
			if il >= l {
				t.Errorf("%s (layer %d) imports %s (layer %d): imports must go to lower layers", rel, l, irel, il)
			}
		}
	}
}
