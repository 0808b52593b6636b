package train

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/lorakit/lorakit/eval"
	"github.com/lorakit/lorakit/lora"
	"github.com/lorakit/lorakit/model/llama"
	"github.com/lorakit/lorakit/nn"
	"github.com/lorakit/lorakit/train/ckpt"
	"github.com/lorakit/lorakit/train/data"
	"github.com/lorakit/lorakit/train/optim"
	"github.com/lorakit/lorakit/train/sched"
)

// AdamW settings that are not flags: torch's defaults.
const (
	beta1   = 0.9
	beta2   = 0.999
	adamEps = 1e-8
)

// ErrNonFinite is returned when the loss or the gradient norm stops being a
// number; the last good checkpoint is kept.
var ErrNonFinite = errors.New("non-finite loss or gradient")

// Run is one training run over prepared examples.
type Run struct {
	Cfg      Config
	Model    *llama.Model
	Adapter  *lora.Adapter // fresh or --init-adapter; replaced on resume
	Train    []data.Example
	Val      []data.Example
	Progress io.Writer // progress bar (stderr); nil for none
	Log      *slog.Logger
}

// Result summarises a finished run.
type Result struct {
	Steps       int
	TrainLoss   float64 // mean loss of the last step
	ValLoss     float64 // last validation loss (NaN without validation)
	Tokens      int     // target tokens trained on
	TokensPerS  float64 // input tokens per second
	Elapsed     time.Duration
	ResumedFrom int
	// GradientCheckpointing is whether activations were recomputed
	// (Config.Checkpointing for this base).
	GradientCheckpointing bool
}

// Metric is one line of metrics.jsonl.
type Metric struct {
	Step       int      `json:"step"`
	Epoch      float64  `json:"epoch"`
	Loss       float64  `json:"loss"`
	LR         float64  `json:"lr"`
	GradNorm   float64  `json:"grad_norm"`
	Tokens     int      `json:"tokens"`
	TokensPerS float64  `json:"tokens_per_s"`
	ValLoss    *float64 `json:"val_loss,omitempty"`
	ValPPL     *float64 `json:"val_perplexity,omitempty"`
}

// StepsPerEpoch is how many optimizer steps one pass over the data takes.
func (r *Run) StepsPerEpoch() int {
	per := r.Cfg.BatchSize * r.Cfg.GradAccum
	return max(1, (len(r.Train)+per-1)/per)
}

// TotalSteps resolves --steps / --epochs.
func (r *Run) TotalSteps() int {
	if r.Cfg.Steps > 0 {
		return r.Cfg.Steps
	}
	return max(1, int(math.Ceil(r.Cfg.Epochs*float64(r.StepsPerEpoch()))))
}

func (r *Run) configHash() string {
	c := r.Cfg
	key := fmt.Sprintf("%d|%g|%g|%v|%v|%g|%s|%g|%g|%d|%d|%d|%d|%g|%g|%d|%v|%v|%v|%d|%d",
		c.Rank, c.Alpha, c.Dropout, c.Targets, c.RSLoRA, c.LR, c.Schedule, c.Warmup, c.Epochs, c.Steps,
		c.BatchSize, c.GradAccum, c.SeqLen, c.WeightDecay, c.Clip, c.Seed, c.NoShuffle, c.Packing, c.TrainOnInputs,
		len(r.Train), len(r.Val))
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:8])
}

