// Package quant is the home of lorakit's quantized weight formats; each
// format is a subpackage with its own storage type, conversions and fused
// multiplication kernels:
//
//   - quant/nf4: 4-bit NormalFloat with double quantization, bit-compatible
//     with bitsandbytes (QLoRA's frozen base), including its safetensors
//     layout.
//
// Formats here depend only on package kernels (for threads and the float32
// GEMM) and never on file-format packages: they describe their tensors as
// plain (name, dtype, shape, bytes) entries that the loaders wire up.
package quant
