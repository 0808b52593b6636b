// Package datasets embeds the Brown-corpus adaptation domains used by the demo
// and the tests: h (government documents) and p (romance fiction), held out
// from tiny-brown's pretraining, as {"text": ...} JSON Lines.
package datasets

import "embed"

//go:embed brown/*.jsonl
var brown embed.FS

// Brown returns one file of the Brown domains: h_train, h_test, p_train or
// p_test (".jsonl" is added).
func Brown(name string) ([]byte, error) { return brown.ReadFile("brown/" + name + ".jsonl") }
