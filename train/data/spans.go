package data

import (
	"fmt"
	"slices"
	"strings"

	"github.com/lorakit/lorakit/chat"
)

// Finding the assistant turns in a rendered conversation, for any template.
//
// A template is a program, so the text of an assistant turn is found by
// rendering variations of the conversation and comparing them with the full
// rendering (transformers' {% generation %} markers would say it directly,
// but few real templates have them):
//
//   - Start: the conversation before the turn rendered with
//     add_generation_prompt ends where the model starts generating. When
//     that text is a prefix of the full rendering, the turn starts at its
//     end (so Qwen 3's "<think>…</think>" block, which the model writes
//     itself after the prompt, gets the loss with the answer).
//   - End: the conversation rendered with this message's content emptied,
//     compared from the end with the full rendering: what differs is what
//     the content became (after the template's own trimming or rewriting,
//     as Axolotl's find_turn does with an empty turn).
//   - Templates that are not prefix-stable (Mistral's puts the system
//     prompt into the last user turn, so the conversation before the turn
//     renders differently) get the turn rendered with a probe for content:
//     the text around the probe frames the content in the full rendering.
//     Last resort, when the template rewrites the probe: the difference
//     with the emptied rendering, nudged so that no boundary cuts a special
//     token.
//   - End-of-turn marker: after the content, optional whitespace then a
//     special token (<|im_end|>, <|eot_id|>, </s>, <end_of_turn>), accepted
//     when the template also writes it when the conversation ends with this
//     turn, i.e. it closes the turn and does not open the next one. The
//     whitespace after it (ChatML's "\n") is not the model's to generate
//     and is not labelled.

// assistantSpans renders msgs with t and returns the text and the span of
// each assistant turn.
func assistantSpans(t *chat.Template, msgs []chat.Message, vars map[string]any, specials []string) (string, []span, error) {
	full, err := t.Render(msgs, false, vars)
	if err != nil {
		return "", nil, err
	}
	var spans []span
	prev := 0
	for i, m := range msgs {
		if m.Role != "assistant" {
			continue
		}
		start, end, err := contentSpan(t, msgs, i, full, vars, specials)
		if err != nil {
			return "", nil, fmt.Errorf("messages[%d]: %w", i, err)
		}
		if start < prev || end < start || end > len(full) {
			return "", nil, fmt.Errorf("messages[%d]: cannot locate the assistant turn in the rendered chat template (found bytes %d..%d after a turn ending at %d)", i, start, end, prev)
		}
		n := endOfTurn(full, end, specials)
		if n > 0 && i < len(msgs)-1 {
			alone, err := t.Render(msgs[:i+1], false, vars)
			if err == nil && strings.HasPrefix(alone, full[:end]) && !strings.HasPrefix(alone, full[:end+n]) {
				n = 0 // it opens the next message, not closes this one
			}
		}
		spans = append(spans, span{start, end + n})
		prev = end + n
	}
	return full, spans, nil
}

// contentSpan finds the bytes of full that message i (an assistant turn)
// produced, from the generation prompt's end to its content's end.
func contentSpan(t *chat.Template, msgs []chat.Message, i int, full string, vars map[string]any, specials []string) (start, end int, err error) {
	variant := func(content string) (string, error) {
		m := slices.Clone(msgs)
		m[i].Content = content
		return t.Render(m, false, vars)
	}
	without, err := variant("")
	if err != nil {
		return 0, 0, fmt.Errorf("rendering the conversation with this turn's content removed: %w", err)
	}
	if prompt, err := t.Render(msgs[:i], true, vars); err == nil &&
		strings.HasPrefix(full, prompt) && strings.HasPrefix(without, prompt) {
		start = len(prompt)
		return start, len(full) - commonSuffix(full[start:], without[start:]), nil
	}
	// Not prefix-stable. Render the turn with a probe for content: what
	// comes before and after the probe frames the content in full, when
	// the template does not treat the content itself differently.
	if probed, err := variant(probe); err == nil && strings.Count(probed, probe) == 1 {
		k := strings.Index(probed, probe)
		before, after := probed[:k], probed[k+len(probe):]
		if len(before)+len(after) <= len(full) && strings.HasPrefix(full, before) && strings.HasSuffix(full, after) {
			return len(before), len(full) - len(after), nil
		}
	}
	// Else the difference with the emptied rendering; an empty (or, once
	// trimmed, blank) content renders as nothing, so there is nothing to
	// see: compare with a one-letter content instead.
	other := without
	if other == full {
		if other, err = variant("x"); err != nil {
			return 0, 0, fmt.Errorf("rendering the conversation with this turn's content replaced: %w", err)
		}
		if other == full {
			return 0, 0, fmt.Errorf("the chat template does not render the content of this assistant turn")
		}
	}
	start, end = difference(full, other, specials)
	return start, end, nil
}

// probe stands for an assistant's content: private-use characters that no
// template writes, with no whitespace for trim or strip to take.
const probe = "\ue000lorakit-turn\ue001"

// difference is the span of a that differs from b. When one is the other
// with an insertion, the insertion can often slide left over equal bytes
// and stay one (content "<b>" before "</s>": which "<" is the content's?);
// of those positions, the rightmost that cuts no special token of a wins.
func difference(a, b string, specials []string) (start, end int) {
	start = commonPrefix(a, b)
	tail := commonSuffix(a[start:], b[start:])
	endA, endB := len(a)-tail, len(b)-tail
	ins, insEnd := a, endA // the string with the insertion, and its end
	switch {
	case start == endB: // a = b with a[start:endA] inserted
	case start == endA: // b = a with b[start:endB] inserted
		ins, insEnd = b, endB
	default: // more changed than an insertion: take it all
		return start, endA
	}
	// Special tokens are short, so a few dozen shifts are enough to try.
	for k := 0; k <= start && k <= 64; k++ {
		if k > 0 && ins[start-k] != ins[insEnd-k] {
			break
		}
		if !insideSpecial(a, start-k, specials) && !insideSpecial(a, endA-k, specials) {
			return start - k, endA - k
		}
	}
	return start, endA
}

// endOfTurn is the length of the end-of-turn marker at text[at:]: optional
// whitespace then a special token (the longest that matches), or 0.
func endOfTurn(text string, at int, specials []string) int {
	j := at
	for j < len(text) && strings.IndexByte(" \t\r\n", text[j]) >= 0 {
		j++
	}
	best := 0
	for _, s := range specials {
		if len(s) > best && strings.HasPrefix(text[j:], s) {
			best = len(s)
		}
	}
	if best == 0 {
		return 0
	}
	return j + best - at
}

// insideSpecial reports whether byte offset pos of text falls strictly
// inside an occurrence of a special token.
func insideSpecial(text string, pos int, specials []string) bool {
	for _, s := range specials {
		for off := 1; off < len(s); off++ {
			if p := pos - off; p >= 0 && strings.HasPrefix(text[p:], s) {
				return true
			}
		}
	}
	return false
}

func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

func commonSuffix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[len(a)-1-n] == b[len(b)-1-n] {
		n++
	}
	return n
}
