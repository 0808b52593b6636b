package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/lorakit/lorakit/format/safetensors"
	"github.com/lorakit/lorakit/lora"
	"github.com/lorakit/lorakit/model"
	"github.com/lorakit/lorakit/model/llama"
	"github.com/lorakit/lorakit/models"
	"github.com/lorakit/lorakit/tensor"
	"github.com/lorakit/lorakit/tokenizer"
	"github.com/lorakit/lorakit/train"
)

// loadedModel is a model with everything needed to talk to it.
type loadedModel struct {
	Source model.Source
	Model  *llama.Model
	Tok    *tokenizer.Tokenizer
	Gen    *model.GenerationConfig
	// gguf is set for a model read from a GGUF file: its add_bos_token
	// decides <bos> alone, as in llama.cpp.
	gguf *llama.GGUFInfo
}

// ggufSource names a GGUF file; it has no side files (tokenizer and
// generation settings live inside the GGUF).
type ggufSource string

func (g ggufSource) Name() string { return string(g) }

func (g ggufSource) ReadFile(name string) ([]byte, error) {
	return nil, fmt.Errorf("%s: %s: %w", string(g), name, fs.ErrNotExist)
}

func (g ggufSource) Weights() (*safetensors.Set, error) {
	return nil, fmt.Errorf("%s: a GGUF file has no safetensors weights", string(g))
}

