package llama

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/lorakit/lorakit/format/gguf"
	"github.com/lorakit/lorakit/format/safetensors"
	"github.com/lorakit/lorakit/model"
	"github.com/lorakit/lorakit/tensor"
	"github.com/lorakit/lorakit/tokenizer"
)

// GGUF models (llama.cpp's format).
//
// A GGUF file carries the hyperparameters as "<arch>."-prefixed metadata, the
// vocabulary as tokenizer.ggml.* metadata and the weights under llama.cpp's
// tensor names, possibly quantized. LoadGGUF turns it into the same Model a
// Hugging Face folder gives: the config from the metadata, every tensor
// dequantized to float32 and renamed (token_embd.weight ->
// model.embed_tokens.weight, blk.N.attn_q.weight ->
// model.layers.N.self_attn.q_proj.weight, ...), and, for the llama
// architecture, the rows of q_proj and k_proj put back in Hugging Face order:
// convert_hf_to_gguf.py's LlamaModel permutes them for llama.cpp's
// interleaved RoPE (Qwen2/Qwen3 use the rotate_half layout in llama.cpp too
// and are stored unpermuted).

// GGUFInfo is what a GGUF file says besides the weights.
type GGUFInfo struct {
	Path string
	Arch string // general.architecture
	Name string // general.name ("" when absent)
	// BOS is tokenizer.ggml.bos_token_id (-1 when absent); AddBOS says
	// whether prompts start with it (tokenizer.ggml.add_bos_token, with
	// llama.cpp's default when absent) and equals Tokenizer.AddsBOS().
	BOS    int
	AddBOS bool
	// EOS is tokenizer.ggml.eos_token_id followed by the end-of-turn and
	// end-of-message ids (eot_token_id, eom_token_id) when they differ; any of
	// them ends generation. The model config's EOSTokenIDs is the same list.
	EOS          []int
	AddEOS       bool
	ChatTemplate string // tokenizer.chat_template ("" when absent)
	Tokenizer    *tokenizer.Tokenizer
	// TensorTypes counts the file's tensors by ggml type ("F32", "Q8_0", ...).
	TensorTypes map[string]int
}

// LoadGGUF reads a GGUF model file: config, float32 weights and tokenizer.
func LoadGGUF(path string) (*Model, *GGUFInfo, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close() // FromGGUF copies everything it keeps
	return FromGGUF(f)
}

// FromGGUF builds a model from a parsed GGUF file. The model and the info do
// not reference the file's memory, so f may be closed afterwards.
func FromGGUF(f *gguf.File) (*Model, *GGUFInfo, error) {
	cfg, err := GGUFConfig(f)
	if err != nil {
		return nil, nil, err
	}
	vocab, err := ReadGGUFVocab(f)
	if err != nil {
		return nil, nil, err
	}
	if len(vocab.Tokens) > cfg.VocabSize {
		return nil, nil, fmt.Errorf("gguf %s: tokenizer.ggml.tokens has %d tokens but token_embd.weight only %d rows", f.Path, len(vocab.Tokens), cfg.VocabSize)
	}
	tok, err := tokenizer.FromGGUFVocab(vocab)
	if err != nil {
		return nil, nil, err
	}
	info := &GGUFInfo{
		Path:         f.Path,
		Arch:         cfg.ModelType,
		BOS:          vocab.BOS,
		AddBOS:       vocab.AddBOS,
		AddEOS:       vocab.AddEOS,
		ChatTemplate: vocab.ChatTemplate,
		Tokenizer:    tok,
		TensorTypes:  map[string]int{},
	}
	info.Name, _ = f.KV["general.name"].String()
	kv := kvReader{f}
	for _, key := range []string{"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"} {
		id, err := kv.tokenID(key, len(vocab.Tokens))
		if err != nil {
			return nil, nil, err
		}
		if id >= 0 && !slices.Contains(info.EOS, id) {
			info.EOS = append(info.EOS, id)
		}
	}
	for _, t := range f.Tensors {
		info.TensorTypes[t.Type.String()]++
	}
	cfg.BOSTokenID = info.BOS
	cfg.EOSTokenIDs = append([]int(nil), info.EOS...)
	if err := cfg.Validate(); err != nil {
		return nil, nil, fmt.Errorf("gguf %s: %w", f.Path, err)
	}
	src, err := newGGUFSource(f, cfg)
	if err != nil {
		return nil, nil, err
	}
	m, err := FromTensors(cfg, src)
	if src.err != nil {
		return nil, nil, src.err
	}
	if err != nil {
		return nil, nil, fmt.Errorf("gguf %s: %w", f.Path, err)
	}
	return m, info, nil
}

