package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// The header and the index are read with json.Decoder's token stream rather
// than json.Unmarshal because Unmarshal silently keeps the last of duplicate
// keys, matches struct fields case-insensitively and accepts floats where we
// need integers; for a file format we validate, each of those would let a
// malformed file through.

func newDecoder(b []byte) *json.Decoder {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec
}

// describe names the JSON kind of a token for error messages.
func describe(t json.Token) string {
	switch v := t.(type) {
	case json.Delim:
		switch v {
		case '{':
			return "object"
		case '[':
			return "array"
		}
		return "'" + v.String() + "'"
	case string:
		if len(v) > 40 {
			v = v[:40] + "..."
		}
		return "string " + strconv.Quote(v)
	case json.Number:
		return "number " + v.String()
	case bool:
		return "boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", t)
}

// token is dec.Token with io.EOF turned into an error: every caller expects
// more input, so running out means the JSON was truncated.
func token(dec *json.Decoder) (json.Token, error) {
	t, err := dec.Token()
	if err == io.EOF {
		return nil, fmt.Errorf("invalid JSON: truncated: %w", io.ErrUnexpectedEOF)
	}
	return t, syntaxErr(err)
}

// syntaxErr adds the byte offset to JSON syntax errors, whose messages
// ("invalid character 'n'") are otherwise hard to place.
func syntaxErr(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("invalid JSON at byte %d: %w", se.Offset, err)
	}
	return err
}

// readObject consumes one JSON object, calling field for each key with the
// decoder positioned at that key's value; field must consume exactly the
// value. Duplicate keys are an error. If allowNull, a null is accepted in
// place of the object and reported by isNull.
func readObject(dec *json.Decoder, allowNull bool, field func(key string) error) (isNull bool, err error) {
	t, err := token(dec)
	if err != nil {
		return false, err
	}
	if t == nil && allowNull {
		return true, nil
	}
	if d, ok := t.(json.Delim); !ok || d != '{' {
		return false, fmt.Errorf("expected an object, found %s", describe(t))
	}
	seen := make(map[string]struct{})
	for dec.More() {
		t, err := token(dec)
		if err != nil {
			return false, err
		}
		key, ok := t.(string)
		if !ok { // json.Decoder only yields strings here, but do not rely on it
			return false, fmt.Errorf("expected an object key, found %s", describe(t))
		}
		if _, dup := seen[key]; dup {
			return false, &duplicateKeyError{key}
		}
		seen[key] = struct{}{}
		if err := field(key); err != nil {
			return false, err
		}
	}
	if _, err := token(dec); err != nil { // the closing '}'
		return false, err
	}
	return false, nil
}

type duplicateKeyError struct{ key string }

func (e *duplicateKeyError) Error() string { return fmt.Sprintf("duplicate key %q", e.key) }

// expectEnd checks that nothing but whitespace follows the top-level value.
func expectEnd(dec *json.Decoder) error {
	t, err := dec.Token()
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return syntaxErr(err)
	}
	return fmt.Errorf("unexpected %s after the top-level object", describe(t))
}

func readString(dec *json.Decoder) (string, error) {
	t, err := token(dec)
	if err != nil {
		return "", err
	}
	s, ok := t.(string)
	if !ok {
		return "", fmt.Errorf("expected a string, found %s", describe(t))
	}
	return s, nil
}

// readInt reads an integer that fits an int. Floats and exponents ("2.0",
// "1e3") are rejected, as serde_json does for the Rust reference's usize.
func readInt(dec *json.Decoder) (int, error) {
	t, err := token(dec)
	if err != nil {
		return 0, err
	}
	n, ok := t.(json.Number)
	if !ok {
		return 0, fmt.Errorf("expected an integer, found %s", describe(t))
	}
	v, err := strconv.ParseInt(string(n), 10, 0)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Errorf("integer %s out of range", n)
		}
		return 0, fmt.Errorf("expected an integer, found %s", n)
	}
	return int(v), nil
}

func readIntArray(dec *json.Decoder) ([]int, error) {
	t, err := token(dec)
	if err != nil {
		return nil, err
	}
	if d, ok := t.(json.Delim); !ok || d != '[' {
		return nil, fmt.Errorf("expected an array, found %s", describe(t))
	}
	out := []int{} // non-nil: a 0-dim shape is [] not nil, so round trips compare equal
	for dec.More() {
		v, err := readInt(dec)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if _, err := token(dec); err != nil { // ']'
		return nil, err
	}
	return out, nil
}

// skipValue consumes one JSON value of any kind (used for fields we ignore,
// as the reference implementation ignores unknown tensor fields).
func skipValue(dec *json.Decoder) error {
	depth := 0
	for {
		t, err := token(dec)
		if err != nil {
			return err
		}
		if d, ok := t.(json.Delim); ok {
			switch d {
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
		}
		if depth == 0 {
			return nil
		}
	}
}
