package llama

import (
	"fmt"
	"math/rand/v2"

	"github.com/lorakit/lorakit/model"
	"github.com/lorakit/lorakit/nn"
	"github.com/lorakit/lorakit/tensor"
)

// NewRandom makes a model of the given config with weights drawn as HF
// initialises Llama (normal, std 0.02; norms 1; biases small), for tests and
// benchmarks of a named shape.
func NewRandom(cfg *model.Config, seed uint64) *Model {
	m, _ := newRandom(cfg, seed, false, "") // no error without quantization
	return m
}

// NewRandomNF4 is NewRandom with the projections held in NF4, as
// NewRandom(cfg, seed).QuantizeNF4() but quantizing each projection as soon
// as it is drawn, so the float32 copy of all the projections never exists
// (a QLoRA benchmark's peak memory is that of the NF4 model). The weights are
// the same random values, drawn in the same order.
func NewRandomNF4(cfg *model.Config, seed uint64) (*Model, error) {
	return newRandom(cfg, seed, true, "")
}

// NewRandomNF4With16 is NewRandomNF4 with the embedding and lm_head held in
// the 16-bit type d (BF16 or F16), drawn row by row so that no float32 copy
// of them exists either: the usual QLoRA setup (bnb_4bit_compute_dtype and
// torch_dtype bfloat16), equal to NewRandomNF4 followed by ConvertWeights(d).
func NewRandomNF4With16(cfg *model.Config, seed uint64, d tensor.DType) (*Model, error) {
	if !d.Is16() {
		return nil, fmt.Errorf("random model: %s is not a 16-bit type", d)
	}
	return newRandom(cfg, seed, true, d)
}

func newRandom(cfg *model.Config, seed uint64, quantize bool, embed16 tensor.DType) (*Model, error) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	normal := func(n int, std float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * std)
		}
		return v
	}
	ones := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = 1 + float32(rng.NormFloat64()*0.05)
		}
		return v
	}
	c := cfg
	D, F, V := c.HiddenSize, c.IntermediateSize, c.VocabSize
	var qerr error
	lin := func(out, in int, bias bool) *nn.Linear {
		l := &nn.Linear{In: in, Out: out, W: normal(out*in, 0.02)}
		if quantize && qerr == nil { // the bias is drawn after, as without quantizing
			if err := l.Quantize(); err != nil {
				qerr = fmt.Errorf("quantize a %d×%d projection: %w", out, in, err)
			}
		}
		if bias {
			l.B = normal(out, 0.02)
		}
		return l
	}
	m := &Model{Config: c}
	if embed16 != "" {
		m.Embed16, m.EmbedType = make([]uint16, V*D), embed16
		row := make([]float32, D)
		for t := 0; t < V; t++ {
			for i := range row {
				row[i] = float32(rng.NormFloat64() * 0.02)
			}
			tensor.Narrow(embed16, m.Embed16[t*D:(t+1)*D], row)
		}
	} else {
		m.Embed = normal(V*D, 0.02)
	}
	m.Norm = ones(D)
	for i := 0; i < c.NumLayers; i++ {
		l := &Layer{
			AttnNorm: ones(D), MLPNorm: ones(D),
			Q: lin(c.QDim(), D, c.AttentionBias), K: lin(c.KVDim(), D, c.AttentionBias),
			V: lin(c.KVDim(), D, c.AttentionBias), O: lin(D, c.QDim(), c.OutputBias),
			Gate: lin(F, D, false), Up: lin(F, D, false), Down: lin(D, F, false),
		}
		if c.QKNorm {
			l.QNorm, l.KNorm = ones(c.HeadDim), ones(c.HeadDim)
		}
		if qerr != nil {
			return nil, fmt.Errorf("layer %d: %w", i, qerr)
		}
		m.Layers = append(m.Layers, l)
	}
	if c.TieEmbeddings {
		m.LMHead = &nn.Linear{In: D, Out: V, W: m.Embed, W16: m.Embed16, W16Type: m.EmbedType}
	} else {
		m.LMHead = &nn.Linear{In: D, Out: V, W: normal(V*D, 0.02)}
		if embed16 != "" {
			if err := m.LMHead.ToDType(embed16); err != nil {
				return nil, err
			}
		}
	}
	m.init()
	return m, nil
}
