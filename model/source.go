package model

import (
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

func (d Dir) ReadFile(name string) ([]byte, error) { return os.ReadFile(filepath.Join(string(d), name)) }

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