// LoadGGUFTokenizer reads only the vocabulary of a GGUF file.
func LoadGGUFTokenizer(path string) (*tokenizer.Tokenizer, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	v, err := ReadGGUFVocab(f)
	if err != nil {
		return nil, err
	}
	return tokenizer.FromGGUFVocab(v)
}

// ggufArch is what differs between the architectures lorakit reads.
type ggufArch struct {
	modelType, hfArch string
	permuteQK         bool // convert_hf_to_gguf.py permuted q/k rows (LlamaModel.undo_permute)
	qkvBias           bool // q/k/v biases are part of the architecture (qwen2)
	qkNorm            bool // per-head RMSNorm of q and k (qwen3)
}

// ggufArchs are the general.architecture values lorakit runs. Mistral 7B,
// TinyLlama and SmolLM GGUFs use "llama" (llama.cpp has no plain "mistral"
// architecture; "mistral3" is a different model).
var ggufArchs = map[string]ggufArch{
	"llama": {modelType: "llama", hfArch: "LlamaForCausalLM", permuteQK: true},
	"qwen2": {modelType: "qwen2", hfArch: "Qwen2ForCausalLM", qkvBias: true},
	"qwen3": {modelType: "qwen3", hfArch: "Qwen3ForCausalLM", qkNorm: true},
}

// kvReader reads typed metadata, with errors that name the file and key.
type kvReader struct{ f *gguf.File }

func (r kvReader) errf(key, format string, args ...any) error {
	return fmt.Errorf("gguf %s: key %q: "+format, append([]any{r.f.Path, key}, args...)...)
}

func (r kvReader) missing(key string) error { return r.errf(key, "missing") }

// int reads an integer key; ok is false when the key is absent.
func (r kvReader) int(key string) (x int, ok bool, err error) {
	v, present := r.f.KV[key]
	if !present {
		return 0, false, nil
	}
	if v.Type == gguf.TypeArray {
		return 0, false, r.errf(key, "per-layer values (an array) are not supported: %w", model.ErrUnsupported)
	}
	n, isInt := v.Int()
	if !isInt {
		return 0, false, r.errf(key, "want an integer, got a %v", v.Type)
	}
	if n < 0 || n > math.MaxInt32 {
		return 0, false, r.errf(key, "value %d out of range", n)
	}
	return int(n), true, nil
}

func (r kvReader) requiredInt(key string) (int, error) {
	x, ok, err := r.int(key)
	if err == nil && !ok {
		err = r.missing(key)
	}
	return x, err
}

func (r kvReader) float(key string) (x float64, ok bool, err error) {
	v, present := r.f.KV[key]
	if !present {
		return 0, false, nil
	}
	x, isFloat := v.Float()
	if !isFloat {
		return 0, false, r.errf(key, "want a float, got a %v", v.Type)
	}
	if v.Type == gguf.TypeFloat32 {
		// The shortest decimal that is this float32 (1e-05, not
		// 9.999999747378752e-06), as the config.json it came from said.
		x, _ = strconv.ParseFloat(strconv.FormatFloat(x, 'g', -1, 32), 64)
	}
	return x, true, nil
}

func (r kvReader) string(key string) (s string, ok bool, err error) {
	v, present := r.f.KV[key]
	if !present {
		return "", false, nil
	}
	s, isString := v.String()
	if !isString {
		return "", false, r.errf(key, "want a string, got a %v", v.Type)
	}
	return s, true, nil
}

func (r kvReader) bool(key string, def bool) (bool, error) {
	v, present := r.f.KV[key]
	if !present {
		return def, nil
	}
	b, isBool := v.Bool()
	if !isBool {
		return false, r.errf(key, "want a bool, got a %v", v.Type)
	}
	return b, nil
}