// order is the example order of an epoch: a seeded permutation (or the file
// order with NoShuffle), a pure function of (seed, epoch) so a resumed run
// sees the same batches.
func (r *Run) order(epoch int) []int {
	n := len(r.Train)
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	if !r.Cfg.NoShuffle {
		rng := rand.New(rand.NewPCG(r.Cfg.Seed, uint64(epoch)+0x5eed))
		rng.Shuffle(n, func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
	}
	return idx
}

// batch returns micro-batch j of optimizer step k: the examples are a
// continuous stream over epochs, so every batch is full.
func (r *Run) batch(k, j int, cache map[int][]int) []data.Example {
	n := len(r.Train)
	b := r.Cfg.BatchSize
	out := make([]data.Example, 0, b)
	for i := 0; i < b; i++ {
		pos := (k*r.Cfg.GradAccum+j)*b + i
		epoch := pos / n
		ord, ok := cache[epoch]
		if !ok {
			ord = r.order(epoch)
			cache[epoch] = ord
		}
		out = append(out, r.Train[ord[pos%n]])
	}
	return out
}

// params lists the adapter's matrices and gradients in a fixed order.
func params(a *lora.Adapter) (ps, gs [][]float32, names []string) {
	for _, n := range a.Names() {
		m := a.Modules[n]
		if m.GradA == nil {
			m.GradA, m.GradB = make([]float32, len(m.A)), make([]float32, len(m.B))
		}
		an, bn := lora.TensorNames(n)
		ps = append(ps, m.A, m.B)
		gs = append(gs, m.GradA, m.GradB)
		names = append(names, an, bn)
	}
	return
}

// setDropout sets every adapted layer's dropout and a seed that is a pure
// function of (seed, step, micro-batch, layer, projection).
func (r *Run) setDropout(p float64, step, micro int) {
	for li, l := range r.Model.Layers {
		for pi, pr := range l.Projections() {
			if pr.Linear.LoRA == nil {
				continue
			}
			pr.Linear.Dropout = float32(p)
			pr.Linear.DropoutSeed = r.Cfg.Seed ^ uint64(step)<<32 ^ uint64(micro)<<24 ^ uint64(li)<<8 ^ uint64(pi)
		}
	}
}

// Execute trains until the total step count, evaluating, checkpointing and
// writing metrics.jsonl, then saves the adapter and loss.png into Cfg.Out.
func (r *Run) Execute(ctx context.Context) (Result, error) {
	cfg := r.Cfg
	log := r.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if len(r.Train) == 0 {
		return Result{}, fmt.Errorf("train: no training examples")
	}
	if data.CountTargets(r.Train) == 0 {
		return Result{}, fmt.Errorf("train %s: every label of every example is masked: nothing to learn (with prompt/completion data, is the completion empty? see --train-on-inputs)", cfg.Data)
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return Result{}, err
	}
	total := r.TotalSteps()
	warm, err := sched.WarmupSteps(cfg.Warmup, total)
	if err != nil {
		return Result{}, err
	}
	schedule, err := sched.New(cfg.Schedule, cfg.LR, warm, total)
	if err != nil {
		return Result{}, err
	}
	_, _, names := params(r.Adapter)
	sizes := make([]int, 0, len(names))
	for _, n := range r.Adapter.Names() {
		m := r.Adapter.Modules[n]
		sizes = append(sizes, len(m.A), len(m.B))
	}
	opt := optim.NewAdamW(sizes, beta1, beta2, adamEps, cfg.WeightDecay)
	hash := r.configHash()
	res := Result{ValLoss: math.NaN()}
	start := 0
	if cfg.Resume {
		path, err := ckpt.Latest(cfg.Out)
		if err != nil {
			return res, err
		}
		if path != "" {
			st, a, o, err := ckpt.Load(path, names, beta1, beta2, adamEps, cfg.WeightDecay)
			if err != nil {
				return res, fmt.Errorf("resume from %s: %w", path, err)
			}
			if st.ConfigHash != hash {
				return res, fmt.Errorf("resume from %s: the checkpoint was made with other settings or data (config hash %s, now %s)", path, st.ConfigHash, hash)
			}
			a.Config = r.Adapter.Config
			r.Adapter, opt, start = a, o, st.Step
			res.ResumedFrom = start
			log.Info("resumed", "checkpoint", path, "step", start)
		}
	}
	if err := r.Model.Attach(r.Adapter); err != nil {
		return res, err
	}
	defer r.Model.Detach()
	prevCkpt := r.Model.GradientCheckpointing()
	res.GradientCheckpointing = cfg.Checkpointing(r.Model.Quantized())
	r.Model.SetGradientCheckpointing(res.GradientCheckpointing)
	defer r.Model.SetGradientCheckpointing(prevCkpt)
	log.Info("training", "gradient_checkpointing", res.GradientCheckpointing, "quantized_base", r.Model.Quantized())
	defer LeanGC()()
	ps, gs, _ := params(r.Adapter)
	metrics, err := openMetrics(filepath.Join(cfg.Out, "metrics.jsonl"), start)
	if err != nil {
		return res, err
	}
	defer metrics.Close()

	evalEvery := cfg.EvalEvery
	if evalEvery == 0 {
		evalEvery = max(1, total/10)
	}
	saveEvery := cfg.SaveEvery
	if saveEvery == 0 {
		saveEvery = max(1, total/10)
	}
	orders := map[int][]int{}
	t0 := time.Now()
	inputTokens := 0
	bar := newProgress(r.Progress, total, start)
	for k := start; k < total; k++ {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		ts := time.Now()
		micro := make([][]data.Example, cfg.GradAccum)
		norm := 0
		stepTokens := 0
		for j := range micro {
			micro[j] = r.batch(k, j, orders)
			norm += data.CountTargets(micro[j])
			for _, ex := range micro[j] {
				stepTokens += len(ex.InputIDs)
			}
		}
		for _, g := range gs {
			clear(g)
		}
		var sum float64
		for j, exs := range micro {
			if norm == 0 {
				break
			}
			toks, targets := make([][]int, len(exs)), make([][]int, len(exs))
			for i, ex := range exs {
				toks[i], targets[i] = ex.InputIDs, nn.ShiftLabels(ex.Labels)
			}
			r.setDropout(cfg.Dropout, k, j)
			s, _, err := r.Model.LossAndGrad(toks, targets, float64(norm))
			if err != nil {
				return res, fmt.Errorf("step %d: %w", k+1, err)
			}
			sum += s
		}
		r.setDropout(0, 0, 0)
		gnorm := globalNorm(gs)
		loss := sum / float64(max(norm, 1))
		if math.IsNaN(loss) || math.IsInf(loss, 0) || math.IsNaN(gnorm) || math.IsInf(gnorm, 0) {
			return res, fmt.Errorf("step %d: loss %v, gradient norm %v: %w; stopping, the last checkpoint in %s is the last good state", k+1, loss, gnorm, ErrNonFinite, cfg.Out)
		}
		if cfg.Clip > 0 && gnorm > cfg.Clip { // torch.nn.utils.clip_grad_norm_
			coef := float32(cfg.Clip / (gnorm + 1e-6))
			for _, g := range gs {
				for i := range g {
					g[i] *= coef
				}
			}
		}
		lr := schedule.At(k)
		if err := opt.Update(ps, gs, lr); err != nil {
			return res, err
		}
		inputTokens += stepTokens
		res.Tokens += norm
		res.Steps = k + 1
		res.TrainLoss = loss
		m := Metric{Step: k + 1, Epoch: float64((k+1)*cfg.BatchSize*cfg.GradAccum) / float64(len(r.Train)),
			Loss: loss, LR: lr, GradNorm: gnorm, Tokens: norm, TokensPerS: float64(stepTokens) / time.Since(ts).Seconds()}
		if len(r.Val) > 0 && ((k+1)%evalEvery == 0 || k+1 == total) {
			vr, err := eval.Evaluate(r.Model, r.Val, eval.Options{})
			if err != nil {
				return res, fmt.Errorf("step %d: validation: %w", k+1, err)
			}
			m.ValLoss, m.ValPPL = &vr.Loss, &vr.Perplexity
			res.ValLoss = vr.Loss
		}
		if err := metrics.write(m); err != nil {
			return res, err
		}
		bar.update(m, time.Since(t0), inputTokens)
		if (k+1)%saveEvery == 0 && k+1 < total {
			if _, err := ckpt.Save(cfg.Out, ckpt.State{Step: k + 1, TotalSteps: total, Epoch: m.Epoch, Seed: cfg.Seed, ConfigHash: hash}, r.Adapter, opt, names); err != nil {
				return res, fmt.Errorf("checkpoint at step %d: %w", k+1, err)
			}
			if err := ckpt.Prune(cfg.Out, max(1, cfg.KeepCheckpoints)); err != nil {
				return res, err
			}
		}
	}
	bar.done()
	res.Elapsed = time.Since(t0)
	res.TokensPerS = float64(inputTokens) / res.Elapsed.Seconds()
	if err := r.Adapter.Save(cfg.Out); err != nil {
		return res, err
	}
	if err := metrics.Close(); err != nil {
		return res, err
	}
	if err := PlotLoss(filepath.Join(cfg.Out, "metrics.jsonl"), filepath.Join(cfg.Out, "loss.png")); err != nil {
		log.Warn("loss plot", "err", err)
	}
	return res, nil
}

func globalNorm(gs [][]float32) float64 {
	var s float64
	for _, g := range gs {
		for _, v := range g {
			s += float64(v) * float64(v)
		}
	}
	return math.Sqrt(s)
}

// metricsFile appends to metrics.jsonl, first dropping lines past the step a
// resumed run continues from.
type metricsFile struct{ f *os.File }

func openMetrics(path string, keepUpTo int) (*metricsFile, error) {
	var kept []byte
	if keepUpTo > 0 {
		old, _ := os.ReadFile(path)
		for len(old) > 0 {
			line := old
			if i := indexByte(old, '\n'); i >= 0 {
				line, old = old[:i+1], old[i+1:]
			} else {
				old = nil
			}
			var m Metric
			if json.Unmarshal(line, &m) == nil && m.Step <= keepUpTo {
				kept = append(kept, line...)
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(kept); err != nil {
		f.Close()
		return nil, err
	}
	return &metricsFile{f: f}, nil
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func (w *metricsFile) write(m Metric) error {
	b, _ := json.Marshal(m)
	_, err := w.f.Write(append(b, '\n'))
	return err
}

func (w *metricsFile) Close() error {
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}
