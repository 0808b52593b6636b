// Package data reads training and evaluation examples from JSON Lines files
// and turns them into token ids and labels, with the conventions of
// DESIGN.md §4.
//
// The format is detected per line from its keys; when a line has the keys of
// several formats the most specific wins, in this order (datasets often
// carry a derived "text" column next to their structured fields, e.g.
// tatsu-lab/alpaca):
//
//	{"input_ids": [...], "labels": [...]}        pre-tokenized, used as given (pretokenized.go)
//	{"messages": [{"role", "content"}, ...]}      the model's chat template; loss on assistant turns (messages.go)
//	{"instruction", "input", "output"}            Alpaca template; loss on the output (formats.go)
//	{"prompt", "completion"}                      loss on the completion (formats.go)
//	{"text"}                                      <bos> text <eos>, loss everywhere (formats.go)
//
// Labels align with input ids (the HF convention: the loss shifts them, so
// logits at t predict labels[t+1]); IgnoreIndex marks tokens without loss.
// How label masks are aligned with tokens is explained in mask.go.
package data

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/lorakit/lorakit/chat"
)

// Tokenizer is what examples are encoded with. tokenizer.Tokenizer is one;
// the optional methods it also has (BOS, EOS, IDToToken, IsSpecial,
// VocabSize, ChatTemplate) are used when present, see tokinfo.go.
type Tokenizer interface {
	Encode(text string, addSpecial bool) []int
	AddsBOS() bool
}

// Specials are the ids the conventions add around text.
type Specials struct {
	BOS int // -1: none (or the tokenizer adds it itself)
	EOS int // -1: none
}

// IgnoreIndex marks a label that takes no part in the loss.
const IgnoreIndex = -100

// Example is one tokenized example: labels align with input ids (HF
// convention, the shift happens in the loss); IgnoreIndex marks positions
// without loss.
type Example struct {
	Line      int // 1-based line in the source file
	InputIDs  []int
	Labels    []int
	Truncated bool
}

// Options change how examples are built.
type Options struct {
	// TrainOnInputs puts the loss on every token: the prompt of
	// prompt/completion, the instruction of Alpaca and the system, user and
	// tool turns (and the template's markup) of messages, as Axolotl's
	// train_on_inputs. Pre-tokenized labels are used as given regardless.
	TrainOnInputs bool
	// ChatTemplate is the Jinja template for messages; "" means the
	// tokenizer's own (when it has a ChatTemplate method), else chat.ChatML.
	ChatTemplate string
	// SeqLen is the training sequence length, carried for callers that pass
	// Options around. ReadOptions does not cut examples: Truncate does, so
	// that the caller can report how many it cut (DESIGN.md §4).
	SeqLen int
}

// ReadFile reads every example of a JSONL file with the default Options.
func ReadFile(path string, tok Tokenizer, sp Specials) ([]Example, error) {
	return ReadFileOptions(path, tok, sp, Options{})
}

// ReadFileOptions reads every example of a JSONL file.
func ReadFileOptions(path string, tok Tokenizer, sp Specials, opts Options) ([]Example, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadOptions(path, f, tok, sp, opts)
}

// Read reads examples from r with the default Options; name is used in
// errors ("file:line: ...").
func Read(name string, r io.Reader, tok Tokenizer, sp Specials) ([]Example, error) {
	return ReadOptions(name, r, tok, sp, Options{})
}

// ReadOptions reads examples from r; name is used in errors
// ("file:line: ..."). Blank lines are skipped; any other line that is not a
// well-formed example of a known format is an error naming the file and the
// 1-based line, and nothing is returned: nothing is silently dropped.
func ReadOptions(name string, r io.Reader, tok Tokenizer, sp Specials, opts Options) ([]Example, error) {
	rd := &reader{tok: tok, sp: sp, opts: opts}
	br := bufio.NewReaderSize(r, 1<<20)
	var out []Example
	for line := 1; ; line++ {
		b, err := br.ReadBytes('\n')
		if line == 1 {
			b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // UTF-8 byte order mark
		}
		if len(bytes.TrimSpace(b)) > 0 {
			ex, perr := rd.parseLine(b)
			if perr != nil {
				return nil, fmt.Errorf("%s:%d: %w", name, line, perr)
			}
			ex.Line = line
			out = append(out, ex)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
	}
	return out, nil
}

// reader is the state of one ReadOptions call: the chat template is
// compiled, and the tokenizer's special tokens listed, once, on first use.
type reader struct {
	tok  Tokenizer
	sp   Specials
	opts Options

	tmpl     *chat.Template
	tmplErr  error
	info     *tokInfo
	infoDone bool
}