// tokenID reads an optional token id key (-1 when absent).
func (r kvReader) tokenID(key string, n int) (int, error) {
	id, ok, err := r.int(key)
	if err != nil || !ok {
		return -1, err
	}
	if id >= n {
		return -1, r.errf(key, "token id %d is outside the %d tokens", id, n)
	}
	return id, nil
}

// GGUFConfig builds the model config from a GGUF file's metadata (and the
// shapes of a few tensors: the vocabulary size is token_embd's row count, an
// absent output.weight means tied embeddings, biases are on when present).
// BOSTokenID and EOSTokenIDs are left for FromGGUF to fill.
func GGUFConfig(f *gguf.File) (*model.Config, error) {
	r := kvReader{f}
	arch, ok, err := r.string("general.architecture")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, r.missing("general.architecture")
	}
	spec, ok := ggufArchs[arch]
	if !ok {
		return nil, r.errf("general.architecture", "architecture %q: %w (lorakit reads llama, qwen2 and qwen3 GGUFs)", arch, model.ErrUnsupported)
	}
	key := func(k string) string { return arch + "." + k }
	c := &model.Config{
		ModelType:     spec.modelType,
		Architectures: []string{spec.hfArch},
		HiddenAct:     "silu",
		BOSTokenID:    -1,
		QKNorm:        spec.qkNorm,
	}
	for _, x := range []struct {
		k   string
		dst *int
	}{
		{"embedding_length", &c.HiddenSize}, {"block_count", &c.NumLayers},
		{"feed_forward_length", &c.IntermediateSize}, {"attention.head_count", &c.NumHeads},
		{"context_length", &c.MaxPositions},
	} {
		if *x.dst, err = r.requiredInt(key(x.k)); err != nil {
			return nil, err
		}
		if *x.dst <= 0 && x.k != "context_length" {
			return nil, r.errf(key(x.k), "must be positive, got %d", *x.dst)
		}
	}
	if c.NumKVHeads, ok, err = r.int(key("attention.head_count_kv")); err != nil {
		return nil, err
	} else if !ok {
		c.NumKVHeads = c.NumHeads
	}
	if c.NumKVHeads <= 0 {
		return nil, r.errf(key("attention.head_count_kv"), "must be positive, got %d", c.NumKVHeads)
	}
	if c.HeadDim, ok, err = r.int(key("attention.key_length")); err != nil {
		return nil, err
	} else if !ok {
		if c.HiddenSize%c.NumHeads != 0 {
			return nil, fmt.Errorf("gguf %s: %s %d is not a multiple of %s %d and %s is absent", f.Path,
				key("embedding_length"), c.HiddenSize, key("attention.head_count"), c.NumHeads, key("attention.key_length"))
		}
		c.HeadDim = c.HiddenSize / c.NumHeads
	}
	if vl, ok, err := r.int(key("attention.value_length")); err != nil {
		return nil, err
	} else if ok && vl != c.HeadDim {
		return nil, r.errf(key("attention.value_length"), "%d differs from the key length %d: %w", vl, c.HeadDim, model.ErrUnsupported)
	}
	if rd, ok, err := r.int(key("rope.dimension_count")); err != nil {
		return nil, err
	} else if ok && rd != c.HeadDim {
		return nil, r.errf(key("rope.dimension_count"), "RoPE on %d of %d head dimensions (partial rotary): %w", rd, c.HeadDim, model.ErrUnsupported)
	}
	if n, ok, err := r.int(key("expert_count")); err != nil {
		return nil, err
	} else if ok && n > 0 {
		return nil, r.errf(key("expert_count"), "%d experts: mixture-of-experts models are %w", n, model.ErrUnsupported)
	}
	if c.RMSNormEps, ok, err = r.float(key("attention.layer_norm_rms_epsilon")); err != nil {
		return nil, err
	} else if !ok {
		return nil, r.missing(key("attention.layer_norm_rms_epsilon"))
	}
	if c.RopeTheta, ok, err = r.float(key("rope.freq_base")); err != nil {
		return nil, err
	} else if !ok {
		c.RopeTheta = 10000 // llama.cpp's default
	}
	if c.RopeScaling, err = ggufRopeScaling(r, arch); err != nil {
		return nil, err
	}
	switch ft, ok, _ := r.int("general.file_type"); {
	case !ok:
	case ft == 0:
		c.TorchDType = "float32"
	case ft == 1:
		c.TorchDType = "float16"
	case ft == 32:
		c.TorchDType = "bfloat16"
	}

	emb, ok := f.Tensor("token_embd.weight")
	if !ok {
		return nil, fmt.Errorf("gguf %s: tensor %q is missing", f.Path, "token_embd.weight")
	}
	if s := emb.Shape(); len(s) != 2 || s[1] != c.HiddenSize {
		return nil, fmt.Errorf("gguf %s: tensor %q has shape %v, want [vocab, %d]", f.Path, emb.Name, s, c.HiddenSize)
	}
	c.VocabSize = emb.Shape()[0]
	if n, ok, err := r.int(key("vocab_size")); err != nil {
		return nil, err
	} else if ok && n != c.VocabSize {
		return nil, r.errf(key("vocab_size"), "%d differs from the %d rows of token_embd.weight", n, c.VocabSize)
	}
	_, hasOutput := f.Tensor("output.weight")
	c.TieEmbeddings = !hasOutput
	_, hasQBias := f.Tensor("blk.0.attn_q.bias")
	_, hasOBias := f.Tensor("blk.0.attn_output.bias")
	switch {
	case spec.qkvBias:
		c.AttentionBias, c.OutputBias = true, false
	case spec.qkNorm:
		c.AttentionBias, c.OutputBias = hasQBias, false
	default:
		c.AttentionBias, c.OutputBias = hasQBias, hasOBias
	}
	if rf, ok := f.Tensor("rope_freqs.weight"); ok {
		if !spec.permuteQK {
			return nil, fmt.Errorf("gguf %s: tensor %q is not part of a %s model", f.Path, rf.Name, arch)
		}
		if c.RopeScaling != nil {
			return nil, fmt.Errorf("gguf %s: tensor %q and %s scaling together: %w", f.Path, rf.Name, c.RopeScaling.Type, model.ErrUnsupported)
		}
		if s := rf.Shape(); len(s) != 1 || s[0] != c.HeadDim/2 {
			return nil, fmt.Errorf("gguf %s: tensor %q has shape %v, want [%d]", f.Path, rf.Name, s, c.HeadDim/2)
		}
		factors, err := rf.Float32()
		if err != nil {
			return nil, err
		}
		if c.RopeScaling, err = ropeScalingFromFactors(c, factors); err != nil {
			return nil, fmt.Errorf("gguf %s: tensor %q: %w", f.Path, rf.Name, err)
		}
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("gguf %s: %w", f.Path, err)
	}
	return c, nil
}

