package gguf

import (
	"encoding/binary"
	"fmt"
)

// cursor reads little-endian fields and refuses to read past the end of b.
// Its errors carry the byte offset of the field that did not fit; callers
// prefix the file name and the key or tensor.
type cursor struct {
	b   []byte
	off uint64
}

func (c *cursor) remaining() uint64 { return uint64(len(c.b)) - c.off }

func (c *cursor) take(n uint64, what string) ([]byte, error) {
	if n > c.remaining() {
		return nil, fmt.Errorf("%s: %d bytes needed at offset %d, only %d left: %w", what, n, c.off, c.remaining(), ErrInvalid)
	}
	s := c.b[c.off : c.off+n : c.off+n]
	c.off += n
	return s, nil
}

func (c *cursor) u32(what string) (uint32, error) {
	b, err := c.take(4, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (c *cursor) u64(what string) (uint64, error) {
	b, err := c.take(8, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// str reads a gguf_string_t (u64 length + bytes, no terminator). The length
// is checked against max and the remaining bytes before anything is copied.
func (c *cursor) str(what string, max uint64) (string, error) {
	at := c.off
	n, err := c.u64(what + " length")
	if err != nil {
		return "", err
	}
	if n > max {
		return "", fmt.Errorf("%s at offset %d: length %d exceeds the limit of %d bytes: %w", what, at, n, max, ErrInvalid)
	}
	b, err := c.take(n, what)
	if err != nil {
		return "", err
	}
	return string(b), nil // a copy: values outlive an mmap
}
