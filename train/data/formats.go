package data

import (
	"fmt"
)

// parseLine turns one JSONL line into an example, choosing the format from
// the keys (precedence in the package comment).
func (rd *reader) parseLine(b []byte) (Example, error) {
	o, err := decodeObject(b)
	if err != nil {
		return Example{}, err
	}
	switch {
	case o.has("input_ids"):
		return preTokenized(o)
	case o.has("messages"):
		return rd.messages(o)
	case o.has("instruction") || o.has("output"):
		return rd.alpaca(o)
	case o.has("prompt") || o.has("completion"):
		prompt, err := o.str("prompt")
		if err != nil {
			return Example{}, fmt.Errorf("prompt/completion example: %w", err)
		}
		completion, err := o.str("completion")
		if err != nil {
			return Example{}, fmt.Errorf("prompt/completion example: %w", err)
		}
		return rd.promptCompletion(prompt, completion), nil
	case o.has("text"):
		text, err := o.str("text")
		if err != nil {
			return Example{}, err
		}
		return rd.text(text), nil
	}
	return Example{}, fmt.Errorf("unrecognised example with keys %q: want text, prompt+completion, instruction+output (Alpaca), messages or input_ids", o.keys())
}

// text is {"text"}: <bos> text <eos>, the loss on every predicted token,
// the eos too (as a causal-LM pretraining example in HF run_clm).
func (rd *reader) text(text string) Example {
	ids := encodeWithBOS(rd.tok, rd.sp, text)
	if rd.sp.EOS >= 0 {
		ids = append(ids, rd.sp.EOS)
	}
	return Example{InputIDs: ids, Labels: append([]int(nil), ids...)}
}

// promptCompletion is <bos> prompt completion <eos> with the loss on the
// completion and the eos (TRL's SFTTrainer with completion_only_loss, the
// default for prompt-completion data), or everywhere with TrainOnInputs.
//
// The text is tokenized whole, as the model will see it at inference, and
// the prompt's tokens are those it shares with the prompt tokenized alone
// (mask.go): TRL masks len(tokenize(prompt)) tokens and warns when that is
// not a prefix of tokenize(prompt+completion); here a token that merges
// the end of the prompt with the start of the completion gets the loss.
func (rd *reader) promptCompletion(prompt, completion string) Example {
	enc := func(s string) []int { return encodeWithBOS(rd.tok, rd.sp, s) }
	text := prompt + completion
	ids := enc(text)
	labels := maskOutside(ids, enc, text, []span{{len(prompt), len(text)}}, rd.opts.TrainOnInputs)
	if rd.sp.EOS >= 0 {
		ids = append(ids, rd.sp.EOS)
		labels = append(labels, rd.sp.EOS)
	}
	return Example{InputIDs: ids, Labels: labels}
}

// The Stanford Alpaca templates (tatsu-lab/stanford_alpaca, train.py
// PROMPT_DICT), also Axolotl's "alpaca" prompt style. The response follows
// "### Response:\n" directly and is closed by <eos>.
const (
	AlpacaPromptWithInput = "Below is an instruction that describes a task, paired with an input that provides further context. " +
		"Write a response that appropriately completes the request.\n\n" +
		"### Instruction:\n%s\n\n### Input:\n%s\n\n### Response:\n"
	AlpacaPromptNoInput = "Below is an instruction that describes a task. " +
		"Write a response that appropriately completes the request.\n\n" +
		"### Instruction:\n%s\n\n### Response:\n"
)

// AlpacaPrompt renders the prompt of an Alpaca example: the template with
// input when input is not empty, the one without otherwise (as Stanford's
// train.py, which tests example.get("input", "") != "").
func AlpacaPrompt(instruction, input string) string {
	if input != "" {
		return fmt.Sprintf(AlpacaPromptWithInput, instruction, input)
	}
	return fmt.Sprintf(AlpacaPromptNoInput, instruction)
}

// alpaca is {"instruction", "input" (optional, may be empty or null),
// "output"}: AlpacaPrompt, then output and <eos>; the loss on output and eos
// only, unless TrainOnInputs (Stanford's train.py masks the prompt tokens).
func (rd *reader) alpaca(o object) (Example, error) {
	instruction, err := o.str("instruction")
	if err != nil {
		return Example{}, fmt.Errorf("alpaca example: %w", err)
	}
	input, err := o.optStr("input")
	if err != nil {
		return Example{}, fmt.Errorf("alpaca example: %w", err)
	}
	output, err := o.str("output")
	if err != nil {
		return Example{}, fmt.Errorf("alpaca example: %w", err)
	}
	return rd.promptCompletion(AlpacaPrompt(instruction, input), output), nil
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