// ggufRopeScaling reads <arch>.rope.scaling.* (and the older
// <arch>.rope.scale_linear). Llama 3.1-style scaling is not stored here but
// as the rope_freqs.weight tensor (ropeScalingFromFactors).
func ggufRopeScaling(r kvReader, arch string) (*model.RopeScaling, error) {
	typeKey, factorKey := arch+".rope.scaling.type", arch+".rope.scaling.factor"
	typ, _, err := r.string(typeKey)
	if err != nil {
		return nil, err
	}
	factor, hasFactor, err := r.float(factorKey)
	if err != nil {
		return nil, err
	}
	if typ == "" {
		lin, ok, err := r.float(arch + ".rope.scale_linear")
		if err != nil {
			return nil, err
		}
		if ok && lin != 1 {
			typ, factor, hasFactor, factorKey = "linear", lin, true, arch+".rope.scale_linear"
		}
	}
	switch typ {
	case "", "none":
		return nil, nil
	case "linear":
		if !hasFactor {
			return nil, r.missing(factorKey)
		}
		if !(factor >= 1) {
			return nil, r.errf(factorKey, "linear RoPE scaling factor %g must be >= 1", factor)
		}
		if factor == 1 {
			return nil, nil
		}
		return &model.RopeScaling{Type: "linear", Factor: factor}, nil
	}
	return nil, r.errf(typeKey, "RoPE scaling %q: %w (linear and Llama 3's rope_freqs are implemented)", typ, model.ErrUnsupported)
}

