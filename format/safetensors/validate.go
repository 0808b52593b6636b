package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"unicode/utf8"

	"github.com/lorakit/lorakit/tensor"
)

// MaxHeaderSize caps the JSON header, as the Rust reference does
// (MAX_HEADER_SIZE = 100_000_000): a corrupt length must not make us allocate
// or scan gigabytes, and no real header comes near it.
const MaxHeaderSize = 100_000_000

const metadataKey = "__metadata__"

// entry is one tensor as declared in the header, before it is checked
// against the data buffer.
type entry struct {
	name       string
	dtype      tensor.DType
	shape      []int
	begin, end int
}

// layout splits a whole file into header and data buffer and validates
// everything; on success every entry's [begin,end) is a valid, exactly-sized
// slice of data, and the entries tile data with no holes or overlaps.
func layout(file string, b []byte) (meta map[string]string, entries []entry, data []byte, err error) {
	if len(b) < 8 {
		return nil, nil, nil, fileErr(file, "file is %d bytes, shorter than the 8-byte header length", len(b))
	}
	n := binary.LittleEndian.Uint64(b[:8])
	if n > MaxHeaderSize {
		return nil, nil, nil, fileErr(file, "header length %d exceeds the %d-byte limit", n, MaxHeaderSize)
	}
	if n > uint64(len(b)-8) {
		return nil, nil, nil, fileErr(file, "header length %d exceeds the %d bytes after the length field", n, len(b)-8)
	}
	header := b[8 : 8+n]
	data = b[8+n:]
	meta, entries, err = parseHeader(file, header)
	if err != nil {
		return nil, nil, nil, err
	}
	for i := range entries {
		if err := checkEntry(file, &entries[i], len(data)); err != nil {
			return nil, nil, nil, err
		}
	}
	if err := checkTiling(file, entries, len(data)); err != nil {
		return nil, nil, nil, err
	}
	return meta, entries, data, nil
}

