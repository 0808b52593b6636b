// Package models embeds the default model, tiny-brown (a 5.8M-parameter
// Llama trained on the Brown corpus, F32), so `lorakit demo` works on a
// machine that has nothing but the binary.
package models

import (
	_ "embed"

	"github.com/lorakit/lorakit/model"
)

//go:embed tiny-brown/config.json
var tinyBrownConfig []byte

//go:embed tiny-brown/generation_config.json
var tinyBrownGenConfig []byte

//go:embed tiny-brown/tokenizer.json
var tinyBrownTokenizer []byte

//go:embed tiny-brown/tokenizer_config.json
var tinyBrownTokenizerConfig []byte

//go:embed tiny-brown/model.safetensors
var tinyBrownWeights []byte

// DefaultName is how the embedded model is named on the command line.
const DefaultName = "tiny-brown"

// TinyBrown is the embedded default model as a model source.
func TinyBrown() model.Mem {
	return model.Mem{Label: "embedded:tiny-brown", Files: map[string][]byte{
		"config.json":            tinyBrownConfig,
		"generation_config.json": tinyBrownGenConfig,
		"tokenizer.json":         tinyBrownTokenizer,
		"tokenizer_config.json":  tinyBrownTokenizerConfig,
		"model.safetensors":      tinyBrownWeights,
	}}
}