// ropeScalingFromFactors recovers Llama 3.1-style rope_scaling from the
// per-frequency divisors convert_hf_to_gguf.py stores as rope_freqs.weight
// (1 for high frequencies, factor for low ones, a smooth blend between). The
// result is accepted only if it reproduces every divisor.
func ropeScalingFromFactors(c *model.Config, factors []float32) (*model.RopeScaling, error) {
	plain := *c
	plain.RopeScaling = nil
	base := plain.InvFreq()
	factor := 1.0
	for _, r := range factors {
		if !(r >= 1) || math.IsInf(float64(r), 0) {
			return nil, fmt.Errorf("RoPE frequency divisor %g is not a Llama 3 scaling factor: %w", r, model.ErrUnsupported)
		}
		factor = max(factor, float64(r))
	}
	if factor == 1 {
		return nil, nil
	}
	matches := func(rs *model.RopeScaling) bool {
		cc := plain
		cc.RopeScaling = rs
		if cc.Validate() != nil {
			return false
		}
		got := cc.InvFreq()
		for j, f := range base {
			want := float64(f) / float64(factors[j])
			if math.Abs(float64(got[j])-want) > 1e-5*want {
				return false
			}
		}
		return true
	}
	// Llama 3.1 and 3.2 use low 1, high 4, 8192 original positions.
	cands := []*model.RopeScaling{{Type: "llama3", Factor: factor, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8192}}
	// Otherwise fit the blend: s = (1/r - 1/factor) / (1 - 1/factor) is
	// linear in the frequency f, s = a·f + b with a = L/(2π(high-low)) and
	// b = -low/(high-low); only the ratios are determined, so take the
	// original length L as the nearest integer to the value low = 1 gives.
	var smooth []int
	for j, r := range factors {
		if float64(r) > 1+1e-6 && float64(r) < factor*(1-1e-6) {
			smooth = append(smooth, j)
		}
	}
	if len(smooth) >= 2 {
		j1, j2 := smooth[0], smooth[len(smooth)-1]
		s := func(j int) float64 { return (1/float64(factors[j]) - 1/factor) / (1 - 1/factor) }
		f1, f2 := float64(base[j1]), float64(base[j2])
		if f1 != f2 {
			a := (s(j1) - s(j2)) / (f1 - f2)
			b := s(j1) - a*f1
			if a > 0 && b < 0 {
				width := -1 / b // high - low when low = 1
				L := math.Round(2 * math.Pi * a * width)
				if L > 0 {
					w := L / (2 * math.Pi * a)
					lo := -b * w
					cands = append(cands,
						&model.RopeScaling{Type: "llama3", Factor: factor, LowFreqFactor: lo, HighFreqFactor: lo + w, OriginalMaxPositionEmbeddings: int(L)},
						&model.RopeScaling{Type: "llama3", Factor: factor, LowFreqFactor: 1, HighFreqFactor: 1 + width, OriginalMaxPositionEmbeddings: int(L)})
				}
			}
		}
	}
	for _, rs := range cands {
		if matches(rs) {
			return rs, nil
		}
	}
	return nil, fmt.Errorf("per-frequency RoPE factors that are not Llama 3 rope scaling: %w", model.ErrUnsupported)
}

