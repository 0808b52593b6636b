package engine

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lorakit/lorakit/lora"
)

// Registry errors; callers map them to statuses with errors.Is.
var (
	ErrUnknownAdapter = errors.New("unknown adapter")
	ErrInvalidName    = errors.New("invalid adapter name")
	ErrOutsideDir     = errors.New("adapter path is outside the adapter directory")
)

// LoadError is an adapter that exists but cannot be served: unreadable, not
// a PEFT LoRA adapter, or not fitting the base model.
type LoadError struct {
	Name string
	Err  error
}

func (e *LoadError) Error() string {
	return fmt.Sprintf("adapter %s cannot be loaded: %v", e.Name, e.Err)
}
func (e *LoadError) Unwrap() error { return e.Err }

// RegistryConfig configures a Registry.
type RegistryConfig struct {
	// Dir holds one PEFT adapter per subfolder, named after the folder.
	// Empty: only adapters loaded through Load are known.
	Dir string
	// MaxLoaded bounds the adapters held in memory (least recently used are
	// evicted). Adapters in use by queued or running requests cannot be
	// evicted, so the count can exceed MaxLoaded by at most the number of
	// requests in flight.
	MaxLoaded int
	// Base, when set, is what every adapter is checked against on load.
	Base lora.Shape
	// Reserved names (the base model's) that no adapter may take.
	Reserved []string
	// AllowOutsideDir lets Load read adapters from paths outside Dir.
	AllowOutsideDir bool
	Metrics         *Metrics
	Logger          *slog.Logger
}

// Registry maps adapter names to PEFT adapter folders and keeps an LRU of
// loaded adapters. Adapters load lazily on first use; the directory is
// rescanned on demand (List, and Acquire of a name not seen yet), so adapters
// copied into Dir appear without a restart. Safe for concurrent use.
type Registry struct {
	cfg     RegistryConfig
	dirReal string // Dir with symlinks resolved, for containment checks
	log     *slog.Logger

	mu      sync.Mutex
	entries map[string]*entry
	lru     *list.List // entries with an adapter in memory, most recent first
	nLoaded int
	bytes   int64
}

// entry is one known adapter name.
type entry struct {
	name, path string
	fromAdmin  bool          // registered by Load with a path other than Dir/name
	cur        *loaded       // in memory, or nil
	elem       *list.Element // in Registry.lru while cur != nil
	loading    *loadOp       // a load in flight
}

// loaded is one loaded version of an adapter. A reload replaces entry.cur;
// requests holding the old version keep it until they finish.
type loaded struct {
	a     *lora.Adapter
	bytes int64
	refs  int
}

type loadOp struct {
	done chan struct{}
	err  error
}

// AdapterInfo describes a known adapter.
type AdapterInfo struct {
	Name   string
	Path   string
	Loaded bool
	Bytes  int64 // memory when loaded
}

