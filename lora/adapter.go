package lora

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/lorakit/lorakit/format/safetensors"
	"github.com/lorakit/lorakit/tensor"
)

// Module is the low-rank update of one linear layer: ΔW = Scale · B·A.
type Module struct {
	Name         string    // HF module path, e.g. "model.layers.0.self_attn.q_proj"
	R, In, Out   int       // rank and the layer's shape
	A            []float32 // [R, In]
	B            []float32 // [Out, R]
	Scale        float32   // alpha/r or alpha/sqrt(r)
	GradA, GradB []float32 // gradients, allocated by training

	bt []float32 // B transposed, built by BT for serving
}

// Adapter is a set of modules with its PEFT configuration.
type Adapter struct {
	Config  Config
	Modules map[string]*Module

	layeredOnce sync.Once
	layered     [][]*Module
}

// Names lists module names in a fixed (sorted) order.
func (a *Adapter) Names() []string {
	ns := make([]string, 0, len(a.Modules))
	for n := range a.Modules {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return ns
}

// Params is the number of trainable scalars.
func (a *Adapter) Params() int {
	n := 0
	for _, m := range a.Modules {
		n += len(m.A) + len(m.B)
	}
	return n
}

// Shape is what an adapter needs to know of a base model's linear layers.
type Shape interface {
	// Linear returns the [out, in] of a module ("model.layers.0.mlp.up_proj").
	Linear(module string) (out, in int, ok bool)
	// Modules lists every linear module name of the base model.
	LinearModules() []string
}

// New makes a fresh adapter for a base model with PEFT's initialisation:
// A ~ kaiming_uniform(a=√5) = U(−1/√in, 1/√in), B = 0, so training starts from
// the base model exactly.
func New(cfg Config, base Shape, seed uint64) (*Adapter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 0x10ba))
	a := &Adapter{Config: cfg, Modules: map[string]*Module{}}
	for _, name := range base.LinearModules() {
		if !cfg.Targeted(name) {
			continue
		}
		out, in, _ := base.Linear(name)
		r, alpha := cfg.RankAlpha(name)
		if r > min(out, in) {
			return nil, fmt.Errorf("lora: rank %d of %s is larger than the layer (%d×%d)", r, name, out, in)
		}
		m := &Module{Name: name, R: r, In: in, Out: out, A: make([]float32, r*in), B: make([]float32, out*r), Scale: cfg.Scale(r, alpha)}
		bound := 1 / math.Sqrt(float64(in))
		for i := range m.A {
			m.A[i] = float32((2*rng.Float64() - 1) * bound)
		}
		a.Modules[name] = m
	}
	if len(a.Modules) == 0 {
		return nil, fmt.Errorf("lora: target modules %v match no layer of the base model", cfg.TargetModules)
	}
	return a, nil
}

const peftPrefix = "base_model.model."

// TensorNames are PEFT's names of a module's two matrices.
func TensorNames(module string) (a, b string) {
	return peftPrefix + module + ".lora_A.weight", peftPrefix + module + ".lora_B.weight"
}

// Load reads a PEFT adapter folder (adapter_config.json + adapter_model.safetensors).
func Load(dir string) (*Adapter, error) {
	cb, err := os.ReadFile(filepath.Join(dir, "adapter_config.json"))
	if err != nil {
		return nil, fmt.Errorf("adapter %s: %w", dir, err)
	}
	cfg, err := ParseConfig(cb)
	if err != nil {
		return nil, fmt.Errorf("adapter %s: %w", dir, err)
	}
	path := filepath.Join(dir, "adapter_model.safetensors")
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, fmt.Errorf("adapter %s: %w", dir, err)
	}
	defer f.Close()
	a, err := FromTensors(*cfg, f)
	if err != nil {
		return nil, fmt.Errorf("adapter %s: %w", path, err)
	}
	return a, nil
}

// TensorReader is a safetensors file or set.
type TensorReader interface {
	Names() []string
	Tensor(name string) (safetensors.Tensor, bool)
}

