package gguf

import (
	"fmt"
	"math"
	"os"
)

// Open maps the file read-only and parses it. Tensor Data slices alias the
// mapping (no copy, pages load on first touch) and are valid until Close.
// As with any mmap, truncating the file while it is open can crash the
// process (SIGBUS); model files are treated as immutable.
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gguf %s: %w", path, err)
	}
	defer fh.Close() // the mapping outlives the descriptor
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("gguf %s: %w", path, err)
	}
	size := st.Size()
	if size < 0 || uint64(size) > math.MaxInt {
		return nil, fmt.Errorf("gguf %s: size %d does not fit in memory: %w", path, size, ErrUnsupported)
	}
	data, unmap, err := mapFile(fh, int(size))
	if err != nil {
		return nil, fmt.Errorf("gguf %s: %w", path, err)
	}
	f, err := Parse(path, data)
	if err != nil {
		if unmap != nil {
			unmap()
		}
		return nil, err
	}
	f.unmap = unmap
	return f, nil
}