// NewRegistry checks the directory and makes a registry over it; nothing is
// loaded yet.
func NewRegistry(cfg RegistryConfig) (*Registry, error) {
	if cfg.MaxLoaded <= 0 {
		cfg.MaxLoaded = 64
	}
	r := &Registry{cfg: cfg, log: cfg.Logger, entries: map[string]*entry{}, lru: list.New()}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Dir != "" {
		abs, err := filepath.Abs(cfg.Dir)
		if err != nil {
			return nil, fmt.Errorf("adapters dir %s: %w", cfg.Dir, err)
		}
		real, err := filepath.EvalSymlinks(abs)
		if err != nil {
			return nil, fmt.Errorf("adapters dir: %w", err)
		}
		st, err := os.Stat(real)
		if err != nil {
			return nil, fmt.Errorf("adapters dir: %w", err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("adapters dir %s is not a directory", cfg.Dir)
		}
		r.cfg.Dir, r.dirReal = abs, real
		if err := r.Rescan(); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// ValidName reports whether name can be an adapter name: 1 to 128 of
// [A-Za-z0-9._-], and not "." or ".." (which the character set allows and
// which would name a directory other than a child of Dir).
func ValidName(name string) bool {
	if name == "" || len(name) > 128 || name == "." || name == ".." {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func (r *Registry) checkName(name string) error {
	if !ValidName(name) {
		return fmt.Errorf("%w %q: use 1 to 128 of A-Z a-z 0-9 . _ -", ErrInvalidName, name)
	}
	for _, res := range r.cfg.Reserved {
		if name == res {
			return fmt.Errorf("%w %q: it is the base model's name", ErrInvalidName, name)
		}
	}
	return nil
}

// isAdapterDir reports whether dir holds an adapter_config.json.
func isAdapterDir(dir string) bool {
	st, err := os.Stat(filepath.Join(dir, "adapter_config.json"))
	return err == nil && st.Mode().IsRegular()
}

// Rescan reads Dir: new subfolders become known, folders that disappeared
// are forgotten (requests using them keep their copy).
func (r *Registry) Rescan() error {
	if r.cfg.Dir == "" {
		return nil
	}
	des, err := os.ReadDir(r.cfg.Dir)
	if err != nil {
		return fmt.Errorf("rescan adapters: %w", err)
	}
	found := map[string]bool{}
	for _, de := range des {
		name := de.Name()
		if r.checkName(name) != nil {
			continue
		}
		p := filepath.Join(r.cfg.Dir, name)
		if isAdapterDir(p) {
			found[name] = true
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for name := range found {
		if r.entries[name] == nil {
			r.entries[name] = &entry{name: name, path: filepath.Join(r.cfg.Dir, name)}
		}
	}
	for name, e := range r.entries {
		if !e.fromAdmin && !found[name] && e.loading == nil {
			r.drop(e)
			delete(r.entries, name)
		}
	}
	return nil
}

// List rescans Dir and describes every known adapter, sorted by name.
func (r *Registry) List() ([]AdapterInfo, error) {
	if err := r.Rescan(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]AdapterInfo, 0, len(r.entries))
	for _, e := range r.entries {
		info := AdapterInfo{Name: e.name, Path: e.path}
		if e.cur != nil {
			info.Loaded, info.Bytes = true, e.cur.bytes
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Stats reports the adapters in memory and their bytes.
func (r *Registry) Stats() (n int, bytes int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nLoaded, r.bytes
}

// Acquire returns the named adapter, loading it if it is not in memory, and
// pins it until release is called (release is idempotent). A name not known
// yet is looked up in Dir first.
func (r *Registry) Acquire(ctx context.Context, name string) (a *lora.Adapter, release func(), err error) {
	if err := r.checkName(name); err != nil {
		return nil, nil, fmt.Errorf("%w %q", ErrUnknownAdapter, name)
	}
	e, err := r.lookup(name)
	if err != nil {
		return nil, nil, err
	}
	for {
		r.mu.Lock()
		if r.entries[name] != e { // forgotten or replaced meanwhile
			r.mu.Unlock()
			if e, err = r.lookup(name); err != nil {
				return nil, nil, err
			}
			continue
		}
		if l := e.cur; l != nil {
			l.refs++
			r.lru.MoveToFront(e.elem)
			r.mu.Unlock()
			r.cfg.Metrics.lookup(true)
			return l.a, r.releaser(l), nil
		}
		if op := e.loading; op != nil {
			// Someone else is loading it: wait instead of reading it twice.
			r.mu.Unlock()
			select {
			case <-op.done:
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
			if op.err != nil {
				return nil, nil, op.err
			}
			continue
		}
		op := &loadOp{done: make(chan struct{})}
		e.loading = op
		path := e.path
		r.mu.Unlock()
		r.cfg.Metrics.lookup(false)

		l, err := r.read(name, path)

		r.mu.Lock()
		e.loading = nil
		if err != nil {
			op.err = err
			close(op.done)
			r.mu.Unlock()
			return nil, nil, err
		}
		if e.cur == nil && r.entries[name] == e {
			r.install(e, l)
		} else if e.cur != nil {
			l = e.cur // an admin reload won the race: serve its version
		}
		l.refs++
		r.evict()
		close(op.done)
		r.mu.Unlock()
		return l.a, r.releaser(l), nil
	}
}

// lookup finds the entry of a name, looking in Dir when it is not known.
func (r *Registry) lookup(name string) (*entry, error) {
	r.mu.Lock()
	e := r.entries[name]
	r.mu.Unlock()
	if e != nil {
		return e, nil
	}
	if r.cfg.Dir == "" || !isAdapterDir(filepath.Join(r.cfg.Dir, name)) {
		return nil, fmt.Errorf("%w %q", ErrUnknownAdapter, name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if e = r.entries[name]; e == nil {
		e = &entry{name: name, path: filepath.Join(r.cfg.Dir, name)}
		r.entries[name] = e
	}
	return e, nil
}

// read loads and checks an adapter from disk (without the lock held).
func (r *Registry) read(name, path string) (*loaded, error) {
	t0 := time.Now()
	a, err := lora.Load(path)
	if err == nil && r.cfg.Base != nil {
		err = a.Check(r.cfg.Base)
	}
	if err == nil {
		a.PrepareServing()
	}
	r.cfg.Metrics.adapterLoad(time.Since(t0), err)
	if err != nil {
		r.log.Warn("adapter load failed", "adapter", name, "path", path, "err", err)
		return nil, &LoadError{Name: name, Err: err}
	}
	r.log.Debug("adapter loaded", "adapter", name, "bytes", a.Bytes(), "took", time.Since(t0))
	return &loaded{a: a, bytes: int64(a.Bytes())}, nil
}

// install makes l the entry's version in memory. Called with mu held.
func (r *Registry) install(e *entry, l *loaded) {
	r.drop(e)
	e.cur = l
	e.elem = r.lru.PushFront(e)
	r.nLoaded++
	r.bytes += l.bytes
	r.cfg.Metrics.setAdapters(r.nLoaded, r.bytes)
}

// drop removes the entry's version from memory accounting. Called with mu held.
func (r *Registry) drop(e *entry) {
	if e.cur == nil {
		return
	}
	r.lru.Remove(e.elem)
	r.nLoaded--
	r.bytes -= e.cur.bytes
	e.cur, e.elem = nil, nil
	r.cfg.Metrics.setAdapters(r.nLoaded, r.bytes)
}

// evict drops least recently used adapters nobody holds until at most
// MaxLoaded remain. Called with mu held.
func (r *Registry) evict() {
	for el := r.lru.Back(); el != nil && r.nLoaded > r.cfg.MaxLoaded; {
		prev := el.Prev()
		e := el.Value.(*entry)
		if e.cur.refs == 0 {
			r.drop(e)
			r.cfg.Metrics.evicted()
		}
		el = prev
	}
}

func (r *Registry) releaser(l *loaded) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			l.refs--
			r.evict()
			r.mu.Unlock()
		})
	}
}

// Load loads (or reloads) an adapter now and registers it under name. An
// empty path means Dir/name; a relative path is relative to Dir. Paths that
// resolve outside Dir (after symlinks) are refused unless AllowOutsideDir.
// On error nothing changes: a broken reload keeps the old version serving.
func (r *Registry) Load(name, path string) (AdapterInfo, error) {
	if err := r.checkName(name); err != nil {
		return AdapterInfo{}, err
	}
	p, err := r.resolve(name, path)
	if err != nil {
		return AdapterInfo{}, err
	}
	l, err := r.read(name, p)
	if err != nil {
		return AdapterInfo{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	def := r.cfg.Dir != "" && p == filepath.Join(r.dirReal, name)
	e := r.entries[name]
	if e == nil {
		e = &entry{name: name}
		r.entries[name] = e
	}
	e.path, e.fromAdmin = p, !def
	r.install(e, l)
	r.evict()
	return AdapterInfo{Name: name, Path: p, Loaded: e.cur != nil, Bytes: l.bytes}, nil
}

// resolve turns an admin-given path into a clean absolute path with symlinks
// resolved, inside Dir unless that is allowed.
func (r *Registry) resolve(name, path string) (string, error) {
	if path == "" {
		if r.cfg.Dir == "" {
			return "", fmt.Errorf("adapter %s: no path given and no adapter directory", name)
		}
		path = name
	}
	if !filepath.IsAbs(path) {
		if r.cfg.Dir == "" {
			return "", fmt.Errorf("adapter %s: relative path %q without an adapter directory", name, path)
		}
		path = filepath.Join(r.cfg.Dir, path)
	}
	real, err := filepath.EvalSymlinks(filepath.Clean(path))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("%w %q: %s does not exist", ErrUnknownAdapter, name, path)
		}
		return "", fmt.Errorf("adapter %s: %w", name, err)
	}
	if !r.cfg.AllowOutsideDir {
		if r.dirReal == "" || !within(r.dirReal, real) {
			return "", fmt.Errorf("%w: %s", ErrOutsideDir, path)
		}
	}
	return real, nil
}

// within reports whether p is dir or below it (both clean and absolute).
func within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// Unload drops an adapter from memory. An adapter registered by Load from
// outside Dir is forgotten; one in Dir stays listed and loads again on its
// next use. Requests using it finish with their copy.
func (r *Registry) Unload(name string) error {
	if err := r.checkName(name); err != nil {
		return err
	}
	e, err := r.lookup(name)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.drop(e)
	if e.fromAdmin {
		delete(r.entries, name)
	}
	return nil
}
