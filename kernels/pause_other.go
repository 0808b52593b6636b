//go:build noasm || !amd64

package kernels

func cpuPause(n int) {}