// FromTensors builds an adapter from PEFT-named tensors. Names may carry
// PEFT's in-memory adapter name (".lora_A.default.weight"); any tensor that is
// not a lora_A/lora_B pair of a Llama projection is an error.
func FromTensors(cfg Config, f TensorReader) (*Adapter, error) {
	a := &Adapter{Config: cfg, Modules: map[string]*Module{}}
	type pair struct{ A, B *safetensors.Tensor }
	pairs := map[string]*pair{}
	for _, name := range f.Names() {
		t, _ := f.Tensor(name)
		module, which, ok := parseTensorName(name)
		if !ok {
			return nil, fmt.Errorf("tensor %q is not a LoRA matrix (want %s<module>.lora_A.weight / lora_B.weight)", name, peftPrefix)
		}
		if !isProjection(module[strings.LastIndexByte(module, '.')+1:]) {
			return nil, fmt.Errorf("tensor %q adapts %q, which is not a Llama projection", name, module)
		}
		p := pairs[module]
		if p == nil {
			p = &pair{}
			pairs[module] = p
		}
		tt := t
		if which == "A" {
			p.A = &tt
		} else {
			p.B = &tt
		}
	}
	for module, p := range pairs {
		an, bn := TensorNames(module)
		if p.A == nil || p.B == nil {
			return nil, fmt.Errorf("module %s: has only one of %s and %s", module, an, bn)
		}
		if len(p.A.Shape) != 2 || len(p.B.Shape) != 2 {
			return nil, fmt.Errorf("module %s: lora_A %v and lora_B %v must be matrices", module, p.A.Shape, p.B.Shape)
		}
		r, in, out := p.A.Shape[0], p.A.Shape[1], p.B.Shape[0]
		if p.B.Shape[1] != r {
			return nil, fmt.Errorf("module %s: lora_A is %v and lora_B is %v: ranks differ", module, p.A.Shape, p.B.Shape)
		}
		wantR, alpha := cfg.RankAlpha(module)
		if r != wantR {
			return nil, fmt.Errorf("module %s: tensor %q has rank %d, adapter_config.json says %d", module, an, r, wantR)
		}
		av, err := p.A.Float32()
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", an, err)
		}
		bv, err := p.B.Float32()
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", bn, err)
		}
		for _, v := range [][]float32{av, bv} {
			for _, x := range v {
				if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
					return nil, fmt.Errorf("module %s: non-finite value in the adapter", module)
				}
			}
		}
		a.Modules[module] = &Module{Name: module, R: r, In: in, Out: out, A: av, B: bv, Scale: cfg.Scale(r, alpha)}
	}
	if len(a.Modules) == 0 {
		return nil, fmt.Errorf("no LoRA tensors")
	}
	return a, nil
}

func parseTensorName(name string) (module, which string, ok bool) {
	rest, found := strings.CutPrefix(name, peftPrefix)
	if !found {
		return "", "", false
	}
	for _, w := range []string{"A", "B"} {
		for _, suffix := range []string{".lora_" + w + ".weight", ".lora_" + w + ".default.weight"} {
			if m, ok := strings.CutSuffix(rest, suffix); ok && m != "" {
				return m, w, true
			}
		}
	}
	return "", "", false
}

// Save writes the adapter as PEFT does: adapter_config.json and
// adapter_model.safetensors (F32, metadata format=pt), each atomically.
func (a *Adapter) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cj, err := a.Config.JSON()
	if err != nil {
		return err
	}
	var ws []safetensors.Writable
	for _, name := range a.Names() {
		m := a.Modules[name]
		an, bn := TensorNames(name)
		ws = append(ws,
			safetensors.Writable{Name: an, DType: tensor.F32, Shape: []int{m.R, m.In}, Data: safetensors.F32Bytes(m.A)},
			safetensors.Writable{Name: bn, DType: tensor.F32, Shape: []int{m.Out, m.R}, Data: safetensors.F32Bytes(m.B)})
	}
	if err := safetensors.Write(filepath.Join(dir, "adapter_model.safetensors"), ws, map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("save adapter %s: %w", dir, err)
	}
	if err := safetensors.WriteFileAtomic(filepath.Join(dir, "adapter_config.json"), cj); err != nil {
		return fmt.Errorf("save adapter %s: %w", dir, err)
	}
	return nil
}

// Check validates an adapter against a base model: every module exists there
// with the adapter's shapes.
func (a *Adapter) Check(base Shape) error {
	for _, name := range a.Names() {
		m := a.Modules[name]
		out, in, ok := base.Linear(name)
		an, _ := TensorNames(name)
		if !ok {
			return fmt.Errorf("adapter module %s (tensor %q) does not exist in the base model (adapter for another model?)", name, an)
		}
		if out != m.Out || in != m.In {
			return fmt.Errorf("adapter tensor %q expects a %d×%d layer, the base model's %s is %d×%d (hint: adapter trained for another base model?)", an, m.Out, m.In, name, out, in)
		}
	}
	return nil
}

// Delta adds sign·Scale·(B·A) to w [Out, In]: merge with sign +1, unmerge
// with −1. Matches PEFT's merge: W' = W + (B @ A) * scaling, the product
// first, then the scale.
func (m *Module) Delta(w []float32, sign float32) {
	ba := make([]float32, m.In)
	for o := 0; o < m.Out; o++ {
		for i := range ba {
			ba[i] = 0
		}
		for r := 0; r < m.R; r++ {
			b := m.B[o*m.R+r]
			ar := m.A[r*m.In : (r+1)*m.In]
			for i, v := range ar {
				ba[i] += b * v
			}
		}
		row := w[o*m.In : (o+1)*m.In]
		for i, v := range ba {
			row[i] += sign * (v * m.Scale)
		}
	}
}

// Layered returns the adapter's modules as [layer][projection], projections in
// the order of Projections (q, k, v, o, gate, up, down), nil where a layer's
// projection is not adapted. It is built once and cached: the serving path
// looks modules up per layer without string keys.
func (a *Adapter) Layered(layers int) [][]*Module {
	a.layeredOnce.Do(func() {
		a.layered = make([][]*Module, layers)
		for i := range a.layered {
			a.layered[i] = make([]*Module, len(Projections))
		}
		for name, m := range a.Modules {
			li, ok := LayerIndex(name)
			if !ok || li >= layers {
				continue
			}
			short := name[strings.LastIndexByte(name, '.')+1:]
			for pi, p := range Projections {
				if p == short {
					a.layered[li][pi] = m
				}
			}
		}
	})
	return a.layered
}

// Bytes is the memory the adapter's matrices take.
func (a *Adapter) Bytes() int { return 4 * a.Params() }
