package kernels

import (
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestTuneKernel(t *testing.T) {
	if os.Getenv("TUNE") == "" {
		t.Skip()
	}
	im := impl
	for _, kc := range []int{64, 128, 256, 384, 512} {
		a := alignedFloats(im.mr * kc)
		b := alignedFloats(im.nr * kc)
		for i := range a {
			a[i] = 1
		}
		for i := range b {
			b[i] = 1
		}
		c := alignedFloats(im.mr * im.nr)
		iters := 2000000 / kc * 16
		w0, c0 := time.Now(), cpuTime()
		for it := 0; it < iters; it++ {
			im.kernel(kc, &a[0], &b[0], &c[0], im.nr, 0)
		}
		w, cp := time.Since(w0), cpuTime()-c0
		fl := 2 * float64(im.mr*im.nr*kc) * float64(iters)
		fmt.Printf("kernel %s kc=%d: wall %.1f GFLOPS, cpu %.1f GFLOPS\n", im.name, kc, fl/w.Seconds()/1e9, fl/cp.Seconds()/1e9)
	}
}

// TUNE=1 SIZES=1024,2048 KC=256 MC=480 NC=4096
func TestTuneGEMM(t *testing.T) {
	if os.Getenv("TUNE") == "" {
		t.Skip()
	}
	saved := *impl
	defer func() { *impl = saved }()
	geti := func(name string, def int) int {
		if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
			return v
		}
		return def
	}
	impl.kc, impl.mc, impl.nc = geti("KC", impl.kc), geti("MC", impl.mc), geti("NC", impl.nc)
	for _, ss := range strings.Split(os.Getenv("SIZES"), ",") {
		sz, _ := strconv.Atoi(ss)
		if sz == 0 {
			continue
		}
		x, w, dst := gemmRand(rand.New(rand.NewPCG(1, 2)), sz*sz, 0), gemmRand(rand.New(rand.NewPCG(1, 2)), sz*sz, 0), make([]float32, sz*sz)
		MatMulT(dst, x, w, sz, sz, sz, false)
		reps := geti("REPS", 5)
		for r := 0; r < reps; r++ {
			iters := max(1, (1<<31)/(sz*sz*sz))
			w0, c0 := time.Now(), cpuTime()
			for it := 0; it < iters; it++ {
				MatMulT(dst, x, w, sz, sz, sz, false)
			}
			wt, cp := time.Since(w0), cpuTime()-c0
			fl := 2 * float64(sz*sz*sz) * float64(iters)
			fmt.Printf("gemm %d kc=%d mc=%d nc=%d: wall %.1f GFLOPS, cpu-normalised(x2) %.1f\n", sz, impl.kc, impl.mc, impl.nc, fl/wt.Seconds()/1e9, 2*fl/cp.Seconds()/1e9)
		}
	}
}

func TestTunePack(t *testing.T) {
	if os.Getenv("TUNE") == "" {
		t.Skip()
	}
	ld := 2048
	src := make([]float32, ld*1100)
	dst := alignedFloats(4096*512 + 64)
	for _, w := range []int{14, 16, 32} {
		kb := 512
		nq := 252
		if w == 16 {
			nq = 288 // 18 panels, like 18 panels of 14 rows
		}
		if w == 32 {
			nq = 512
		}
		best, bestN := 1e9, 1e9
		for r := 0; r < 20; r++ {
			w0 := time.Now()
			impl.packT(dst, src, ld, (r%2)*nq, nq, 0, kb, w)
			best = min(best, time.Since(w0).Seconds()/float64(nq*kb)*1e9)
			w0 = time.Now()
			impl.packN(dst, src, ld, 0, kb, (r%2)*nq, nq, w)
			bestN = min(bestN, time.Since(w0).Seconds()/float64(nq*kb)*1e9)
		}
		fmt.Printf("w=%d: packTrans %.3f ns/elem, packCopy %.3f ns/elem\n", w, best, bestN)
	}
}

