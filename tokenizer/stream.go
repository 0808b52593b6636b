package tokenizer

// StreamDecoder turns ids into text one at a time, e.g. while generating.
// Each Add returns the text that has become final; text that a later id can
// still change is held back (the first bytes of a multi-byte character, a run
// of byte-fallback tokens, characters a Strip decoder may remove), so chunks
// are always valid UTF-8 and the concatenation of all Add results and Flush
// equals Decode of all ids (without CleanUp). Not safe for concurrent use.
type StreamDecoder struct {
	t           *Tokenizer
	skipSpecial bool
	sink        *sink
	chain       stage
}

// NewStreamDecoder starts a streaming decode; skipSpecial drops special tokens.
func (t *Tokenizer) NewStreamDecoder(skipSpecial bool) *StreamDecoder {
	d := &StreamDecoder{t: t, skipSpecial: skipSpecial}
	d.reset()
	return d
}

func (d *StreamDecoder) reset() {
	d.sink = &sink{joinSpace: d.t.joinDecode}
	d.chain = d.t.newChain(d.sink, true)
}

// Add feeds one id and returns the newly completed text (possibly "").
func (d *StreamDecoder) Add(id int) string {
	if tok, ok := d.t.decodable(id, d.skipSpecial); ok {
		d.chain.tok(id, tok)
	}
	return d.take()
}

// Flush ends the stream and returns the remaining text. The decoder can then
// be reused for a new, independent stream.
func (d *StreamDecoder) Flush() string {
	d.chain.end()
	s := d.take()
	d.reset()
	return s
}

func (d *StreamDecoder) take() string {
	if len(d.sink.buf) == 0 {
		return ""
	}
	s := string(d.sink.buf)
	d.sink.buf = d.sink.buf[:0]
	return s
}
