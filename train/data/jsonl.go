// Package data reads training and evaluation examples from JSON Lines files
// and turns them into token ids and labels, with the conventions of DESIGN.md §4.
package data

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// Tokenizer is what examples are encoded with.
type Tokenizer interface {
	Encode(text string, addSpecial bool) []int
	AddsBOS() bool
}

// Specials are the ids the conventions add around text.
type Specials struct {
	BOS int // -1: none
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

// ReadFile reads every example of a JSONL file.
func ReadFile(path string, tok Tokenizer, sp Specials) ([]Example, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Read(path, f, tok, sp)
}

// Read reads examples from r; name is used in errors ("file:line: ...").
// Blank lines are skipped; any other line that is not a known example format
// is an error naming the line.
func Read(name string, r io.Reader, tok Tokenizer, sp Specials) ([]Example, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	var out []Example
	for line := 1; ; line++ {
		b, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(b)) > 0 {
			ex, perr := parseLine(b, tok, sp)
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

func parseLine(b []byte, tok Tokenizer, sp Specials) (Example, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return Example{}, fmt.Errorf("not a JSON object: %w", err)
	}
	if fields == nil {
		return Example{}, fmt.Errorf("not a JSON object")
	}
	str := func(key string) (string, error) {
		var s string
		if err := json.Unmarshal(fields[key], &s); err != nil {
			return "", fmt.Errorf("field %q must be a string", key)
		}
		return s, nil
	}
	switch {
	case fields["input_ids"] != nil:
		return preTokenized(fields)
	case fields["text"] != nil:
		text, err := str("text")
		if err != nil {
			return Example{}, err
		}
		ids := encodeWithBOS(tok, sp, text)
		if sp.EOS >= 0 {
			ids = append(ids, sp.EOS)
		}
		return Example{InputIDs: ids, Labels: append([]int(nil), ids...)}, nil
	case fields["prompt"] != nil && fields["completion"] != nil:
		prompt, err := str("prompt")
		if err != nil {
			return Example{}, err
		}
		completion, err := str("completion")
		if err != nil {
			return Example{}, err
		}
		p := encodeWithBOS(tok, sp, prompt)
		// Encode the whole string and split at the prompt's length so the
		// boundary tokens are those the model sees at inference time.
		ids := encodeWithBOS(tok, sp, prompt+completion)
		if sp.EOS >= 0 {
			ids = append(ids, sp.EOS)
		}
		labels := append([]int(nil), ids...)
		for i := 0; i < len(p) && i < len(labels); i++ {
			labels[i] = IgnoreIndex
		}
		return Example{InputIDs: ids, Labels: labels}, nil
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	return Example{}, fmt.Errorf("unrecognised example with keys %q: want text, prompt+completion or input_ids", keys)
}

// encodeWithBOS puts <bos> first exactly once: the tokenizer's post-processor
// adds it when it has one, otherwise the model's bos_token_id is prepended.
func encodeWithBOS(tok Tokenizer, sp Specials, text string) []int {
	ids := tok.Encode(text, true)
	if !tok.AddsBOS() && sp.BOS >= 0 {
		ids = append([]int{sp.BOS}, ids...)
	}
	return ids
}

func preTokenized(fields map[string]json.RawMessage) (Example, error) {
	var ex Example
	if err := json.Unmarshal(fields["input_ids"], &ex.InputIDs); err != nil {
		return ex, fmt.Errorf("field \"input_ids\" must be a list of ints")
	}
	if raw := fields["labels"]; raw != nil {
		if err := json.Unmarshal(raw, &ex.Labels); err != nil {
			return ex, fmt.Errorf("field \"labels\" must be a list of ints")
		}
		if len(ex.Labels) != len(ex.InputIDs) {
			return ex, fmt.Errorf("labels has %d entries, input_ids %d", len(ex.Labels), len(ex.InputIDs))
		}
	} else {
		ex.Labels = append([]int(nil), ex.InputIDs...)
	}
	for i, id := range ex.InputIDs {
		if id < 0 {
			return ex, fmt.Errorf("input_ids[%d] = %d is negative", i, id)
		}
	}
	for i, l := range ex.Labels {
		if l < 0 && l != IgnoreIndex {
			return ex, fmt.Errorf("labels[%d] = %d: negative labels must be -100", i, l)
		}
	}
	return ex, nil
}

// Truncate cuts examples longer than n tokens and marks them.
func Truncate(exs []Example, n int) (truncated int) {
	for i := range exs {
		if n > 0 && len(exs[i].InputIDs) > n {
			exs[i].InputIDs = exs[i].InputIDs[:n]
			exs[i].Labels = exs[i].Labels[:n]
			exs[i].Truncated = true
			truncated++
		}
	}
	return truncated
}