// TUNE=1 SWEEP="kc,mc,nc;kc,mc,nc" SIZES=1024 ROUNDS=7
func TestTuneSweep(t *testing.T) {
	if os.Getenv("TUNE") == "" || os.Getenv("SWEEP") == "" {
		t.Skip()
	}
	saved := *impl
	defer func() { *impl = saved }()
	type cfg struct{ kc, mc, nc, sh int }
	var cfgs []cfg
	for _, c := range strings.Split(os.Getenv("SWEEP"), ";") {
		f := strings.Split(c, ",")
		a, _ := strconv.Atoi(f[0])
		b, _ := strconv.Atoi(f[1])
		d, _ := strconv.Atoi(f[2])
		e := 1
		if len(f) > 3 {
			e, _ = strconv.Atoi(f[3])
		}
		cfgs = append(cfgs, cfg{a, b, d, e})
	}
	rounds, _ := strconv.Atoi(os.Getenv("ROUNDS"))
	for _, ss := range strings.Split(os.Getenv("SIZES"), ",") {
		sz, _ := strconv.Atoi(ss)
		rng := rand.New(rand.NewPCG(1, 2))
		x, w, dst := gemmRand(rng, sz*sz, 0), gemmRand(rng, sz*sz, 0), make([]float32, sz*sz)
		res := make([][]float64, len(cfgs))
		cres := make([][]float64, len(cfgs))
		for r := 0; r < rounds; r++ {
			for ci, c := range cfgs {
				impl.kc, impl.mc, impl.nc = c.kc, c.mc, c.nc
				MatMulT(dst, x, w, sz, sz, sz, false)
				iters := max(1, (1<<28)/(sz*sz*sz))
				w0, c0 := time.Now(), cpuTime()
				for it := 0; it < iters; it++ {
					MatMulT(dst, x, w, sz, sz, sz, false)
				}
				fl := 2 * float64(sz*sz*sz) * float64(iters)
				res[ci] = append(res[ci], fl/time.Since(w0).Seconds()/1e9)
				cres[ci] = append(cres[ci], fl/(cpuTime()-c0).Seconds()/1e9)
			}
		}
		for ci, c := range cfgs {
			v := append([]float64(nil), res[ci]...)
			sort.Float64s(v)
			cv := append([]float64(nil), cres[ci]...)
			sort.Float64s(cv)
			fmt.Printf("size %d %s shared=%d kc=%d mc=%d nc=%d: median %.1f max %.1f GFLOPS; per cpu-second median %.1f max %.1f\n", sz, impl.name, c.sh, c.kc, c.mc, c.nc, v[len(v)/2], v[len(v)-1], cv[len(cv)/2], cv[len(cv)-1])
		}
	}
}

// TUNE=1 KC=512 MC=252 NB=...: the macro-kernel on packed buffers alone.
func TestTuneMacro(t *testing.T) {
	if os.Getenv("TUNE") == "" {
		t.Skip()
	}
	geti := func(name string, def int) int {
		if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
			return v
		}
		return def
	}
	im := impl
	for _, kc := range []int{128, 192, 256, 384, 512, 768} {
		mc := geti("MCB", 256*1024) / (kc * 4) / im.mr * im.mr
		nb := geti("NB", 1024)
		a := alignedFloats(mc * kc)
		b := alignedFloats(nb * kc)
		ldc := nb + geti("LDCPAD", 0)
		c := alignedFloats(mc * ldc)
		for i := range a {
			a[i] = 1
		}
		for i := range b {
			b[i] = 1
		}
		best, bestc := 0.0, 0.0
		for rep := 0; rep < 5; rep++ {
			w0, c0 := time.Now(), cpuTime()
			for jr := 0; jr < nb; jr += im.nr {
				for ir := 0; ir < mc; ir += im.mr {
					im.kernel(kc, &a[ir*kc], &b[jr*kc], &c[ir*ldc+jr], ldc, 1)
				}
			}
			fl := 2 * float64(mc*nb*kc)
			best = max(best, fl/time.Since(w0).Seconds()/1e9)
			bestc = max(bestc, fl/(cpuTime()-c0).Seconds()/1e9)
		}
		fmt.Printf("macro kc=%d mc=%d nb=%d: best %.1f GFLOPS, per cpu-s %.1f\n", kc, mc, nb, best, bestc)
	}
}

func TestTuneNarrow(t *testing.T) {
	if os.Getenv("TUNE") == "" {
		t.Skip()
	}
	rng := rand.New(rand.NewPCG(1, 2))
	saved := impl.narrow
	defer func() { impl.narrow = saved }()
	for _, s := range [][3]int{{512, 16, 576}, {512, 8, 576}, {2048, 16, 1536}} {
		m, n, k := s[0], s[1], s[2]
		x, w, dst := gemmRand(rng, m*k, 0), gemmRand(rng, n*k, 0), make([]float32, m*n)
		for _, op := range gemmOps {
			for r := 0; r < 2; r++ {
				for _, nar := range []*gemmImpl{saved, nil} {
					impl.narrow = nar
					iters := max(1, (1<<30)/(m*n*k))
					w0, c0 := time.Now(), cpuTime()
					for it := 0; it < iters; it++ {
						op.fast(dst, x, w, m, n, k, false)
					}
					fl := 2 * float64(m*n*k) * float64(iters)
					fmt.Printf("%s %v narrow=%v: %.1f GFLOPS, per cpu-s %.1f\n", op.name, s, nar != nil, fl/time.Since(w0).Seconds()/1e9, fl/(cpuTime()-c0).Seconds()/1e9)
				}
			}
		}
	}
}
