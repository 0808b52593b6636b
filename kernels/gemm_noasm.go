//go:build noasm || !amd64

package kernels

func pickImpl() *gemmImpl { return goImpl }

// gemmImpls lists the variants this build can run, for tests and benchmarks.
func gemmImpls() []*gemmImpl { return []*gemmImpl{goImpl} }
