package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/lorakit/lorakit/format/safetensors"
)

// Source is where a model's files come from: a Hugging Face folder on disk or
// a copy embedded in the binary. Loaders read through it so the same code
// serves both.
type Source interface {
	// Name identifies the source in messages (a path or "embedded:tiny-brown").
	Name() string
	// ReadFile returns a small file of the folder (config.json, tokenizer.json);
	// a missing file is an error wrapping fs.ErrNotExist.
	ReadFile(name string) ([]byte, error)
	// Weights opens the model's safetensors, sharded or not.
	Weights() (*safetensors.Set, error)
}

// Dir is a Hugging Face model folder on disk.
type Dir string

func (d Dir) Name() string { return string(d) }

func (d Dir) ReadFile(name string) ([]byte, error) {
	return os.ReadFile(filepath.Join(string(d), name))
}

func (d Dir) Weights() (*safetensors.Set, error) { return safetensors.OpenDir(string(d)) }

// Mem is a model folder held in memory, such as the embedded default model.
type Mem struct {
	Label string
	Files map[string][]byte
}

func (m Mem) Name() string { return m.Label }

func (m Mem) ReadFile(name string) ([]byte, error) {
	b, ok := m.Files[name]
	if !ok {
		return nil, fmt.Errorf("%s: %s: %w", m.Label, name, fs.ErrNotExist)
	}
	return b, nil
}

func (m Mem) Weights() (*safetensors.Set, error) {
	b, ok := m.Files["model.safetensors"]
	if !ok {
		return nil, fmt.Errorf("%s: model.safetensors: %w", m.Label, fs.ErrNotExist)
	}
	f, err := safetensors.Parse(m.Label+"/model.safetensors", b)
	if err != nil {
		return nil, err
	}
	return safetensors.NewSet(f)
}

// ReadConfig loads and validates config.json from a source.
func ReadConfig(src Source) (*Config, error) {
	data, err := src.ReadFile("config.json")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src.Name(), err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src.Name(), err)
	}
	return c, nil
}

// IsNotExist reports whether err means a file is absent.
func IsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// GenerationConfig is the part of generation_config.json lorakit uses: the
// end-of-sequence ids and the model author's default sampling settings.
type GenerationConfig struct {
	EOSTokenIDs       []int
	DoSample          bool
	Temperature       float64
	TopK              int
	TopP              float64
	MinP              float64
	RepetitionPenalty float64
	MaxNewTokens      int
}

// ReadGenerationConfig reads generation_config.json; a missing file gives an
// empty config (greedy, no extra EOS ids).
func ReadGenerationConfig(src Source) (*GenerationConfig, error) {
	data, err := src.ReadFile("generation_config.json")
	if IsNotExist(err) {
		return &GenerationConfig{}, nil
	}
	if err != nil {
		return nil, err
	}
	var raw struct {
		EOS               json.RawMessage `json:"eos_token_id"`
		DoSample          bool            `json:"do_sample"`
		Temperature       *float64        `json:"temperature"`
		TopK              *int            `json:"top_k"`
		TopP              *float64        `json:"top_p"`
		MinP              *float64        `json:"min_p"`
		RepetitionPenalty *float64        `json:"repetition_penalty"`
		MaxNewTokens      *int            `json:"max_new_tokens"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%s: generation_config.json: %w", src.Name(), err)
	}
	g := &GenerationConfig{DoSample: raw.DoSample, Temperature: 1, TopK: 50, TopP: 1}
	if g.EOSTokenIDs, err = ParseIDList(raw.EOS); err != nil {
		return nil, fmt.Errorf("%s: generation_config.json: eos_token_id: %w", src.Name(), err)
	}
	if raw.Temperature != nil {
		g.Temperature = *raw.Temperature
	}
	if raw.TopK != nil {
		g.TopK = *raw.TopK
	}
	if raw.TopP != nil {
		g.TopP = *raw.TopP
	}
	if raw.MinP != nil {
		g.MinP = *raw.MinP
	}
	if raw.RepetitionPenalty != nil {
		g.RepetitionPenalty = *raw.RepetitionPenalty
	}
	if raw.MaxNewTokens != nil {
		g.MaxNewTokens = *raw.MaxNewTokens
	}
	return g, nil
}
