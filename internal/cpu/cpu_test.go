package cpu

import "testing"

// TestFeaturesConsistent: each wider level implies the narrower ones.
func TestFeaturesConsistent(t *testing.T) {
	if X86.HasAVX512 && !X86.HasAVX2FMA {
		t.Error("AVX-512 without AVX2+FMA")
	}
	if X86.HasAVX512BF16 && !X86.HasAVX512 {
		t.Error("AVX512_BF16 without AVX-512")
	}
	switch d := Describe(); d {
	case "avx512", "avx2", "generic":
		t.Logf("vector path: %s", d)
	default:
		t.Errorf("Describe() = %q", d)
	}
}
