package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Decode reads exactly one JSON object from r into v. Unknown fields, wrong
// types, trailing data and bodies over the reader's limit are errors in
// OpenAI's shape (400, or 413 for a body that is too large): a misspelt
// parameter silently ignored would return a plausible but wrong answer.
func Decode(r io.Reader, v any) *Error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return decodeError(err)
		}
		return Invalid("", "the request body holds more than one JSON value")
	}
	return nil
}

func decodeError(err error) *Error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		mbe *http.MaxBytesError
	)
	switch {
	case errors.As(err, &mbe):
		return &Error{Status: http.StatusRequestEntityTooLarge, Type: TypeInvalidRequest, Code: "request_too_large",
			Message: fmt.Sprintf("the request body is larger than %d bytes", mbe.Limit)}
	case errors.As(err, &syn):
		return Invalid("", "the request body is not valid JSON (at byte %d): %v", syn.Offset, syn)
	case errors.As(err, &typ):
		field := strings.TrimPrefix(typ.Field, "Sampling.") // the embedded struct is not part of the wire format
		if field == "" {
			return Invalid("", "the request body must be a JSON object, not %s", typ.Value)
		}
		return Invalid(field, "%s must be %s, not %s", field, jsonType(typ.Type.String()), typ.Value)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return Invalid("", "the request body is empty or truncated JSON")
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		f = strings.Trim(f, `"`)
		return Invalid(f, "unknown field %q", f)
	}
	return Invalid("", "%s", strings.TrimPrefix(msg, "json: "))
}

func jsonType(goType string) string {
	switch {
	case strings.Contains(goType, "int"):
		return "an integer"
	case strings.Contains(goType, "float"):
		return "a number"
	case goType == "string" || goType == "*string":
		return "a string"
	case goType == "bool" || goType == "*bool":
		return "a boolean"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	}
	return "an object"
}

// Prompt is a completion prompt: a string, or (as OpenAI allows) an array
// of one string, an array of token ids, or an array of one such array.
type Prompt struct {
	Text   string
	Tokens []int
	IsText bool // Text is set (else Tokens)
	Set    bool
}

func (p *Prompt) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return nil
	}
	p.Set = true
	if len(b) > 0 && b[0] == '"' {
		p.IsText = true
		return json.Unmarshal(b, &p.Text)
	}
	var strs []string
	if json.Unmarshal(b, &strs) == nil {
		if len(strs) != 1 {
			return fmt.Errorf("prompt: an array of %d prompts; this server takes exactly one per request", len(strs))
		}
		p.Text, p.IsText = strs[0], true
		return nil
	}
	var ids []int
	if json.Unmarshal(b, &ids) == nil {
		p.Tokens = ids
		return nil
	}
	var batch [][]int
	if json.Unmarshal(b, &batch) == nil {
		if len(batch) != 1 {
			return fmt.Errorf("prompt: an array of %d token prompts; this server takes exactly one per request", len(batch))
		}
		p.Tokens = batch[0]
		return nil
	}
	return errors.New("prompt must be a string, an array of one string, or an array of token ids")
}

// Stop is a stop string or a list of them.
type Stop []string

func (s *Stop) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		*s = nil
		return nil
	}
	var one string
	if json.Unmarshal(b, &one) == nil {
		*s = Stop{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("stop must be a string or an array of strings")
	}
	*s = many
	return nil
}

// Content is a message's content: a string, null, or a list of text parts
// ({"type":"text","text":...}), concatenated.
type Content string

func (c *Content) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		*c = ""
		return nil
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		*c = Content(s)
		return nil
	}
	var parts []json.RawMessage
	if err := json.Unmarshal(b, &parts); err != nil {
		return errors.New("content must be a string or an array of text parts")
	}
	var sb strings.Builder
	for i, raw := range parts {
		var part struct {
			Type string `json:"type"`
			Text string `json:"text"`
		}
		d := json.NewDecoder(bytes.NewReader(raw))
		d.DisallowUnknownFields()
		if err := d.Decode(&part); err != nil {
			return fmt.Errorf("content part %d: %v (only {\"type\": \"text\", \"text\": ...} parts are supported)", i, err)
		}
		if part.Type != "text" {
			return fmt.Errorf("content part %d has type %q: only text parts are supported", i, part.Type)
		}
		sb.WriteString(part.Text)
	}
	*c = Content(sb.String())
	return nil
}

// MarshalJSON writes content as a plain string.
func (c Content) MarshalJSON() ([]byte, error) { return json.Marshal(string(c)) }
