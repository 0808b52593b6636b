package tokenizer

import (
	"slices"
	"unicode/utf8"
)

// The byte-level alphabet of GPT-2 style tokenizers.
//
// HF tokenizers' ByteLevel pre-tokenizer/decoder (and OpenAI's original
// encoder.py bytes_to_unicode) map every byte to a printable code point so that
// a vocabulary of strings can cover arbitrary bytes: the printable bytes
// '!'..'~', '¡'..'¬' and '®'..'ÿ' map to themselves, the remaining 68 bytes map
// to U+0100, U+0101, ... in increasing byte order (so ' ' becomes 'Ġ' and '\n'
// becomes 'Ċ').
var (
	byteToRune [256]rune
	// byteToUTF8 holds the UTF-8 encoding of byteToRune[b] (1 or 2 bytes).
	byteToUTF8 [256]string
	// runeToByte is the inverse mapping for runes < 0x144; runeToByteOK marks valid entries.
	runeToByte   [0x144]byte
	runeToByteOK [0x144]bool
)

func init() {
	n := 0
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			byteToRune[b] = rune(b)
		} else {
			byteToRune[b] = rune(256 + n)
			n++
		}
	}
	for b := 0; b < 256; b++ {
		r := byteToRune[b]
		byteToUTF8[b] = string(r)
		runeToByte[r] = byte(b)
		runeToByteOK[r] = true
	}
}

// appendByteLevel appends the byte-level spelling of s to dst.
func appendByteLevel(dst []byte, s []byte) []byte {
	dst = slices.Grow(dst, 2*len(s))
	for _, b := range s {
		if b >= '!' && b <= '~' {
			dst = append(dst, b)
			continue
		}
		dst = append(dst, byteToUTF8[b]...)
	}
	return dst
}

// appendByteLevelDecoded appends the bytes a byte-level token stands for.
// As in HF tokenizers' ByteLevel decoder, a token containing any character
// outside the byte-level alphabet (e.g. an added token like "<|im_start|>"
// written with non-ASCII characters) is passed through as its raw UTF-8 bytes.
func appendByteLevelDecoded(dst []byte, tok string) []byte {
	start := len(dst)
	for _, r := range tok {
		if r < 0x144 && runeToByteOK[r] {
			dst = append(dst, runeToByte[r])
			continue
		}
		return append(dst[:start], tok...)
	}
	return dst
}

// appendLossyUTF8 appends b to dst, replacing every ill-formed subsequence with
// U+FFFD using the "maximal subpart" practice of the Unicode standard (W3C/WHATWG
// TextDecoder and Rust's String::from_utf8_lossy both do this, and they are the
// references): a truncated but otherwise valid prefix of a character becomes a
// single U+FFFD, every other invalid byte its own U+FFFD.
func appendLossyUTF8(dst []byte, b []byte) []byte {
	for len(b) > 0 {
		if b[0] < utf8.RuneSelf {
			dst = append(dst, b[0])
			b = b[1:]
			continue
		}
		r, size := utf8.DecodeRune(b)
		if r != utf8.RuneError || size > 1 {
			dst = append(dst, b[:size]...)
			b = b[size:]
			continue
		}
		n := maximalSubpart(b)
		dst = append(dst, "\uFFFD"...)
		b = b[n:]
	}
	return dst
}

// maximalSubpart returns the length (>= 1) of the ill-formed subsequence at the
// start of b, which does not begin with a valid character.
func maximalSubpart(b []byte) int {
	need, lo, hi := utf8Lead(b[0])
	if need == 0 {
		return 1
	}
	i := 1
	for ; i <= need && i < len(b); i++ {
		c := b[i]
		if i == 1 {
			if c < lo || c > hi {
				break
			}
		} else if c < 0x80 || c > 0xBF {
			break
		}
	}
	return i
}

// utf8Lead reports how many continuation bytes a lead byte needs and the
// allowed range of the first continuation byte (which excludes overlong forms
// and surrogates). need == 0 means c can never start a character.
func utf8Lead(c byte) (need int, lo, hi byte) {
	switch {
	case c >= 0xC2 && c <= 0xDF:
		return 1, 0x80, 0xBF
	case c == 0xE0:
		return 2, 0xA0, 0xBF
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		return 2, 0x80, 0xBF
	case c == 0xED:
		return 2, 0x80, 0x9F
	case c == 0xF0:
		return 3, 0x90, 0xBF
	case c >= 0xF1 && c <= 0xF3:
		return 3, 0x80, 0xBF
	case c == 0xF4:
		return 3, 0x80, 0x8F
	}
	return 0, 0, 0
}

// incompleteTail returns the length of the trailing bytes of b that form a
// valid but unfinished UTF-8 character (0 if b ends on a character boundary or
// with bytes that are already known to be invalid). Streaming decoders hold
// these bytes back until the next token completes or invalidates them.
func incompleteTail(b []byte) int {
	// A character is at most 4 bytes, so only the last 3 bytes can start an
	// unfinished one.
	for k := 1; k <= 3 && k <= len(b); k++ {
		c := b[len(b)-k]
		if c >= 0x80 && c <= 0xBF {
			continue // continuation byte: look further back for the lead
		}
		need, lo, hi := utf8Lead(c)
		if need < k {
			return 0 // ASCII, invalid lead, or a complete character
		}
		// Check the continuation bytes that are present.
		for i := 1; i < k; i++ {
			d := b[len(b)-k+i]
			if i == 1 {
				if d < lo || d > hi {
					return 0
				}
			} else if d < 0x80 || d > 0xBF {
				return 0
			}
		}
		return k
	}
	return 0
}

// toValidUTF8 returns s unchanged when it is valid UTF-8 and otherwise the
// lossy conversion above (what a JavaScript or Rust reference would have seen
// after decoding the same bytes).
func toValidUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return string(appendLossyUTF8(nil, []byte(s)))
}