// resolveSource maps --model to files: empty or "tiny-brown" is the embedded
// default; a directory is a Hugging Face folder; a .safetensors file means the
// folder it is in.
func resolveSource(path string) (model.Source, error) {
	if path == "" || path == models.DefaultName {
		if _, err := os.Stat(path); path == "" || err != nil {
			return models.TinyBrown(), nil
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	if st.IsDir() {
		return model.Dir(path), nil
	}
	if filepath.Ext(path) == ".safetensors" {
		return model.Dir(filepath.Dir(path)), nil
	}
	return nil, fmt.Errorf("model %s: not a Hugging Face folder (config.json + safetensors) or a .gguf file", path)
}

// quantizeAtLoad is --quantize: "" (as stored) or "nf4".
var quantizeAtLoad string

// dtypeAtLoad is --dtype: "" (as stored), f32, bf16 or f16.
var dtypeAtLoad string

// computeDTypeAtLoad is --compute-dtype: the dtype NF4 products compute in,
// "" for the default: bf16 when --quantize nf4 quantizes at load (the QLoRA
// paper's bnb_4bit_compute_dtype, twice the float32 rate with AVX512_BF16),
// what config.json says for a folder stored in NF4.
var computeDTypeAtLoad string

// applyNF4Compute applies --compute-dtype to a model whose projections are
// NF4; quantizedNow tells the default (bf16) from "as stored".
func applyNF4Compute(m *llama.Model, quantizedNow bool) error {
	d := computeDTypeAtLoad
	if d == "" {
		if !quantizedNow {
			return nil
		}
		d = "bfloat16"
	}
	if err := m.SetNF4ComputeDType(d); err != nil {
		return fmt.Errorf("--compute-dtype: %w", err)
	}
	return nil
}

// applyDType holds the weights not quantized to NF4 in --dtype's type (what
// torch_dtype does in from_pretrained).
func applyDType(m *llama.Model) error {
	d, ok := map[string]tensor.DType{"": "", "f32": tensor.F32, "bf16": tensor.BF16, "f16": tensor.F16}[strings.ToLower(dtypeAtLoad)]
	if !ok {
		return fmt.Errorf("--dtype %q: want f32, bf16 or f16", dtypeAtLoad)
	}
	if d == "" {
		return nil
	}
	defer train.LeanGC()()
	return m.ConvertWeights(d)
}

// applyQuantize applies --dtype, then quantizes a freshly loaded model's
// projections as --quantize asks.
func applyQuantize(m *llama.Model) error {
	if err := applyDType(m); err != nil {
		return err
	}
	switch quantizeAtLoad {
	case "":
		if m.Quantized() {
			return applyNF4Compute(m, false)
		}
		return nil
	case "nf4":
		// Each layer's float32 weight becomes garbage as it is quantized;
		// collecting often keeps the peak near the quantized model's size
		// instead of the float32 one's.
		defer train.LeanGC()()
		if err := m.QuantizeNF4(); err != nil {
			return err
		}
		return applyNF4Compute(m, true)
	}
	return fmt.Errorf("--quantize %q: only nf4 is supported", quantizeAtLoad)
}

func loadModel(path string) (*loadedModel, error) {
	lm, err := loadModelAsStored(path)
	if err != nil {
		return nil, err
	}
	if err := applyQuantize(lm.Model); err != nil {
		return nil, err
	}
	return lm, nil
}

func loadModelAsStored(path string) (*loadedModel, error) {
	if strings.EqualFold(filepath.Ext(path), ".gguf") {
		m, info, err := llama.LoadGGUF(path)
		if err != nil {
			return nil, err
		}
		return &loadedModel{Source: ggufSource(path), Model: m, Tok: info.Tokenizer, Gen: &model.GenerationConfig{EOSTokenIDs: info.EOS}, gguf: info}, nil
	}
	src, err := resolveSource(path)
	if err != nil {
		return nil, err
	}
	m, err := llama.Load(src)
	if err != nil {
		return nil, err
	}
	tok, err := loadTokenizerFrom(src)
	if err != nil {
		return nil, err
	}
	if tv := tok.VocabSize(); tv > m.Config.VocabSize {
		return nil, fmt.Errorf("%s: tokenizer has %d ids but the model's vocab_size is %d", src.Name(), tv, m.Config.VocabSize)
	}
	gen, err := model.ReadGenerationConfig(src)
	if err != nil {
		return nil, err
	}
	return &loadedModel{Source: src, Model: m, Tok: tok, Gen: gen}, nil
}

// loadTokenizerFrom reads tokenizer.json (+ tokenizer_config.json), or a
// SentencePiece tokenizer.model when there is no tokenizer.json.
func loadTokenizerFrom(src model.Source) (*tokenizer.Tokenizer, error) {
	cfg, err := src.ReadFile("tokenizer_config.json")
	if err != nil && !model.IsNotExist(err) {
		return nil, err
	}
	tj, err := src.ReadFile("tokenizer.json")
	if err == nil {
		tok, err := tokenizer.Parse(tj, cfg)
		if err != nil {
			return nil, fmt.Errorf("%s: tokenizer.json: %w", src.Name(), err)
		}
		return tok, nil
	}
	if !model.IsNotExist(err) {
		return nil, err
	}
	spm, err := src.ReadFile("tokenizer.model")
	if err != nil {
		return nil, fmt.Errorf("%s: no tokenizer.json or tokenizer.model", src.Name())
	}
	tok, err := tokenizer.ParseSentencePieceModel(spm)
	if err != nil {
		return nil, fmt.Errorf("%s: tokenizer.model: %w", src.Name(), err)
	}
	return tok, nil
}

// loadTokenizer accepts a model folder, a tokenizer.json / tokenizer.model
// file, or the embedded default's name.
func loadTokenizer(path string) (*tokenizer.Tokenizer, error) {
	if st, err := os.Stat(path); err == nil && !st.IsDir() {
		if strings.EqualFold(filepath.Ext(path), ".gguf") {
			return llama.LoadGGUFTokenizer(path)
		}
		if filepath.Ext(path) == ".model" {
			return tokenizer.LoadSentencePieceModel(path)
		}
		return tokenizer.LoadFile(path)
	}
	src, err := resolveSource(path)
	if err != nil {
		return nil, err
	}
	return loadTokenizerFrom(src)
}

// eosIDs is every id that ends generation: config.json's, generation_config's
// and the tokenizer's eos token.
func (lm *loadedModel) eosIDs() []int {
	seen := map[int]bool{}
	var ids []int
	add := func(xs ...int) {
		for _, x := range xs {
			if x >= 0 && !seen[x] {
				seen[x] = true
				ids = append(ids, x)
			}
		}
	}
	add(lm.Model.Config.EOSTokenIDs...)
	add(lm.Gen.EOSTokenIDs...)
	if id, ok := lm.Tok.EOS(); ok {
		add(id)
	}
	return ids
}

// bosID is the id prepended to prompts when the tokenizer adds none itself
// (DESIGN.md §4: <bos> exactly once), or -1.
func (lm *loadedModel) bosID() int {
	if lm.Tok.AddsBOS() || lm.gguf != nil {
		return -1
	}
	if lm.Model.Config.BOSTokenID >= 0 {
		return lm.Model.Config.BOSTokenID
	}
	if id, ok := lm.Tok.BOS(); ok {
		return id
	}
	return -1
}

// encodePrompt tokenizes a prompt with exactly one <bos>.
func (lm *loadedModel) encodePrompt(text string) []int {
	ids := lm.Tok.Encode(text, true)
	if b := lm.bosID(); b >= 0 {
		ids = append([]int{b}, ids...)
	}
	return ids
}

// attachAdapters loads PEFT adapters and applies them unmerged. One adapter is
// attached as is; several are combined into one (their deltas add up).
func (lm *loadedModel) attachAdapters(paths []string) error {
	if len(paths) == 0 {
		return nil
	}
	var as []*lora.Adapter
	for _, p := range paths {
		a, err := lora.Load(p)
		if err != nil {
			return err
		}
		if err := a.Check(lm.Model); err != nil {
			return fmt.Errorf("adapter %s: %w", p, err)
		}
		as = append(as, a)
	}
	a := as[0]
	if len(as) > 1 {
		var err error
		if a, err = lora.Combine(as, nil); err != nil {
			return err
		}
	}
	return lm.Model.Attach(a)
}

// servingGCPercent is the garbage collector's heap growth while serving. The
// live heap of a server is the model (large, pointer-free, cheap to mark) and
// a step's garbage is small, so Go's default of 100 would let the resident
// set grow to about twice the model before a collection; 20 keeps it within
// a fifth of it for a few short collections per second.
const servingGCPercent = 20

// servingGC sets servingGCPercent unless GOGC is set in the environment.
func servingGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(servingGCPercent)
	}
}
