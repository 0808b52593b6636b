package gguf

import "errors"

var (
	// ErrInvalid is wrapped by every error about malformed input.
	ErrInvalid = errors.New("invalid GGUF")
	// ErrUnsupported is wrapped by errors about well-formed input this
	// package does not handle (version 1, big-endian files, dequantising
	// a type other than F32, F16, BF16, Q8_0 and Q4_0).
	ErrUnsupported = errors.New("unsupported GGUF feature")
)
