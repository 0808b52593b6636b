package data

// How label masks are aligned with tokens.
//
// A formatted example is one string (prompt+completion, an Alpaca prompt and
// its output, a rendered conversation) in which the loss applies to some
// character spans (the completion, the assistant turns). The string is
// tokenized whole, once: the input ids are exactly what the model sees at
// inference (what transformers' apply_chat_template(tokenize=True) returns),
// which tokenizing the parts separately and concatenating would not give
// (SentencePiece's "▁" at the start of every part, BPE merges across part
// boundaries).
//
// A character offset c is then turned into a token offset by tokenizing the
// prefix text[:c] and taking the number of leading tokens it shares with the
// whole: those tokens lie entirely before c. A token that straddles c (or
// whose tokenization depends on what follows, like a run of spaces before a
// word in GPT-2's pre-tokenizer) belongs to the part after c. So a token
// merging the end of a prompt with the start of a completion gets the loss,
// and one merging the end of an assistant turn with the template's next
// text does not. Template special tokens (<|im_end|>, <|eot_id|>) are
// matched as added tokens in the raw text and so are never merged: the
// boundaries next to them are exact.
//
// This costs one more tokenization of a prefix per boundary.

// span is a half-open range of byte offsets [start, end) in a text.
type span struct{ start, end int }

// maskOutside returns labels for ids = enc(text): the ids of the tokens in
// spans, IgnoreIndex elsewhere; with all, the ids everywhere.
func maskOutside(ids []int, enc func(string) []int, text string, spans []span, all bool) []int {
	labels := make([]int, len(ids))
	if all {
		copy(labels, ids)
		return labels
	}
	for i := range labels {
		labels[i] = IgnoreIndex
	}
	for _, s := range spans {
		a := tokenOffset(ids, enc, text, s.start)
		b := tokenOffset(ids, enc, text, s.end)
		for i := a; i < b; i++ {
			labels[i] = ids[i]
		}
	}
	return labels
}

// tokenOffset is the number of leading tokens of ids = enc(text) that lie
// entirely before byte offset c.
func tokenOffset(ids []int, enc func(string) []int, text string, c int) int {
	if c >= len(text) {
		return len(ids)
	}
	prefix := enc(text[:c])
	n := 0
	for n < len(prefix) && n < len(ids) && prefix[n] == ids[n] {
		n++
	}
	return n
}
