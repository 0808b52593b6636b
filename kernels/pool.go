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
	"time"
)

// The worker pool is persistent: goroutines are started once and parked on a
// channel, so a parallel loop costs a channel send per worker rather than a
// goroutine spawn.
type pool struct {
	workers int
	tasks   chan poolTask
	queued  atomic.Int32 // tasks sent and not yet received, for spinners
}

type poolTask struct {
	fn     func(lo, hi int)
	lo, hi int
	g      *taskGroup
}

// groups recycles taskGroups, so a Parallel call allocates nothing.
var groups = sync.Pool{New: func() any { return &taskGroup{done: make(chan struct{}, 1)} }}

// taskGroup counts one Parallel call's outstanding chunks; the last to
// finish signals done (a buffered channel, so groups can be reused).
type taskGroup struct {
	pending atomic.Int32
	done    chan struct{}
}

func (t poolTask) run() {
	t.fn(t.lo, t.hi)
	if t.g.pending.Add(-1) == 0 {
		t.g.done <- struct{}{}
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
		// The caller of Parallel runs one chunk itself, so n−1 goroutines
		// keep n threads busy; one more would compete with the caller for
		// a core while it spins.
		for i := 0; i < n-1; i++ {
			go p.work()
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
	g := groups.Get().(*taskGroup)
	g.pending.Store(int32(chunks - 1))
	step := (n + chunks - 1) / chunks
	lo := 0
	for c := 0; c < chunks-1; c++ {
		hi := lo + step
		t := poolTask{fn: fn, lo: lo, hi: hi, g: g}
		p.queued.Add(1)
		select {
		case p.tasks <- t:
		default:
			p.queued.Add(-1)
			t.run() // the queue is full: do it here rather than block
		}
		lo = hi
	}
	fn(lo, n)
	// Chunks still queued when ours is done found no idle worker (on a
	// loaded machine the workers may not be running at all): run them here.
	// Then wait for the chunks in progress, spinning first (they usually
	// finish within microseconds; a futex wake-up costs as much as a small
	// chunk's work), then parked.
	for g.pending.Load() != 0 {
		select {
		case t := <-p.tasks:
			p.queued.Add(-1)
			t.run()
			continue
		default:
		}
		break
	}
	if g.pending.Load() == 0 || spin(func() bool { return g.pending.Load() == 0 }) {
		<-g.done // the last chunk's signal, sent just after its count reached 0
		groups.Put(g)
		return
	}
	for {
		select {
		case <-g.done:
			groups.Put(g)
			return
		case t := <-p.tasks:
			p.queued.Add(-1)
			t.run() // help: possibly another call's chunk, never a deadlock
		}
	}
}

// spinTime is how long an idle worker, or a caller waiting for its chunks,
// polls before parking: long enough to bridge the serial gaps between the
// kernels of a decode step (norms, RoPE, sampling; ggml's threads spin too),
// short enough not to burn a core between requests. Measured on the
// SmolLM2-135M shape, F32 decode: 30 µs 34 tokens/s, 100 µs 45, 250 µs 58
// (alternating runs, same window).
const spinTime = 250 * time.Microsecond

// spin polls done, with a PAUSE between polls, for up to spinTime.
func spin(done func() bool) bool {
	var t0 time.Time
	for i := 0; ; i++ {
		if done() {
			return true
		}
		cpuPause(4)
		if i&63 == 63 {
			if t0.IsZero() {
				t0 = time.Now()
			} else if time.Since(t0) > spinTime {
				return false
			}
		}
	}
}

func (p *pool) work() {
	for {
		if spin(func() bool { return p.queued.Load() > 0 }) {
			select {
			case t := <-p.tasks:
				p.queued.Add(-1)
				t.run()
			default: // the caller took it back
			}
			continue
		}
		t, ok := <-p.tasks
		if !ok {
			return
		}
		p.queued.Add(-1)
		t.run()
	}
}
