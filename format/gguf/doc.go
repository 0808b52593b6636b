// Package gguf reads and writes GGUF files (versions 2 and 3), the model
// format of ggml and llama.cpp, as specified in ggml's docs/gguf.md.
//
// Layout (all little-endian):
//
//	magic "GGUF" | u32 version | u64 tensor_count | u64 kv_count
//	kv_count × (string key, u32 value_type, value)
//	tensor_count × (string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset)
//	zero padding to general.alignment (default 32)
//	tensor data; each tensor at data_start + offset, offset aligned
//
// where string = u64 length + bytes. Version 1 used u32 counts and lengths
// and is not supported; version 3 only added big-endian files, which carry no
// marker, so v2 and v3 parse the same way and big-endian files are rejected
// by their byte-swapped version number.
//
// The reader treats its input as hostile: every length is checked against
// the bytes that remain before anything is allocated, so no input makes it
// panic, memory use stays within a small constant multiple of the input
// size, and every error names the file, the key or tensor, and the byte
// offset.
package gguf
