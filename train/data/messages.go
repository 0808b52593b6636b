package data

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/lorakit/lorakit/chat"
)

// knownRoles are the roles of the chat templates of real models
// (transformers' and TRL's conversational format).
var knownRoles = map[string]bool{"system": true, "user": true, "assistant": true, "tool": true}

// messages is {"messages": [{"role", "content"}, ...]}: the conversation
// rendered with the chat template (the model's own, ChatML when it has
// none) and the loss on the assistant turns only: each assistant message's
// content and the end-of-turn marker the template closes it with (ChatML's
// <|im_end|>, Llama 3's <|eot_id|>, Mistral's </s>), as Axolotl's chat
// template strategy (roles_to_train: [assistant], train_on_eos: turn) and
// TRL's assistant_only_loss do. Precisely, a turn is what the model has to
// write after the generation prompt (spans.go): so also what a template
// puts before the content there (Qwen 3's <think> block; the role name,
// with a template that has no generation prompt). Nothing is appended: the
// template ends turns.
//
// <bos> appears exactly once: when the rendered text already starts with
// the <bos> token's text (Llama 3's template writes {{ bos_token }}) the
// text is tokenized without adding special tokens, as apply_chat_template
// does; otherwise <bos> is added as for any text (DESIGN.md §4).
func (rd *reader) messages(o object) (Example, error) {
	msgs, err := parseMessages(o["messages"])
	if err != nil {
		return Example{}, err
	}
	t, err := rd.template()
	if err != nil {
		return Example{}, err
	}
	info := rd.tokenInfo()
	text, spans, err := assistantSpans(t, msgs, info.templateVars(), info.specials)
	if err != nil {
		return Example{}, err
	}
	enc := func(s string) []int { return encodeWithBOS(rd.tok, rd.sp, s) }
	if info.addedBOS != "" && strings.HasPrefix(text, info.addedBOS) {
		enc = func(s string) []int { return rd.tok.Encode(s, false) }
	}
	ids := enc(text)
	labels := maskOutside(ids, enc, text, spans, rd.opts.TrainOnInputs)
	return Example{InputIDs: ids, Labels: labels}, nil
}

// parseMessages checks the conversation: a non-empty list of objects with
// a known string role and a string content, with at least one assistant
// turn (else nothing would be learnt from it). Other keys of a message are
// ignored.
func parseMessages(raw json.RawMessage) ([]chat.Message, error) {
	var items []json.RawMessage
	if len(raw) == 0 || raw[0] != '[' || json.Unmarshal(raw, &items) != nil {
		return nil, fmt.Errorf("field \"messages\" must be a list of messages, not %s", jsonKind(raw))
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("field \"messages\" is empty")
	}
	msgs := make([]chat.Message, len(items))
	assistant := false
	for i, item := range items {
		if len(item) == 0 || item[0] != '{' {
			return nil, fmt.Errorf("messages[%d] must be an object, not %s", i, jsonKind(item))
		}
		m, err := decodeObject(item)
		if err != nil {
			return nil, fmt.Errorf("messages[%d]: %w", i, err)
		}
		if msgs[i].Role, err = m.str("role"); err != nil {
			return nil, fmt.Errorf("messages[%d]: %w", i, err)
		}
		if msgs[i].Content, err = m.str("content"); err != nil {
			return nil, fmt.Errorf("messages[%d]: %w", i, err)
		}
		if !knownRoles[msgs[i].Role] {
			return nil, fmt.Errorf("messages[%d]: unknown role %q: want system, user, assistant or tool", i, msgs[i].Role)
		}
		assistant = assistant || msgs[i].Role == "assistant"
	}
	if !assistant {
		return nil, fmt.Errorf("messages has no assistant turn: nothing to learn")
	}
	return msgs, nil
}

// template compiles the chat template on first use: Options.ChatTemplate,
// else the tokenizer's, else ChatML.
func (rd *reader) template() (*chat.Template, error) {
	if rd.tmpl != nil || rd.tmplErr != nil {
		return rd.tmpl, rd.tmplErr
	}
	src := rd.opts.ChatTemplate
	if src == "" {
		if t, ok := rd.tok.(chatTemplater); ok {
			src = t.ChatTemplate()
		}
	}
	if src == "" {
		src = chat.ChatML
	}
	rd.tmpl, rd.tmplErr = chat.Compile(src)
	return rd.tmpl, rd.tmplErr
}