// ReadGGUFVocab reads the tokenizer.ggml.* metadata of a GGUF file.
func ReadGGUFVocab(f *gguf.File) (tokenizer.GGUFVocab, error) {
	r := kvReader{f}
	v := tokenizer.GGUFVocab{Name: f.Path}
	var ok bool
	var err error
	if v.Model, ok, err = r.string("tokenizer.ggml.model"); err != nil {
		return v, err
	} else if !ok {
		return v, r.missing("tokenizer.ggml.model")
	}
	if v.Model == "none" || v.Model == "no_vocab" {
		return v, r.errf("tokenizer.ggml.model", "the file has no vocabulary (%q)", v.Model)
	}
	if v.Pre, _, err = r.string("tokenizer.ggml.pre"); err != nil {
		return v, err
	}
	tokens := f.KV["tokenizer.ggml.tokens"]
	if !tokens.Valid() {
		return v, r.missing("tokenizer.ggml.tokens")
	}
	if v.Tokens, ok = tokens.Strings(); !ok {
		return v, r.errf("tokenizer.ggml.tokens", "want an array of strings")
	}
	n := len(v.Tokens)
	if s := f.KV["tokenizer.ggml.scores"]; s.Valid() {
		if v.Scores, ok = s.Floats(); !ok {
			return v, r.errf("tokenizer.ggml.scores", "want an array of floats")
		}
	}
	if t := f.KV["tokenizer.ggml.token_type"]; t.Valid() {
		ints, ok := t.Ints()
		if !ok {
			return v, r.errf("tokenizer.ggml.token_type", "want an array of integers")
		}
		v.Types = make([]int32, len(ints))
		for i, x := range ints {
			if x < math.MinInt32 || x > math.MaxInt32 {
				return v, r.errf("tokenizer.ggml.token_type", "entry %d = %d is not a token type", i, x)
			}
			v.Types[i] = int32(x)
		}
	}
	if m := f.KV["tokenizer.ggml.merges"]; m.Valid() {
		if v.Merges, ok = m.Strings(); !ok {
			return v, r.errf("tokenizer.ggml.merges", "want an array of strings")
		}
		if v.Merges == nil {
			v.Merges = []string{} // present but empty
		}
	}
	for _, x := range []struct {
		key string
		dst *int
	}{{"tokenizer.ggml.bos_token_id", &v.BOS}, {"tokenizer.ggml.eos_token_id", &v.EOS}, {"tokenizer.ggml.unknown_token_id", &v.UNK}} {
		if *x.dst, err = r.tokenID(x.key, n); err != nil {
			return v, err
		}
	}
	if v.AddBOS, err = r.bool("tokenizer.ggml.add_bos_token", tokenizer.GGUFDefaultAddBOS(v.Model, v.Pre)); err != nil {
		return v, err
	}
	if v.AddEOS, err = r.bool("tokenizer.ggml.add_eos_token", false); err != nil {
		return v, err
	}
	spacePrefix, err := r.bool("tokenizer.ggml.add_space_prefix", true)
	if err != nil {
		return v, err
	}
	v.NoSpacePrefix = !spacePrefix
	if v.ChatTemplate, _, err = r.string("tokenizer.chat_template"); err != nil {
		return v, err
	}
	return v, nil
}

// ggufTensor is one model tensor: its GGUF and Hugging Face names, the shape
// the config implies and, for permuted q/k rows, the number of heads.
type ggufTensor struct {
	gguf, hf    string
	shape       []int
	permuteHead int
	info        gguf.TensorInfo
}

// ggufLayerTensors lists a layer's tensors (suffixes after "blk.N.").
func ggufLayerTensors(c *model.Config, permute bool) []ggufTensor {
	D, F := c.HiddenSize, c.IntermediateSize
	qh, kh := 0, 0
	if permute {
		qh, kh = c.NumHeads, c.NumKVHeads
	}
	ts := []ggufTensor{
		{gguf: "attn_norm.weight", hf: "input_layernorm.weight", shape: []int{D}},
		{gguf: "attn_q.weight", hf: "self_attn.q_proj.weight", shape: []int{c.QDim(), D}, permuteHead: qh},
		{gguf: "attn_k.weight", hf: "self_attn.k_proj.weight", shape: []int{c.KVDim(), D}, permuteHead: kh},
		{gguf: "attn_v.weight", hf: "self_attn.v_proj.weight", shape: []int{c.KVDim(), D}},
		{gguf: "attn_output.weight", hf: "self_attn.o_proj.weight", shape: []int{D, c.QDim()}},
		{gguf: "ffn_norm.weight", hf: "post_attention_layernorm.weight", shape: []int{D}},
		{gguf: "ffn_gate.weight", hf: "mlp.gate_proj.weight", shape: []int{F, D}},
		{gguf: "ffn_up.weight", hf: "mlp.up_proj.weight", shape: []int{F, D}},
		{gguf: "ffn_down.weight", hf: "mlp.down_proj.weight", shape: []int{D, F}},
	}
	if c.AttentionBias {
		ts = append(ts,
			ggufTensor{gguf: "attn_q.bias", hf: "self_attn.q_proj.bias", shape: []int{c.QDim()}, permuteHead: qh},
			ggufTensor{gguf: "attn_k.bias", hf: "self_attn.k_proj.bias", shape: []int{c.KVDim()}, permuteHead: kh},
			ggufTensor{gguf: "attn_v.bias", hf: "self_attn.v_proj.bias", shape: []int{c.KVDim()}})
	}
	if c.OutputBias {
		ts = append(ts, ggufTensor{gguf: "attn_output.bias", hf: "self_attn.o_proj.bias", shape: []int{D}})
	}
	if c.QKNorm {
		ts = append(ts,
			ggufTensor{gguf: "attn_q_norm.weight", hf: "self_attn.q_norm.weight", shape: []int{c.HeadDim}},
			ggufTensor{gguf: "attn_k_norm.weight", hf: "self_attn.k_norm.weight", shape: []int{c.HeadDim}})
	}
	return ts
}

