//go:build !noasm && amd64

package kernels

// cpuPause executes the PAUSE instruction n times (n ≥ 1): a spin-wait hint
// that leaves the core's resources to its sibling thread.
//
//go:noescape
func cpuPause(n int)
