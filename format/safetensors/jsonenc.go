package safetensors

import "unicode/utf16"

// We encode JSON by hand so the bytes match what the reference tools write:
// the safetensors header as serde_json does (raw UTF-8, only '"', '\\' and
// control characters escaped), the shard index as Python's
// json.dumps(indent=2, sort_keys=True) does (ensure_ascii). encoding/json
// differs from both (it escapes <, >, &, U+2028 and U+2029), and identical
// bytes make files diffable against ones written by Python.

const hexDigits = "0123456789abcdef"

// appendSerdeString appends s as serde_json would. s must be valid UTF-8.
func appendSerdeString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			b = append(b, '\\', '"')
		case '\\':
			b = append(b, '\\', '\\')
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			if c < 0x20 {
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			} else {
				b = append(b, c)
			}
		}
	}
	return append(b, '"')
}

// appendPyString appends s as Python's json module does with
// ensure_ascii=True: everything outside printable ASCII as \uXXXX, astral
// characters as surrogate pairs. s must be valid UTF-8.
func appendPyString(b []byte, s string) []byte {
	u := func(b []byte, r rune) []byte {
		return append(b, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
	}
	b = append(b, '"')
	for _, r := range s {
		switch r {
		case '"':
			b = append(b, '\\', '"')
		case '\\':
			b = append(b, '\\', '\\')
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			switch {
			case r >= 0x20 && r < 0x7f:
				b = append(b, byte(r))
			case r < 0x10000:
				b = u(b, r)
			default:
				r1, r2 := utf16.EncodeRune(r)
				b = u(u(b, r1), r2)
			}
		}
	}
	return append(b, '"')
}