// ggufSource serves a GGUF file's tensors to FromTensors under their Hugging
// Face names, dequantized and un-permuted on demand.
type ggufSource struct {
	path  string
	byHF  map[string]*ggufTensor
	names []string
	err   error // a decoding error Tensor could not return
}

// newGGUFSource maps every tensor of f and checks that each one the config
// needs is there with the right shape and a readable type, and that there
// is no other.
func newGGUFSource(f *gguf.File, c *model.Config) (*ggufSource, error) {
	spec := ggufArchs[c.ModelType]
	want := []ggufTensor{
		{gguf: "token_embd.weight", hf: "model.embed_tokens.weight", shape: []int{c.VocabSize, c.HiddenSize}},
		{gguf: "output_norm.weight", hf: "model.norm.weight", shape: []int{c.HiddenSize}},
	}
	if !c.TieEmbeddings {
		want = append(want, ggufTensor{gguf: "output.weight", hf: "lm_head.weight", shape: []int{c.VocabSize, c.HiddenSize}})
	}
	layer := ggufLayerTensors(c, spec.permuteQK)
	for i := 0; i < c.NumLayers; i++ {
		for _, t := range layer {
			t.gguf = fmt.Sprintf("blk.%d.%s", i, t.gguf)
			t.hf = fmt.Sprintf("model.layers.%d.%s", i, t.hf)
			want = append(want, t)
		}
	}
	s := &ggufSource{path: f.Path, byHF: make(map[string]*ggufTensor, len(want))}
	expected := make(map[string]bool, len(want))
	for i := range want {
		t := &want[i]
		expected[t.gguf] = true
		info, ok := f.Tensor(t.gguf)
		if !ok {
			return nil, fmt.Errorf("gguf %s: tensor %q is missing (a %s model with this config needs it as %s)", f.Path, t.gguf, c.ModelType, t.hf)
		}
		if got := info.Shape(); !equalShape(got, t.shape) {
			return nil, fmt.Errorf("gguf %s: tensor %q has shape %v, the config (%s) wants %v", f.Path, t.gguf, got, shapeWhy(c, t.hf), t.shape)
		}
		switch info.Type {
		case gguf.F32, gguf.F16, gguf.BF16, gguf.Q8_0, gguf.Q4_0:
		default:
			return nil, fmt.Errorf("gguf %s: tensor %q: type %v: %w (lorakit dequantizes F32, F16, BF16, Q8_0 and Q4_0)", f.Path, t.gguf, info.Type, gguf.ErrUnsupported)
		}
		t.info = info
		s.byHF[t.hf] = t
		s.names = append(s.names, t.hf)
	}
	for _, info := range f.Tensors {
		if expected[info.Name] || info.Name == "rope_freqs.weight" || strings.HasSuffix(info.Name, ".attn_rot_embd") {
			continue
		}
		why := "it is not part of a " + c.ModelType + " model lorakit can run"
		if rest, ok := strings.CutPrefix(info.Name, "blk."); ok {
			idx, _, _ := strings.Cut(rest, ".")
			if n, err := strconv.Atoi(idx); err == nil && n >= c.NumLayers {
				why = fmt.Sprintf("the file has %d blocks", c.NumLayers)
			}
		}
		return nil, fmt.Errorf("gguf %s: unexpected tensor %q: %s", f.Path, info.Name, why)
	}
	return s, nil
}

