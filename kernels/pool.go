// Package kernels holds the CPU operations the models are built from. Each
// kernel has a pure-Go reference (named ...Ref) that stays forever; faster
// variants are tested against it.
package kernels

import (
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
)

// The worker pool is persistent: goroutines are started once and parked on a
// channel, so a parallel loop costs a channel send per worker rather than a
// goroutine spawn.
type pool struct {
	workers int
	tasks   chan poolTask
}

type poolTask struct {
	fn     func(lo, hi int)
	lo, hi int
	g      *taskGroup
}

// taskGroup counts one Parallel call's outstanding chunks; the last to
// finish closes done.
type taskGroup struct {
	pending atomic.Int32
	done    chan struct{}
}

func (t poolTask) run() {
	t.fn(t.lo, t.hi)
	if t.g.pending.Add(-1) == 0 {
		close(t.g.done)
	}
}

var (
	poolOnce   sync.Once
	sharedPool *pool
	threadsMu  sync.Mutex
	threads    = defaultThreads()
)

func defaultThreads() int {
	if s := os.Getenv("LORAKIT_THREADS"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			return n
		}
	}
	return runtime.GOMAXPROCS(0)
}

// SetThreads sets how many threads parallel kernels use (at least 1). It must be
// called before the first parallel kernel runs to take full effect.
func SetThreads(n int) {
	if n < 1 {
		n = 1
	}
	threadsMu.Lock()
	threads = n
	threadsMu.Unlock()
}

// Threads reports the thread count parallel kernels use.
func Threads() int {
	threadsMu.Lock()
	defer threadsMu.Unlock()
	return threads
}

func getPool() *pool {
	poolOnce.Do(func() {
		n := Threads()
		p := &pool{workers: n, tasks: make(chan poolTask, 4*n)}
		for i := 0; i < n; i++ {
			go func() {
				for t := range p.tasks {
					t.run()
				}
			}()
		}
		sharedPool = p
	})
	return sharedPool
}

// Parallel splits [0, n) into contiguous chunks of at least grain items and runs
// fn on them across the pool; the calling goroutine takes the last chunk itself.
// Calls may nest (a kernel inside another's chunk): a caller waiting for its
// chunks runs queued chunks itself instead of blocking, and a chunk that finds
// the queue full runs inline, so every worker waiting can never deadlock the
// pool. The chunking, and so the result, does not depend on who runs a chunk.
func Parallel(n, grain int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	if grain < 1 {
		grain = 1
	}
	p := getPool()
	chunks := p.workers
	if max := (n + grain - 1) / grain; chunks > max {
		chunks = max
	}
	if chunks <= 1 {
		fn(0, n)
		return
	}
	g := &taskGroup{done: make(chan struct{})}
	g.pending.Store(int32(chunks - 1))
	step := (n + chunks - 1) / chunks
	lo := 0
	for c := 0; c < chunks-1; c++ {
		hi := lo + step
		t := poolTask{fn: fn, lo: lo, hi: hi, g: g}
		select {
		case p.tasks <- t:
		default:
			t.run() // the queue is full: do it here rather than block
		}
		lo = hi
	}
	fn(lo, n)
	for {
		select {
		case <-g.done:
			return
		case t := <-p.tasks:
			t.run() // help: possibly another call's chunk, never a deadlock
		}
	}
}
