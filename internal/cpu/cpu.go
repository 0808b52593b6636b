// Package cpu reports the instruction-set features the kernels choose their
// code paths by. It wraps golang.org/x/sys/cpu, which also checks that the
// operating system saves the wide registers (XSAVE/OSXSAVE), and lets the
// LORAKIT_CPU environment variable turn features off for testing and
// comparison: LORAKIT_CPU=noavx512 hides AVX-512, LORAKIT_CPU=generic hides
// AVX2, FMA and AVX-512.
package cpu

import (
	"os"
	"strings"

	"golang.org/x/sys/cpu"
)

// X86 holds the features the kernels use; all false on other architectures.
var X86 struct {
	// HasAVX2FMA: AVX2 and FMA3 (256-bit fused multiply-add).
	HasAVX2FMA bool
	// HasAVX512: AVX-512 F, BW, DQ and VL (512-bit vectors, masks).
	HasAVX512 bool
	// HasAVX512BF16: the AVX512_BF16 extension (VDPBF16PS, VCVTNE2PS2BF16).
	HasAVX512BF16 bool
}

func init() {
	x := cpu.X86
	X86.HasAVX2FMA = x.HasAVX && x.HasAVX2 && x.HasFMA
	X86.HasAVX512 = X86.HasAVX2FMA && x.HasAVX512F && x.HasAVX512BW && x.HasAVX512DQ && x.HasAVX512VL
	X86.HasAVX512BF16 = X86.HasAVX512 && x.HasAVX512BF16
	for _, f := range strings.Split(os.Getenv("LORAKIT_CPU"), ",") {
		switch strings.TrimSpace(f) {
		case "noavx512":
			X86.HasAVX512, X86.HasAVX512BF16 = false, false
		case "generic":
			X86.HasAVX2FMA, X86.HasAVX512, X86.HasAVX512BF16 = false, false, false
		}
	}
}

// Describe names the widest vector path in use: "avx512", "avx2" or "generic".
func Describe() string {
	switch {
	case X86.HasAVX512:
		return "avx512"
	case X86.HasAVX2FMA:
		return "avx2"
	}
	return "generic"
}
