// Package testutil holds helpers shared by tests: locating the repository's
// testdata and comparing floats with tolerances.
package testutil

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
)

// Root is the repository root (where go.mod is).
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Path joins elements onto the repository root.
func Path(elem ...string) string { return filepath.Join(append([]string{Root()}, elem...)...) }

// Exists reports whether a path exists.
func Exists(path string) bool { _, err := os.Stat(path); return err == nil }

// AllClose reports the first element where |got−want| > atol + rtol·|want|
// (numpy.allclose), with NaN equal only to NaN. It returns "" when all hold.
func AllClose(got, want []float32, rtol, atol float64) string {
	if len(got) != len(want) {
		return fmt.Sprintf("length %d, want %d", len(got), len(want))
	}
	worst, wi := 0.0, -1
	for i := range got {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(g) || math.IsNaN(w) {
			if math.IsNaN(g) != math.IsNaN(w) {
				return fmt.Sprintf("element %d: got %v, want %v", i, g, w)
			}
			continue
		}
		d := math.Abs(g - w)
		if excess := d - (atol + rtol*math.Abs(w)); excess > 0 && (wi < 0 || excess > worst) {
			worst, wi = excess, i
		}
	}
	if wi >= 0 {
		return fmt.Sprintf("element %d: got %v, want %v (|diff| %.3g > atol %.3g + rtol %.3g·|want|)", wi, got[wi], want[wi], math.Abs(float64(got[wi]-want[wi])), atol, rtol)
	}
	return ""
}

// MaxAbsDiff is max |got−want|.
func MaxAbsDiff(got, want []float32) float64 {
	m := 0.0
	for i := range got {
		m = math.Max(m, math.Abs(float64(got[i])-float64(want[i])))
	}
	return m
}