// shapeWhy names the config values a tensor's shape comes from.
func shapeWhy(c *model.Config, hf string) string {
	return fmt.Sprintf("hidden %d, intermediate %d, %d heads and %d kv heads of %d, vocab %d; %s",
		c.HiddenSize, c.IntermediateSize, c.NumHeads, c.NumKVHeads, c.HeadDim, c.VocabSize, hf)
}

func (s *ggufSource) Names() []string { return s.names }

// Tensor returns the named tensor. F32, F16 and BF16 tensors that need no
// un-permuting alias the file (FromTensors converts them or keeps them 16-bit
// itself); F16 and BF16 ones that do are un-permuted in their own type; the
// others are decoded here.
func (s *ggufSource) Tensor(name string) (safetensors.Tensor, bool) {
	t, ok := s.byHF[name]
	if !ok || s.err != nil {
		return safetensors.Tensor{}, false
	}
	dt := map[gguf.GGMLType]tensor.DType{gguf.F32: tensor.F32, gguf.F16: tensor.F16, gguf.BF16: tensor.BF16}[t.info.Type]
	if t.permuteHead == 0 && dt != "" {
		return safetensors.Tensor{Name: name, DType: dt, Shape: t.shape, Data: t.info.Data}, true
	}
	if n, err := tensor.NumElements(t.shape); err == nil && dt.Is16() && len(t.info.Data) == 2*n {
		cols := 1
		if len(t.shape) == 2 {
			cols = t.shape[1]
		}
		return safetensors.Tensor{Name: name, DType: dt, Shape: t.shape, Data: permuteRows(t.info.Data, t.permuteHead, 2*cols, true)}, true
	}
	x, err := t.info.Float32()
	if err != nil {
		s.err = err
		return safetensors.Tensor{}, false
	}
	if t.permuteHead > 0 {
		cols := 1
		if len(t.shape) == 2 {
			cols = t.shape[1]
		}
		x = ggufUnpermute(x, t.permuteHead, cols)
	}
	return safetensors.Tensor{Name: name, DType: tensor.F32, Shape: t.shape, Data: safetensors.F32Bytes(x)}, true
}

// ggufPermute reorders the rows of a q or k projection ([heads·head_dim,
// cols], or a bias with cols = 1) from Hugging Face's rotate_half layout to
// llama.cpp's interleaved one, as convert_hf_to_gguf.py's LlamaModel.permute:
// w.reshape(heads, 2, head_dim/2, cols).swapaxes(1, 2). Within each head, row
// t·half + j moves to 2j + t.
func ggufPermute(w []float32, heads, cols int) []float32 {
	return permuteRows(w, heads, cols, false)
}

// ggufUnpermute is the inverse of ggufPermute: row 2j + t of each head goes
// back to t·half + j.
func ggufUnpermute(w []float32, heads, cols int) []float32 {
	return permuteRows(w, heads, cols, true)
}

func permuteRows[T any](w []T, heads, cols int, inverse bool) []T {
	rows := len(w) / cols
	hd := rows / heads
	if rows*cols != len(w) || hd*heads != rows || hd%2 != 0 {
		panic(errors.New("llama: rotary permutation of a tensor that is not heads × even head_dim rows"))
	}
	half := hd / 2
	out := make([]T, len(w))
	for h := range heads {
		for t := range 2 {
			for j := range half {
				hfRow := h*hd + t*half + j
				ggRow := h*hd + 2*j + t
				src, dst := hfRow, ggRow
				if inverse {
					src, dst = ggRow, hfRow
				}
				copy(out[dst*cols:(dst+1)*cols], w[src*cols:(src+1)*cols])
			}
		}
	}
	return out
}
