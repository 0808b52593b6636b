// Package chat renders the Jinja chat templates that models ship in
// tokenizer_config.json ("chat_template"), the way Hugging Face transformers'
// apply_chat_template does: the same Jinja settings (trim_blocks,
// lstrip_blocks, loop controls), the same globals (raise_exception,
// strftime_now), an HF-compatible tojson filter, and the variables messages,
// add_generation_prompt and whatever the caller adds (bos_token, eos_token…).
//
// The Jinja engine is github.com/nikolalohinski/gonja/v2 (see env.go for why
// and how it is configured). Templates are untrusted input: every error and
// every panic of the engine comes back as an error, never as a panic.
package chat

import (
	"fmt"
	"strings"

	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/loaders"
)

// Message is one turn of a conversation. Role is "system", "user",
// "assistant" or "tool" in the templates of real models.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// ChatML is the template used when a model has none: the ChatML format of
// transformers' former default_chat_template (and of tiny-brown's
// tokenizer_config.json), "<|im_start|>{role}\n{content}<|im_end|>\n" per
// message and "<|im_start|>assistant\n" as the generation prompt.
const ChatML = "{% for message in messages %}" +
	"{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}" +
	"{% endfor %}" +
	"{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"

// Template is a compiled chat template. Compile once, render many times
// (rendering a dataset renders each conversation several times).
type Template struct {
	src string
	t   *exec.Template
}

// Compile parses a chat template. A template that does not parse is an
// error naming the engine's complaint (with its line and column).
func Compile(src string) (t *Template, err error) {
	defer recoverTo(&err, "chat template")
	if err := checkLexerHazards(src); err != nil {
		return nil, err
	}
	loader, err := loaders.NewMemoryLoader(map[string]string{templateName: src})
	if err != nil {
		return nil, fmt.Errorf("chat template: %w", err)
	}
	et, err := exec.NewTemplate(templateName, hfConfig(), loader, environment)
	if err != nil {
		return nil, fmt.Errorf("chat template does not parse: %w", err)
	}
	return &Template{src: src, t: et}, nil
}

// templateName is the key of the template in its in-memory loader; gonja
// wants absolute paths. Nothing else is loadable: {% include %} of another
// file fails rather than reading the disk.
const templateName = "/chat_template.jinja"

// Source is the template text.
func (t *Template) Source() string { return t.src }

// Render renders messages. With addGenerationPrompt the template appends
// what opens an assistant turn (transformers' add_generation_prompt). extra
// adds variables to the template's context, e.g. bos_token and eos_token
// (transformers passes the tokenizer's special tokens this way); it cannot
// override messages or add_generation_prompt.
func (t *Template) Render(messages []Message, addGenerationPrompt bool, extra map[string]any) (out string, err error) {
	defer recoverTo(&err, "chat template")
	ctx := make(map[string]any, len(extra)+2)
	for k, v := range extra {
		ctx[k] = v
	}
	msgs := make([]any, len(messages))
	for i, m := range messages {
		// Dicts, not structs: templates index them both ways
		// (message['role'] and message.role) and test missing keys
		// (message.tool_calls is defined) as on Python dicts. An
		// ordered Dict, not a Go map, so that message|tojson writes
		// role before content as Python does.
		d := exec.NewDict()
		d.Pairs = append(d.Pairs,
			&exec.Pair{Key: exec.AsValue("role"), Value: exec.AsValue(m.Role)},
			&exec.Pair{Key: exec.AsValue("content"), Value: exec.AsValue(m.Content)})
		msgs[i] = d
	}
	ctx["messages"] = msgs
	ctx["add_generation_prompt"] = addGenerationPrompt
	out, err = t.t.ExecuteToString(exec.NewContext(ctx))
	if err != nil {
		return "", fmt.Errorf("chat template: %w", cleanError(err))
	}
	return out, nil
}

// Render compiles template and renders messages with it (see
// Template.Render). Use Compile when rendering many conversations.
func Render(template string, messages []Message, addGenerationPrompt bool, extra map[string]any) (string, error) {
	t, err := Compile(template)
	if err != nil {
		return "", err
	}
	return t.Render(messages, addGenerationPrompt, extra)
}

// recoverTo turns a panic of the engine into an error: a template is data,
// and a malformed one must not take the process down.
func recoverTo(err *error, what string) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%s: internal error of the Jinja engine: %v", what, r)
	}
}

// cleanError shortens gonja's wrapped error chains, which repeat the template
// position at every level, to the innermost message when it is a
// raise_exception (the template author's own words).
func cleanError(err error) error {
	msg := err.Error()
	if i := strings.Index(msg, raisePrefix); i >= 0 {
		return &TemplateError{Msg: msg[i+len(raisePrefix):]}
	}
	return err
}

// TemplateError is an error the template raised itself with
// raise_exception(msg), e.g. "Conversation roles must alternate
// user/assistant/user/assistant/...".
type TemplateError struct{ Msg string }

func (e *TemplateError) Error() string { return "raise_exception: " + e.Msg }
