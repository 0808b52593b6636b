package chat

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/nikolalohinski/gonja/v2/exec"
)

// filterToJSON is transformers' tojson filter:
//
//	json.dumps(x, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys)
//
// It replaces gonja's, which uses Go's encoding/json and so differs from
// Python where chat templates notice: Go escapes <, > and & (as \u003c…),
// writes no space after ',' and ':', and ensure_ascii defaults differ.
// Dicts keep their order when the engine knows it (dict(), literals); Go maps
// have none, so their keys are sorted (Python would keep insertion order).
func filterToJSON(_ *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	j := pyJSON{indent: -1, itemSep: ", ", keySep: ": "}
	if v, ok := params.KwArgs["indent"]; ok && !v.IsNil() {
		if !v.IsInteger() {
			return exec.AsValue(fmt.Errorf("tojson: indent must be an integer, not %s", v.String()))
		}
		j.indent = v.Integer()
		j.itemSep = ","
	}
	if len(params.Args) > 0 && params.Args[0].IsInteger() { // tojson(2)
		j.indent = params.Args[0].Integer()
		j.itemSep = ","
	}
	if v, ok := params.KwArgs["ensure_ascii"]; ok {
		j.ascii = v.IsTrue()
	}
	if v, ok := params.KwArgs["sort_keys"]; ok {
		j.sortKeys = v.IsTrue()
	}
	if v, ok := params.KwArgs["separators"]; ok && v.IsList() && v.Len() == 2 {
		j.itemSep, j.keySep = v.Index(0).String(), v.Index(1).String()
	}
	if err := j.value(in, 0); err != nil {
		return exec.AsValue(fmt.Errorf("tojson: %w", err))
	}
	return exec.AsSafeValue(j.b.String())
}

// pyJSON writes JSON the way Python's json.dumps does.
type pyJSON struct {
	b               strings.Builder
	indent          int // -1: one line
	itemSep, keySep string
	ascii, sortKeys bool
}

func (j *pyJSON) newline(level int) {
	if j.indent >= 0 {
		j.b.WriteByte('\n')
		j.b.WriteString(strings.Repeat(" ", j.indent*level))
	}
}

func (j *pyJSON) value(v any, level int) error {
	if level > 100 {
		return fmt.Errorf("value nested too deeply (circular?)")
	}
	switch x := v.(type) {
	case nil:
		j.b.WriteString("null")
		return nil
	case *exec.Value:
		if x == nil || x.IsNil() {
			j.b.WriteString("null")
			return nil
		}
		return j.value(x.Interface(), level)
	case exec.Dict:
		return j.dict(x.Pairs, level)
	case *exec.Dict:
		return j.dict(x.Pairs, level)
	case reflect.Value:
		if !x.IsValid() {
			j.b.WriteString("null")
			return nil
		}
		return j.value(x.Interface(), level)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			j.b.WriteString("null")
			return nil
		}
		return j.value(rv.Elem().Interface(), level)
	case reflect.Bool:
		if rv.Bool() {
			j.b.WriteString("true")
		} else {
			j.b.WriteString("false")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		j.b.WriteString(strconv.FormatInt(rv.Int(), 10))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		j.b.WriteString(strconv.FormatUint(rv.Uint(), 10))
	case reflect.Float32, reflect.Float64:
		j.b.WriteString(pyFloat(rv.Float()))
	case reflect.String:
		j.str(rv.String())
	case reflect.Slice, reflect.Array:
		if rv.Len() == 0 {
			j.b.WriteString("[]")
			return nil
		}
		j.b.WriteByte('[')
		for i := 0; i < rv.Len(); i++ {
			if i > 0 {
				j.b.WriteString(j.itemSep)
			}
			j.newline(level + 1)
			if err := j.value(rv.Index(i).Interface(), level+1); err != nil {
				return err
			}
		}
		j.newline(level)
		j.b.WriteByte(']')
	case reflect.Map:
		pairs := make([]*exec.Pair, 0, rv.Len())
		it := rv.MapRange()
		for it.Next() {
			pairs = append(pairs, &exec.Pair{Key: exec.AsValue(fmt.Sprint(it.Key().Interface())), Value: exec.ToValue(it.Value())})
		}
		sort.Slice(pairs, func(a, b int) bool { return pairs[a].Key.String() < pairs[b].Key.String() })
		return j.dict(pairs, level)
	default:
		return fmt.Errorf("cannot serialise a %s", rv.Kind())
	}
	return nil
}

func (j *pyJSON) dict(pairs []*exec.Pair, level int) error {
	if len(pairs) == 0 {
		j.b.WriteString("{}")
		return nil
	}
	if j.sortKeys {
		pairs = append([]*exec.Pair(nil), pairs...)
		sort.SliceStable(pairs, func(a, b int) bool { return pairs[a].Key.String() < pairs[b].Key.String() })
	}
	j.b.WriteByte('{')
	for i, p := range pairs {
		if i > 0 {
			j.b.WriteString(j.itemSep)
		}
		j.newline(level + 1)
		j.str(p.Key.String())
		j.b.WriteString(j.keySep)
		if err := j.value(p.Value, level+1); err != nil {
			return err
		}
	}
	j.newline(level)
	j.b.WriteByte('}')
	return nil
}

// str quotes s as json.dumps does: only '"', '\\' and control characters
// are escaped (and, with ensure_ascii, everything past ASCII as \uXXXX with
// surrogate pairs).
func (j *pyJSON) str(s string) {
	j.b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			j.b.WriteString(`\"`)
		case r == '\\':
			j.b.WriteString(`\\`)
		case r == '\n':
			j.b.WriteString(`\n`)
		case r == '\r':
			j.b.WriteString(`\r`)
		case r == '\t':
			j.b.WriteString(`\t`)
		case r == '\b':
			j.b.WriteString(`\b`)
		case r == '\f':
			j.b.WriteString(`\f`)
		case r < 0x20:
			fmt.Fprintf(&j.b, `\u%04x`, r)
		case j.ascii && r > 0x7e:
			if r > 0xffff {
				r -= 0x10000
				fmt.Fprintf(&j.b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
			} else {
				fmt.Fprintf(&j.b, `\u%04x`, r)
			}
		default:
			j.b.WriteRune(r)
		}
	}
	j.b.WriteByte('"')
}

// pyFloat is Python's repr of a float: the shortest round-tripping digits,
// positional between 1e-4 and 1e16 (with ".0" when integral), else
// exponential; json.dumps writes NaN and ±Infinity for the non-finite.
func pyFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	if f == 0 {
		if math.Signbit(f) {
			return "-0.0"
		}
		return "0.0"
	}
	exp := math.Floor(math.Log10(math.Abs(f)))
	// Log10 can be off by one near powers of ten; the 'e' form knows.
	e := strconv.FormatFloat(f, 'e', -1, 64)
	if i := strings.LastIndexByte(e, 'e'); i >= 0 {
		if n, err := strconv.Atoi(e[i+1:]); err == nil {
			exp = float64(n)
		}
	}
	if exp < -4 || exp >= 16 {
		return e
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}
