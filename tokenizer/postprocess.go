package tokenizer

import (
	"encoding/json"
	"fmt"
)

// postProcessor is what HF's post_processor adds around a single sequence when
// add_special_tokens is true. Only the single-sequence template matters here
// (lorakit never encodes sentence pairs).
type postProcessor struct {
	prefix, suffix []int
}

func parsePostProcessor(raw json.RawMessage) (postProcessor, error) {
	var p postProcessor
	if isNull(raw) {
		return p, nil
	}
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return p, err
	}
	switch head.Type {
	case "ByteLevel":
		// Only adjusts offsets (trim_offsets); adds no tokens.
		return p, nil
	case "TemplateProcessing":
		var v struct {
			Single []struct {
				SpecialToken *struct {
					ID string `json:"id"`
				} `json:"SpecialToken"`
				Sequence *struct {
					ID string `json:"id"`
				} `json:"Sequence"`
			} `json:"single"`
			SpecialTokens map[string]struct {
				ID  string `json:"id"`
				IDs []int  `json:"ids"`
			} `json:"special_tokens"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return p, err
		}
		seenA := false
		for i, item := range v.Single {
			switch {
			case item.Sequence != nil:
				if item.Sequence.ID != "A" || seenA {
					return p, fmt.Errorf("template single[%d]: unsupported sequence %q", i, item.Sequence.ID)
				}
				seenA = true
			case item.SpecialToken != nil:
				st, ok := v.SpecialTokens[item.SpecialToken.ID]
				if !ok {
					return p, fmt.Errorf("template single[%d]: special token %q not in special_tokens", i, item.SpecialToken.ID)
				}
				if seenA {
					p.suffix = append(p.suffix, st.IDs...)
				} else {
					p.prefix = append(p.prefix, st.IDs...)
				}
			default:
				return p, fmt.Errorf("template single[%d]: neither SpecialToken nor Sequence", i)
			}
		}
		if !seenA {
			return p, fmt.Errorf("template single has no $A")
		}
		return p, nil
	case "BertProcessing", "RobertaProcessing":
		// {"sep": ["[SEP]", 102], "cls": ["[CLS]", 101]}: [CLS] A [SEP].
		var v struct {
			Sep [2]json.RawMessage `json:"sep"`
			Cls [2]json.RawMessage `json:"cls"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return p, err
		}
		var sep, cls int
		if err := json.Unmarshal(v.Sep[1], &sep); err != nil {
			return p, fmt.Errorf("sep: %w", err)
		}
		if err := json.Unmarshal(v.Cls[1], &cls); err != nil {
			return p, fmt.Errorf("cls: %w", err)
		}
		return postProcessor{prefix: []int{cls}, suffix: []int{sep}}, nil
	case "Sequence":
		var v struct {
			Processors []json.RawMessage `json:"processors"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return p, err
		}
		// Each processor wraps the result of the previous one.
		for i, r := range v.Processors {
			q, err := parsePostProcessor(r)
			if err != nil {
				return p, fmt.Errorf("processors[%d]: %w", i, err)
			}
			p.prefix = append(append([]int(nil), q.prefix...), p.prefix...)
			p.suffix = append(p.suffix, q.suffix...)
		}
		return p, nil
	case "":
		return p, fmt.Errorf("post_processor without a type")
	}
	return p, fmt.Errorf("unsupported post_processor type %q", head.Type)
}
