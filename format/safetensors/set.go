package safetensors

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// Set is the tensors of one model, possibly spread over several shard files,
// looked up by name regardless of shard.
type Set struct {
	files   []*File
	names   []string
	tensors map[string]Tensor
}

// NewSet combines already opened files, e.g. embedded files from Parse. The
// Set takes ownership: Set.Close closes them. A tensor name in two files is
// an error (which tensor would be meant is ambiguous).
func NewSet(files ...*File) (*Set, error) {
	s := &Set{tensors: map[string]Tensor{}}
	owner := map[string]*File{}
	for i, f := range files {
		if f == nil {
			return nil, fmt.Errorf("safetensors: NewSet: file %d is nil", i)
		}
		for _, name := range f.Names() {
			if prev, dup := owner[name]; dup {
				return nil, fmt.Errorf("safetensors %s: tensor %q: also in %s", f.Path, name, prev.Path)
			}
			owner[name] = f
			t, _ := f.Tensor(name)
			s.tensors[name] = t
			s.names = append(s.names, name)
		}
	}
	s.files = append(s.files, files...)
	return s, nil
}

// Names lists all tensors: file by file in the order given to NewSet (shard
// file name order for OpenDir), each file in data-offset order.
func (s *Set) Names() []string { return append([]string(nil), s.names...) }

// Len is the number of tensors.
func (s *Set) Len() int { return len(s.names) }

// Tensor looks a tensor up by name in whichever file holds it.
func (s *Set) Tensor(name string) (Tensor, bool) {
	t, ok := s.tensors[name]
	return t, ok
}

// Files returns the underlying files (e.g. to read their Metadata).
func (s *Set) Files() []*File { return append([]*File(nil), s.files...) }

// Close closes every file; see File.Close about tensors obtained earlier.
func (s *Set) Close() error {
	var errs []error
	for _, f := range s.files {
		errs = append(errs, f.Close())
	}
	s.tensors, s.names = nil, nil
	return errors.Join(errs...)
}

// OpenDir opens a Hugging Face model folder's weights: dir/model.safetensors
// or, if that does not exist, dir/model.safetensors.index.json and its shards.
func OpenDir(dir string) (*Set, error) { return OpenDirPrefix(dir, "model") }

// OpenDirPrefix is OpenDir for other file prefixes, e.g. "adapter_model" for
// a PEFT adapter. The single file wins over an index when both exist, as in
// transformers' loader; WriteSharded removes whichever of the two is stale.
//
// For a sharded model it checks that the index is well formed, that every
// shard named in it is a plain relative path inside dir, that every tensor the
// index lists is in the shard it names, and that no shard holds a tensor the
// index does not assign to it (which also rules out a tensor in two shards).
// Shard paths are checked lexically only: symlinks are followed, because the
// Hugging Face cache stores every file as a symlink into ../../blobs.
func OpenDirPrefix(dir, prefix string) (*Set, error) {
	single := filepath.Join(dir, prefix+".safetensors")
	if _, err := os.Stat(single); err == nil {
		f, err := Open(single)
		if err != nil {
			return nil, err
		}
		return NewSet(f)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("safetensors %s: %w", single, err)
	}
	indexPath := filepath.Join(dir, prefix+".safetensors.index.json")
	data, err := os.ReadFile(indexPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("safetensors %s: neither %s.safetensors nor %s.safetensors.index.json: %w",
			dir, prefix, prefix, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("safetensors %s: %w", indexPath, err)
	}
	weightMap, err := parseIndex(indexPath, data)
	if err != nil {
		return nil, err
	}
	return openShards(dir, indexPath, weightMap)
}

func openShards(dir, indexPath string, weightMap map[string]string) (_ *Set, err error) {
	byShard := map[string][]string{}
	for name, shard := range weightMap {
		byShard[shard] = append(byShard[shard], name)
	}
	shards := make([]string, 0, len(byShard))
	for shard := range byShard {
		// IsLocal rejects "", absolute paths and anything with a ".."
		// element, so a downloaded index cannot make us open files
		// outside the model folder.
		if !filepath.IsLocal(shard) {
			return nil, fileErr(indexPath, "shard %q is not a relative path inside the folder", shard)
		}
		shards = append(shards, shard)
	}
	sort.Strings(shards)

	var files []*File
	defer func() {
		if err != nil {
			for _, f := range files {
				f.Close()
			}
		}
	}()
	for _, shard := range shards {
		f, err := Open(filepath.Join(dir, shard))
		if err != nil {
			return nil, fmt.Errorf("%w (shard listed in %s)", err, indexPath)
		}
		files = append(files, f)
		names := byShard[shard]
		sort.Strings(names)
		for _, name := range names {
			if _, ok := f.Tensor(name); !ok {
				return nil, tensorErr(indexPath, name, "not in shard %q", shard)
			}
		}
		for _, name := range f.Names() {
			if want, ok := weightMap[name]; !ok {
				return nil, tensorErr(f.Path, name, "not listed in the index %s", indexPath)
			} else if want != shard {
				return nil, tensorErr(f.Path, name, "index %s assigns it to shard %q", indexPath, want)
			}
		}
	}
	return NewSet(files...)
}
