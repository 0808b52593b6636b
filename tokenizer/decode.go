package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Decoding.
//
// HF tokenizers decodes by mapping ids to token strings and running them
// through the decoder chain (decode_chain of each decoder in a Sequence, then
// concatenation). Some decoders work token by token (Replace, Strip,
// Metaspace), some regroup tokens (ByteFallback turns runs of <0xXX> tokens
// into text, Fuse joins everything into one token) and ByteLevel turns the
// whole sequence into bytes and then into text.
//
// Here the chain is evaluated incrementally: every decoder is a stage that
// receives whole tokens (tok) while no stage has fused them, and pieces of the
// one fused token (chunk) afterwards, and passes its output on as soon as it is
// final. Decode feeds all ids and then ends the stream, so Decode and
// StreamDecoder share one implementation and agree by construction; a stage
// holds text back only as long as later tokens can still change it (e.g. the
// first bytes of a character, or a run of byte-fallback tokens).

// stage is one decoder's state for one decoding.
type stage interface {
	tok(id int, s string) // a whole token (id -1 when the token was produced by an earlier stage)
	chunk(s string)       // the next piece of the single fused token
	end()                 // no more input: flush
}

// decoderStep is the parsed, immutable description of a decoder.
type decoderStep interface {
	newStage(next stage) stage
}

func parseDecoder(raw json.RawMessage) ([]decoderStep, error) {
	if isNull(raw) {
		return nil, nil
	}
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, err
	}
	switch head.Type {
	case "Sequence":
		var v struct {
			Decoders []json.RawMessage `json:"decoders"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		var steps []decoderStep
		for i, r := range v.Decoders {
			s, err := parseDecoder(r)
			if err != nil {
				return nil, fmt.Errorf("decoders[%d]: %w", i, err)
			}
			steps = append(steps, s...)
		}
		return steps, nil
	case "ByteLevel":
		return []decoderStep{byteLevelStep{}}, nil
	case "Replace":
		p, content, err := parseReplace(raw)
		if err != nil {
			return nil, err
		}
		return []decoderStep{&replaceStep{pat: p, content: content}}, nil
	case "ByteFallback":
		return []decoderStep{byteFallbackStep{}}, nil
	case "Fuse":
		return []decoderStep{fuseStep{}}, nil
	case "Strip":
		var v struct {
			Content string `json:"content"`
			Start   int    `json:"start"`
			Stop    int    `json:"stop"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		r, n := utf8.DecodeRuneInString(v.Content)
		if n == 0 || n != len(v.Content) || v.Start < 0 || v.Stop < 0 {
			return nil, fmt.Errorf("strip: content %q start %d stop %d", v.Content, v.Start, v.Stop)
		}
		return []decoderStep{&stripStep{content: r, start: v.Start, stop: v.Stop}}, nil
	case "Metaspace":
		m, err := parseMetaspace(raw)
		if err != nil {
			return nil, err
		}
		return []decoderStep{&metaspaceStep{m}}, nil
	case "WordPiece":
		v := struct {
			Prefix  string `json:"prefix"`
			Cleanup *bool  `json:"cleanup"`
		}{Prefix: "##"}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		return []decoderStep{&wordPieceStep{prefix: v.Prefix, cleanup: v.Cleanup == nil || *v.Cleanup}}, nil
	case "BPEDecoder":
		v := struct {
			Suffix string `json:"suffix"`
		}{Suffix: "</w>"}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		return []decoderStep{&bpeDecoderStep{suffix: v.Suffix}}, nil
	case "":
		return nil, fmt.Errorf("decoder without a type")
	}
	return nil, fmt.Errorf("unsupported decoder type %q", head.Type)
}

// sink collects the output of the last stage.
type sink struct {
	buf []byte
	// joinSpace: no decoder at all, HF joins the tokens with " ".
	joinSpace bool
	ntok      int
}

func (k *sink) tok(_ int, s string) {
	if k.joinSpace && k.ntok > 0 {
		k.buf = append(k.buf, ' ')
	}
	k.ntok++
	k.buf = append(k.buf, s...)
}
func (k *sink) chunk(s string) { k.buf = append(k.buf, s...) }
func (k *sink) end()           {}

// fusedBuffer collects a fused token for stages that need it whole.
type fusedBuffer struct {
	b       strings.Builder
	started bool
}

func (f *fusedBuffer) add(s string) { f.started = true; f.b.WriteString(s) }

// take returns the buffered token and whether there was one.
func (f *fusedBuffer) take() (string, bool) {
	if !f.started {
		return "", false
	}
	s := f.b.String()
	f.b.Reset()
	f.started = false
	return s, true
}

// cleanUpTokenization is transformers' clean_up_tokenization: remove the
// space before punctuation and English contractions, each rule applied to the
// whole string in this order.
func cleanUpTokenization(s string) string {
	if !strings.Contains(s, " ") {
		return s
	}
	for _, r := range [...][2]string{
		{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
		{" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
	} {
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	return s
}
