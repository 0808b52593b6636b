package engine

import (
	"strings"

	"github.com/lorakit/lorakit/tokenizer"
)

// textOut turns generated ids into the text a client may see: it decodes
// incrementally (never half a UTF-8 character), cuts at the first stop
// string, and holds back a tail that could still grow into a stop string, so
// streamed text never has to be taken back. Generate and the scheduler share
// it, so batched and single-sequence generation produce the same text.
type textOut struct {
	dec     *tokenizer.StreamDecoder
	stops   []string
	maxStop int
	text    []byte // all decoded text so far
	emitted int    // bytes already handed out
	cut     int    // where the earliest stop string starts, -1 if none yet
}

func newTextOut(tok *tokenizer.Tokenizer, stops []string) *textOut {
	t := &textOut{dec: tok.NewStreamDecoder(false), cut: -1}
	for _, s := range stops {
		if s != "" {
			t.stops = append(t.stops, s)
			t.maxStop = max(t.maxStop, len(s))
		}
	}
	return t
}

// add decodes one id; it reports whether a stop string is now complete.
func (t *textOut) add(id int) bool {
	before := len(t.text)
	t.text = append(t.text, t.dec.Add(id)...)
	return t.scan(before)
}

// flush ends decoding (the decoder may hold bytes back) and reports whether
// a stop string is complete.
func (t *textOut) flush() bool {
	before := len(t.text)
	t.text = append(t.text, t.dec.Flush()...)
	return t.scan(before)
}

// scan looks for a stop string ending in the text added after from. Earlier
// text held none, so any match starts at most maxStop-1 bytes before from,
// and the earliest match in that window is the earliest overall: scanning
// the window is linear in the output where searching all of it would be
// quadratic.
func (t *textOut) scan(from int) bool {
	if t.cut >= 0 {
		return true
	}
	if len(t.stops) == 0 {
		return false
	}
	lo := max(0, from-t.maxStop+1)
	if i, ok := findStop(string(t.text[lo:]), t.stops); ok {
		t.cut = lo + i
		return true
	}
	return false
}

// ready returns the text that became final since the last call; with final
// set nothing is held back any more.
func (t *textOut) ready(final bool) string {
	upto := len(t.text)
	if t.cut >= 0 {
		upto = t.cut
	} else if !final && t.maxStop > 1 {
		tail := t.text[max(0, len(t.text)-t.maxStop):]
		upto -= holdBack(string(tail), t.stops)
	}
	if upto <= t.emitted {
		return ""
	}
	s := string(t.text[t.emitted:upto])
	t.emitted = upto
	return s
}

// final is the whole text, cut at the stop string.
func (t *textOut) final() string {
	if t.cut >= 0 {
		return string(t.text[:t.cut])
	}
	return string(t.text)
}

// stopped reports whether a stop string ended the text.
func (t *textOut) stopped() bool { return t.cut >= 0 }

func contains(ids []int, id int) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// findStop returns where the earliest stop string starts in s.
func findStop(s string, stops []string) (int, bool) {
	best, found := len(s), false
	for _, st := range stops {
		if st == "" {
			continue
		}
		if i := strings.Index(s, st); i >= 0 && i < best {
			best, found = i, true
		}
	}
	return best, found
}

// holdBack is how many trailing bytes of s could be the start of a stop string
// and so must not be streamed yet.
func holdBack(s string, stops []string) int {
	n := 0
	for _, st := range stops {
		for k := min(len(st)-1, len(s)); k > n; k-- {
			if strings.HasSuffix(s, st[:k]) {
				n = k
				break
			}
		}
	}
	return n
}
