package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	ptest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lorakit/lorakit/internal/testutil"
	"github.com/lorakit/lorakit/lora"
	"github.com/lorakit/lorakit/model"
	"github.com/lorakit/lorakit/model/llama"
)

func loadMicro(t testing.TB) *llama.Model {
	t.Helper()
	m, err := llama.Load(model.Dir(testutil.Path("testdata", "oracle", "micro", "model")))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// writeAdapters saves n random adapters for base into dir as name0..name{n-1}.
func writeAdapters(t testing.TB, base lora.Shape, dir, prefix string, n, rank int, targets []string) []*lora.Adapter {
	t.Helper()
	out := make([]*lora.Adapter, n)
	for i := range out {
		a, err := RandomAdapter(base, rank, targets, uint64(i+1), 0.05)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Save(filepath.Join(dir, fmt.Sprint(prefix, i))); err != nil {
			t.Fatal(err)
		}
		out[i] = a
	}
	return out
}

func newTestRegistry(t *testing.T, cfg RegistryConfig) (*Registry, *Metrics) {
	t.Helper()
	met := NewMetrics(prometheus.NewRegistry())
	cfg.Metrics = met
	r, err := NewRegistry(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r, met
}

// TestRegistryLazyLRU: nothing loads until used; at most MaxLoaded stay in
// memory, least recently used first out; a pinned adapter is never evicted;
// concurrent first uses read the file once.
func TestRegistryLazyLRU(t *testing.T) {
	m := loadMicro(t)
	dir := t.TempDir()
	ads := writeAdapters(t, m, dir, "a", 4, 2, lora.Attention)
	r, met := newTestRegistry(t, RegistryConfig{Dir: dir, MaxLoaded: 2, Base: m})
	if n, _ := r.Stats(); n != 0 {
		t.Fatalf("%d loaded before any use", n)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, release, err := r.Acquire(ctx, "a0")
			if err != nil {
				t.Error(err)
				return
			}
			if a.Params() != ads[0].Params() {
				t.Error("wrong adapter")
			}
			release()
			release() // idempotent
		}()
	}
	wg.Wait()
	if got := ptest.ToFloat64(met.adapterLoads); got != 1 {
		t.Fatalf("a0 read %v times by 8 concurrent first uses, want 1", got)
	}
	_, pin, err := r.Acquire(ctx, "a1") // held across the next loads
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a2", "a3", "a0"} {
		_, rel, err := r.Acquire(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		rel()
	}
	n, bytes := r.Stats()
	if n != 2 || bytes != int64(2*ads[0].Bytes()) {
		t.Fatalf("loaded %d (%d bytes), want 2 (%d bytes)", n, bytes, 2*ads[0].Bytes())
	}
	infos, _ := r.List()
	loaded := map[string]bool{}
	for _, in := range infos {
		loaded[in.Name] = in.Loaded
	}
	if !loaded["a1"] || !loaded["a0"] {
		t.Fatalf("want the pinned a1 and the most recent a0 in memory: %v", loaded)
	}
	pin()
	if ptest.ToFloat64(met.evictions) < 2 {
		t.Fatal("no evictions counted")
	}
	if _, _, err := r.Acquire(ctx, "missing"); !errors.Is(err, ErrUnknownAdapter) {
		t.Fatalf("unknown adapter: %v", err)
	}
}

// TestRegistryRescan: adapters copied into the directory after start are
// found on use and listed; removed ones disappear from the list.
func TestRegistryRescan(t *testing.T) {
	m := loadMicro(t)
	dir := t.TempDir()
	r, _ := newTestRegistry(t, RegistryConfig{Dir: dir, MaxLoaded: 4, Base: m})
	if infos, _ := r.List(); len(infos) != 0 {
		t.Fatalf("empty dir lists %v", infos)
	}
	writeAdapters(t, m, dir, "late", 2, 2, []string{"q_proj"})
	if _, rel, err := r.Acquire(context.Background(), "late0"); err != nil {
		t.Fatal(err)
	} else {
		rel()
	}
	os.Mkdir(filepath.Join(dir, "not-an-adapter"), 0o755)
	infos, _ := r.List()
	if len(infos) != 2 || infos[0].Name != "late0" || infos[1].Name != "late1" || !infos[0].Loaded {
		t.Fatalf("list: %+v", infos)
	}
	os.RemoveAll(filepath.Join(dir, "late1"))
	if infos, _ := r.List(); len(infos) != 1 {
		t.Fatalf("after removal: %+v", infos)
	}
}

// TestRegistryAdmin: Load validates names and paths (no way out of Dir),
// rejects an adapter that does not fit the base with the reason, reloads in
// place; Unload drops it from memory.
func TestRegistryAdmin(t *testing.T) {
	m := loadMicro(t)
	root := t.TempDir()
	dir := filepath.Join(root, "adapters")
	os.Mkdir(dir, 0o755)
	writeAdapters(t, m, dir, "in", 1, 2, lora.Attention)
	writeAdapters(t, m, root, "outside", 1, 2, lora.Attention)
	os.Symlink(filepath.Join(root, "outside0"), filepath.Join(dir, "link"))
	r, _ := newTestRegistry(t, RegistryConfig{Dir: dir, MaxLoaded: 4, Base: m, Reserved: []string{"base"}})

	for _, name := range []string{"", ".", "..", "a/b", "../x", "a b", "base", string(make([]byte, 129)), "é"} {
		if _, err := r.Load(name, ""); !errors.Is(err, ErrInvalidName) {
			t.Errorf("name %q: %v", name, err)
		}
	}
	for _, path := range []string{"../outside0", filepath.Join(root, "outside0"), "link", "in0/../../outside0"} {
		if _, err := r.Load("x", path); !errors.Is(err, ErrOutsideDir) {
			t.Errorf("path %q: %v", path, err)
		}
	}
	if _, err := r.Load("x", "nope"); !errors.Is(err, ErrUnknownAdapter) {
		t.Errorf("missing path: %v", err)
	}
	// An adapter for another base model: rejected with the reason.
	tiny := loadTinyBrown(t)
	writeAdapters(t, tiny, dir, "wrongbase", 1, 2, []string{"q_proj"})
	_, err := r.Load("wb", "wrongbase0")
	var le *LoadError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "base model") {
		t.Fatalf("adapter for another base: %v", err)
	}
	if _, _, err := r.Acquire(context.Background(), "wrongbase0"); !errors.As(err, &le) {
		t.Fatalf("lazy load of a misfit: %v", err)
	}

	info, err := r.Load("alias", "in0")
	if err != nil || !info.Loaded {
		t.Fatalf("load alias: %+v %v", info, err)
	}
	a1, rel, err := r.Acquire(context.Background(), "alias")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Load("alias", "in0"); err != nil { // reload
		t.Fatal(err)
	}
	a2, rel2, _ := r.Acquire(context.Background(), "alias")
	if a1 == a2 {
		t.Fatal("reload did not replace the adapter")
	}
	rel()
	rel2()
	if err := r.Unload("alias"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Acquire(context.Background(), "alias"); !errors.Is(err, ErrUnknownAdapter) {
		t.Fatalf("alias after unload: %v", err)
	}
	if err := r.Unload("in0"); err != nil { // in Dir: unloaded, still known
		t.Fatal(err)
	}
	if _, rel, err := r.Acquire(context.Background(), "in0"); err != nil {
		t.Fatalf("in0 after unload: %v", err)
	} else {
		rel()
	}
	if err := r.Unload("never"); !errors.Is(err, ErrUnknownAdapter) {
		t.Fatalf("unload unknown: %v", err)
	}

	// Explicitly allowed: outside paths load.
	r2, _ := newTestRegistry(t, RegistryConfig{Dir: dir, Base: m, AllowOutsideDir: true})
	if _, err := r2.Load("out", filepath.Join(root, "outside0")); err != nil {
		t.Fatal(err)
	}
}