// parseHeader decodes the JSON header. It only checks JSON structure and
// types; checkEntry checks the values.
func parseHeader(file string, header []byte) (map[string]string, []entry, error) {
	if len(header) == 0 {
		return nil, nil, fileErr(file, "empty header")
	}
	// encoding/json would silently replace invalid UTF-8 with U+FFFD, which
	// could make two distinct byte-level names collide; reject instead.
	if !utf8.Valid(header) {
		return nil, nil, fileErr(file, "header is not valid UTF-8")
	}
	// Newer Rust safetensors rejects headers not starting with '{'
	// (InvalidHeaderStart); writers never emit leading whitespace.
	if header[0] != '{' {
		return nil, nil, fileErr(file, "header does not start with '{'")
	}
	dec := newDecoder(header)
	meta := map[string]string{}
	var entries []entry
	_, err := readObject(dec, false, func(key string) error {
		if key == metadataKey {
			_, err := readObject(dec, true, func(k string) error {
				v, err := readString(dec)
				if err != nil {
					return fmt.Errorf("key %q: %w", k, err)
				}
				meta[k] = v
				return nil
			})
			if err != nil {
				return fileErr(file, "%s: %w", metadataKey, err)
			}
			return nil
		}
		e, err := parseEntry(dec, key)
		if err != nil {
			return tensorErr(file, key, "%w", err)
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		var fe *FormatError
		if errors.As(err, &fe) {
			return nil, nil, err
		}
		var dup *duplicateKeyError
		if errors.As(err, &dup) {
			if dup.key == metadataKey {
				return nil, nil, fileErr(file, "%s declared twice in the header", metadataKey)
			}
			return nil, nil, tensorErr(file, dup.key, "declared twice in the header")
		}
		return nil, nil, fileErr(file, "header: %w", err)
	}
	if err := expectEnd(dec); err != nil {
		return nil, nil, fileErr(file, "header: %w", err)
	}
	return meta, entries, nil
}

func parseEntry(dec *json.Decoder, name string) (entry, error) {
	e := entry{name: name}
	var haveDType, haveShape, haveOffsets bool
	_, err := readObject(dec, false, func(key string) error {
		switch key {
		case "dtype":
			s, err := readString(dec)
			if err != nil {
				return fmt.Errorf("dtype: %w", err)
			}
			e.dtype, haveDType = tensor.DType(s), true
		case "shape":
			s, err := readIntArray(dec)
			if err != nil {
				return fmt.Errorf("shape: %w", err)
			}
			e.shape, haveShape = s, true
		case "data_offsets":
			o, err := readIntArray(dec)
			if err != nil {
				return fmt.Errorf("data_offsets: %w", err)
			}
			if len(o) != 2 {
				return fmt.Errorf("data_offsets has %d elements, want 2", len(o))
			}
			e.begin, e.end, haveOffsets = o[0], o[1], true
		default:
			// The reference implementation ignores unknown fields; so do we,
			// so that a future optional field does not break reading.
			return skipValue(dec)
		}
		return nil
	})
	if err != nil {
		return e, err
	}
	switch {
	case !haveDType:
		return e, errors.New("missing dtype")
	case !haveShape:
		return e, errors.New("missing shape")
	case !haveOffsets:
		return e, errors.New("missing data_offsets")
	}
	return e, nil
}

// checkEntry validates one tensor's dtype, shape and offsets against a data
// buffer of dataLen bytes.
func checkEntry(file string, e *entry, dataLen int) error {
	size := e.dtype.Size()
	if size == 0 {
		return tensorErr(file, e.name, "unsupported dtype %q", e.dtype)
	}
	n, err := tensor.NumElements(e.shape)
	if err != nil {
		return tensorErr(file, e.name, "%w", err)
	}
	if n > math.MaxInt/size {
		return tensorErr(file, e.name, "shape %v of %s overflows", e.shape, e.dtype)
	}
	switch {
	case e.begin < 0 || e.end < 0:
		return tensorErr(file, e.name, "negative data_offsets [%d, %d]", e.begin, e.end)
	case e.begin > e.end:
		return tensorErr(file, e.name, "data_offsets [%d, %d] begin after end", e.begin, e.end)
	case e.end > dataLen:
		return tensorErr(file, e.name, "data_offsets [%d, %d] past the end of the %d-byte data buffer", e.begin, e.end, dataLen)
	case e.end-e.begin != n*size:
		return tensorErr(file, e.name, "data_offsets [%d, %d] span %d bytes, but %s%v needs %d",
			e.begin, e.end, e.end-e.begin, e.dtype, e.shape, n*size)
	}
	return nil
}

// checkTiling sorts entries by offset (the order Names reports) and checks
// that they cover [0, dataLen) exactly, as the Rust reference does (it fails
// with InvalidOffset on a hole or overlap and MetadataIncompleteBuffer on
// trailing bytes). Bytes no tensor owns could hide anything, and an overlap
// means two tensors alias the same memory.
func checkTiling(file string, entries []entry, dataLen int) error {
	sort.Slice(entries, func(i, j int) bool {
		a, b := entries[i], entries[j]
		if a.begin != b.begin {
			return a.begin < b.begin
		}
		if a.end != b.end {
			return a.end < b.end
		}
		return a.name < b.name
	})
	pos := 0
	prev := ""
	for _, e := range entries {
		switch {
		case e.begin < pos:
			return tensorErr(file, e.name, "data_offsets [%d, %d] overlap tensor %q ending at %d", e.begin, e.end, prev, pos)
		case e.begin > pos:
			return tensorErr(file, e.name, "data_offsets [%d, %d] leave a hole of %d bytes at %d", e.begin, e.end, e.begin-pos, pos)
		}
		pos = e.end
		prev = e.name
	}
	if pos != dataLen {
		return fileErr(file, "data buffer is %d bytes but the tensors cover only %d (incomplete metadata or trailing bytes)", dataLen, pos)
	}
	return nil
}
