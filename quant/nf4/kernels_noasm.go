//go:build noasm || !amd64

package nf4

func pickKernels() *kernelSet { return goKernels }

// kernelSets lists the variants this build can run, for tests and benchmarks.
func kernelSets() []*kernelSet { return []*kernelSet{goKernels} }
