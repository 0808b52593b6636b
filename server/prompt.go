package server

import (
	"fmt"
	"strings"

	"github.com/lorakit/lorakit/chat"
	"github.com/lorakit/lorakit/server/openai"
)

// endOfTurn are the markers chat templates close an assistant turn with
// (ChatML, Llama 3, Phi-3, Gemma, Llama 2/Mistral). When the tokenizer
// has one as a special token, chat generation stops there, as the model was
// trained to.
var endOfTurn = []string{"<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "</s>"}

// initChat compiles the chat template once and works out the template's
// variables and the chat stop tokens.
func (s *Server) initChat() error {
	tok := s.cfg.Tokenizer
	src := s.cfg.ChatTemplate
	if src == "" {
		src = tok.ChatTemplate()
	}
	if src == "" {
		src = chat.ChatML
	}
	t, err := chat.Compile(src)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	s.tmpl = t
	// transformers passes the tokenizer's bos_token and eos_token to the
	// template.
	s.tmplVars = map[string]any{}
	if id, ok := tok.BOS(); ok {
		if txt, ok := tok.IDToToken(id); ok {
			s.tmplVars["bos_token"] = txt
		}
	}
	if id, ok := tok.EOS(); ok {
		if txt, ok := tok.IDToToken(id); ok {
			s.tmplVars["eos_token"] = txt
		}
	}
	if s.cfg.BOS >= 0 {
		s.bosText, _ = tok.IDToToken(s.cfg.BOS)
	} else if id, ok := tok.BOS(); ok && tok.AddsBOS() {
		s.bosText, _ = tok.IDToToken(id)
	}
	s.chatEOS = append([]int(nil), s.cfg.EOS...)
	for _, m := range endOfTurn {
		if id, ok := tok.TokenToID(m); ok && tok.IsSpecial(id) && !containsInt(s.chatEOS, id) {
			s.chatEOS = append(s.chatEOS, id)
		}
	}
	return nil
}

// encodeText tokenizes a completion prompt with <bos> exactly once.
func (s *Server) encodeText(text string) []int {
	ids := s.cfg.Tokenizer.Encode(text, true)
	if s.cfg.BOS >= 0 {
		ids = append([]int{s.cfg.BOS}, ids...)
	}
	return ids
}

// encodeChat renders a conversation with the chat template and an open
// assistant turn, and tokenizes it as training does (train/data): when the
// template wrote <bos> itself the text is tokenized without adding
// specials, otherwise <bos> is added once.
func (s *Server) encodeChat(msgs []openai.ChatMessage) ([]int, *openai.Error) {
	cm := make([]chat.Message, len(msgs))
	for i, m := range msgs {
		cm[i] = chat.Message{Role: m.Role, Content: string(m.Content)}
	}
	text, err := s.tmpl.Render(cm, true, s.tmplVars)
	if err != nil {
		return nil, openai.Invalid("messages", "the chat template rejected the conversation: %v", err)
	}
	if s.bosText != "" && strings.HasPrefix(text, s.bosText) {
		return s.cfg.Tokenizer.Encode(text, false), nil
	}
	return s.encodeText(text), nil
}

func containsInt(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
