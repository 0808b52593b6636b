// Package safetensors reads and writes Hugging Face safetensors files and
// sharded model folders (model.safetensors.index.json + shards).
//
// Layout: an 8-byte little-endian u64 N, N bytes of UTF-8 JSON describing the
// tensors, then the data buffer. Tensor offsets in the JSON are relative to the
// start of the data buffer.
//
// Reading is strict in the way the reference Rust implementation is: a file
// whose tensors do not tile the data buffer exactly (holes, overlaps, trailing
// bytes) is rejected, because such a file is either corrupt or was produced by
// a tool whose other output we should not trust either. Everything that comes
// from the file is validated before a Tensor is handed out, so callers can
// slice Tensor.Data without further bounds checks.
package safetensors

import "fmt"

// FormatError reports a malformed or inconsistent safetensors file or index.
// File is the path (or the name given to Parse); Tensor is the tensor the
// problem was found in, if any.
type FormatError struct {
	File   string
	Tensor string
	// HasTensor distinguishes "no tensor" from a tensor named "" (legal JSON).
	HasTensor bool
	Err       error
}

func (e *FormatError) Error() string {
	if e.HasTensor {
		return fmt.Sprintf("safetensors %s: tensor %q: %v", e.File, e.Tensor, e.Err)
	}
	return fmt.Sprintf("safetensors %s: %v", e.File, e.Err)
}

func (e *FormatError) Unwrap() error { return e.Err }

func fileErr(file string, format string, args ...any) error {
	return &FormatError{File: file, Err: fmt.Errorf(format, args...)}
}

func tensorErr(file, tensor string, format string, args ...any) error {
	return &FormatError{File: file, Tensor: tensor, HasTensor: true, Err: fmt.Errorf(format, args...)}
}
