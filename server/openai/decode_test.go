package openai

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

func TestDecodeCompletion(t *testing.T) {
	cases := []struct {
		body   string
		text   string
		tokens []int
		stop   []string
	}{
		{`{"model":"m","prompt":"hi","stop":"x"}`, "hi", nil, []string{"x"}},
		{`{"model":"m","prompt":["hi"],"stop":["a","b"]}`, "hi", nil, []string{"a", "b"}},
		{`{"model":"m","prompt":[1,2,3],"stop":null}`, "", []int{1, 2, 3}, nil},
		{`{"model":"m","prompt":[[4,5]]}`, "", []int{4, 5}, nil},
	}
	for _, c := range cases {
		var r CompletionRequest
		if e := Decode(strings.NewReader(c.body), &r); e != nil {
			t.Fatalf("%s: %v", c.body, e)
		}
		if e := r.Validate(); e != nil {
			t.Fatalf("%s: %v", c.body, e)
		}
		if r.Prompt.Text != c.text || !slices.Equal(r.Prompt.Tokens, c.tokens) || !slices.Equal([]string(r.Stop), c.stop) {
			t.Fatalf("%s: got %+v stop %v", c.body, r.Prompt, r.Stop)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := []struct {
		body, param string
	}{
		{`{"model":"m","prompt":"a","bogus":1}`, "bogus"},
		{`{"model":"m","prompt":"a","max_tokens":"3"}`, "max_tokens"},
		{`{"model":"m","prompt":["a","b"]}`, ""},
		{`{"model":"m","prompt":[1.5]}`, ""},
		{`{"model":"m","prompt":{}}`, ""},
		{`{"model":"m","prompt":"a","stop":3}`, ""},
		{`{"model":"m"`, ""},
		{`null x`, ""},
		{``, ""},
	}
	for _, c := range cases {
		var r CompletionRequest
		e := Decode(strings.NewReader(c.body), &r)
		if e == nil || e.Status != 400 || e.Type != TypeInvalidRequest {
			t.Errorf("%s: %v", c.body, e)
			continue
		}
		if c.param != "" && e.Param != c.param {
			t.Errorf("%s: param %q, want %q", c.body, e.Param, c.param)
		}
	}
	// A body over the limit is 413.
	rec := httptest.NewRecorder()
	var r CompletionRequest
	e := Decode(http.MaxBytesReader(rec, nopCloser{strings.NewReader(`{"model":"` + strings.Repeat("m", 100) + `"}`)}, 50), &r)
	if e == nil || e.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: %v", e)
	}
}

type nopCloser struct{ *strings.Reader }

func (nopCloser) Close() error { return nil }

func TestValidate(t *testing.T) {
	bad := []string{
		`{"model":"m","prompt":"a","n":2}`,
		`{"model":"m","prompt":"a","temperature":-1}`,
		`{"model":"m","prompt":"a","top_p":0}`,
		`{"model":"m","prompt":"a","top_k":-2}`,
		`{"model":"m","prompt":"a","min_p":1.5}`,
		`{"model":"m","prompt":"a","presence_penalty":0.5}`,
		`{"model":"m","prompt":"a","logit_bias":{"1":2}}`,
		`{"model":"m","prompt":"a","echo":true}`,
		`{"model":"m","prompt":"a","logprobs":2}`,
		`{"model":"m","prompt":"a","stream_options":{"include_usage":true}}`,
		`{"model":"","prompt":"a"}`,
		`{"model":"m"}`,
	}
	for _, b := range bad {
		var r CompletionRequest
		if e := Decode(strings.NewReader(b), &r); e != nil {
			t.Fatalf("%s: decode: %v", b, e)
		}
		if e := r.Validate(); e == nil || e.Status != 400 {
			t.Errorf("%s: validated", b)
		}
	}
	var c ChatRequest
	body := `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},{"role":"assistant","content":null}],"max_completion_tokens":5}`
	if e := Decode(strings.NewReader(body), &c); e != nil {
		t.Fatal(e)
	}
	if e := c.Validate(); e != nil {
		t.Fatal(e)
	}
	if c.Messages[0].Content != "ab" || c.Messages[1].Content != "" || *c.MaxTokens != 5 {
		t.Fatalf("chat: %+v", c)
	}
}
