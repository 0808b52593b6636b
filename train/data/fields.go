package data

import (
	"encoding/json"
	"fmt"
	"sort"
)

// object is one JSON object with its fields still encoded.
type object map[string]json.RawMessage

func decodeObject(b []byte) (object, error) {
	var o object
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	if o == nil {
		return nil, fmt.Errorf("not a JSON object: null")
	}
	return o, nil
}

func (o object) has(key string) bool {
	_, ok := o[key]
	return ok
}

// str is a required string field. null, a number or anything else is an
// error: encoding/json would quietly turn null into "".
func (o object) str(key string) (string, error) {
	raw, ok := o[key]
	if !ok {
		return "", fmt.Errorf("missing field %q", key)
	}
	return decodeString(key, raw)
}

// optStr is an optional string field: absent or null is "".
func (o object) optStr(key string) (string, error) {
	raw, ok := o[key]
	if !ok || string(raw) == "null" {
		return "", nil
	}
	return decodeString(key, raw)
}

func decodeString(key string, raw json.RawMessage) (string, error) {
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", fmt.Errorf("field %q must be a string, not %s", key, jsonKind(raw))
	}
	return s, nil
}

// jsonKind names the JSON type of raw for error messages.
func jsonKind(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "a list"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

func (o object) keys() []string {
	keys := make([]string, 0, len(o))
	for k := range o {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
