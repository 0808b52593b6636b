package safetensors

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// parseIndex reads a <prefix>.safetensors.index.json:
// {"metadata": {...}, "weight_map": {tensor: shard file}}. "metadata" is
// optional and its content free-form (transformers writes total_size and,
// lately, total_parameters; nothing relies on them); unknown top-level keys
// are ignored. weight_map must be a non-empty object of strings with no
// duplicate keys.
func parseIndex(file string, data []byte) (map[string]string, error) {
	if !utf8.Valid(data) {
		return nil, fileErr(file, "not valid UTF-8")
	}
	dec := newDecoder(data)
	var weightMap map[string]string
	_, err := readObject(dec, false, func(key string) error {
		switch key {
		case "weight_map":
			weightMap = map[string]string{}
			_, err := readObject(dec, false, func(name string) error {
				shard, err := readString(dec)
				if err != nil {
					return tensorErr(file, name, "weight_map: %w", err)
				}
				weightMap[name] = shard
				return nil
			})
			if err != nil {
				var dup *duplicateKeyError
				if errors.As(err, &dup) {
					return tensorErr(file, dup.key, "listed twice in weight_map")
				}
				var fe *FormatError
				if errors.As(err, &fe) {
					return err
				}
				return fileErr(file, "weight_map: %w", err)
			}
			return nil
		case "metadata":
			// Free-form, but it must be an object (or null) when present.
			_, err := readObject(dec, true, func(string) error { return skipValue(dec) })
			if err != nil {
				return fileErr(file, "metadata: %w", err)
			}
			return nil
		default:
			return skipValue(dec)
		}
	})
	if err == nil {
		err = expectEnd(dec)
	}
	if err != nil {
		var fe *FormatError
		if errors.As(err, &fe) {
			return nil, err
		}
		return nil, fileErr(file, "%w", err)
	}
	if weightMap == nil {
		return nil, fileErr(file, "missing weight_map")
	}
	if len(weightMap) == 0 {
		return nil, fileErr(file, "empty weight_map")
	}
	return weightMap, nil
}

// encodeIndex produces the index exactly as transformers' save_pretrained
// writes it: json.dumps({"metadata": {"total_size": N}, "weight_map": ...},
// indent=2, sort_keys=True) + "\n".
func encodeIndex(totalSize int64, weightMap map[string]string) []byte {
	names := make([]string, 0, len(weightMap))
	for k := range weightMap {
		names = append(names, k)
	}
	// Python sorts by code point; byte order of UTF-8 is the same order.
	sort.Strings(names)
	b := []byte("{\n  \"metadata\": {\n    \"total_size\": ")
	b = strconv.AppendInt(b, totalSize, 10)
	b = append(b, "\n  },\n  \"weight_map\": {"...)
	for i, name := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, "\n    "...)
		b = appendPyString(b, name)
		b = append(b, ": "...)
		b = appendPyString(b, weightMap[name])
	}
	if len(names) > 0 {
		b = append(b, "\n  "...)
	}
	return append(b, "}\n}\n"...)
}

// splitShards groups tensors as huggingface_hub's split_state_dict_into_shards
// (used by save_pretrained) does: in input order, starting a new shard when
// the next tensor would push the current one past max; a tensor larger than
// max on its own gets a shard of its own, appended before the shard being
// filled.
func splitShards(tensors []Writable, max int64) [][]Writable {
	var shards [][]Writable
	var cur []Writable
	var curSize int64
	for _, t := range tensors {
		size := int64(len(t.Data))
		if size > max {
			shards = append(shards, []Writable{t})
			continue
		}
		if curSize+size > max {
			shards = append(shards, cur)
			cur, curSize = nil, 0
		}
		cur = append(cur, t)
		curSize += size
	}
	if len(cur) > 0 {
		shards = append(shards, cur)
	}
	return shards
}

// WriteSharded saves a model's tensors like transformers' save_pretrained
// with safe_serialization: if they fit in one shard (data bytes, not
// counting headers, <= maxShardBytes; or there is just one tensor, however
// large) it writes dir/<prefix>.safetensors; otherwise
// dir/<prefix>-00001-of-0000N.safetensors ... and
// dir/<prefix>.safetensors.index.json with {"metadata": {"total_size": data
// bytes}, "weight_map": {tensor: shard}}, byte-identical to what Python
// writes. metadata goes into every file's __metadata__ (transformers uses
// {"format": "pt"}). It returns the paths written, index last.
//
// Every file is written atomically. Files of an earlier save that would
// otherwise be picked up are removed, like save_pretrained does for stale
// shards: other dir/<prefix>-NNNNN-of-NNNNN.safetensors, and the index when
// writing a single file. Unlike save_pretrained it also removes a stale
// dir/<prefix>.safetensors when writing shards, because OpenDir (like
// transformers) prefers that file and would silently load the old weights;
// it is removed after the shards are written but before the index, so a
// crash in between leaves a folder that fails to open rather than one that
// opens the wrong model.
func WriteSharded(dir, prefix string, tensors []Writable, maxShardBytes int64, metadata map[string]string) ([]string, error) {
	if prefix == "" || strings.ContainsAny(prefix, `/\`) || !filepath.IsLocal(prefix) {
		return nil, fmt.Errorf("safetensors %s: invalid file prefix %q", dir, prefix)
	}
	if maxShardBytes <= 0 {
		return nil, fmt.Errorf("safetensors %s: maxShardBytes %d must be positive", dir, maxShardBytes)
	}
	total, err := checkWritables(filepath.Join(dir, prefix+".safetensors"), tensors)
	if err != nil {
		return nil, err
	}
	single := filepath.Join(dir, prefix+".safetensors")
	indexPath := filepath.Join(dir, prefix+".safetensors.index.json")
	shards := splitShards(tensors, maxShardBytes)

	if len(shards) <= 1 { // also zero tensors: an empty but valid file
		if err := Write(single, tensors, metadata); err != nil {
			return nil, err
		}
		if err := removeStale(dir, prefix, nil, true); err != nil {
			return nil, err
		}
		return []string{single}, nil
	}

	written := make([]string, 0, len(shards)+1)
	names := make(map[string]bool, len(shards))
	weightMap := make(map[string]string, len(tensors))
	for i, shard := range shards {
		name := fmt.Sprintf("%s-%05d-of-%05d.safetensors", prefix, i+1, len(shards))
		path := filepath.Join(dir, name)
		if err := Write(path, shard, metadata); err != nil {
			return nil, err
		}
		written = append(written, path)
		names[name] = true
		for _, t := range shard {
			weightMap[t.Name] = name
		}
	}
	if err := os.Remove(single); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("safetensors %s: removing stale single file: %w", single, err)
	}
	if err := WriteFileAtomic(indexPath, encodeIndex(total, weightMap)); err != nil {
		return nil, fmt.Errorf("safetensors %s: %w", indexPath, err)
	}
	written = append(written, indexPath)
	if err := removeStale(dir, prefix, names, false); err != nil {
		return nil, err
	}
	return written, nil
}

// removeStale deletes shard files of prefix in dir not in keep, and the
// index if removeIndex. Only regular files are touched.
func removeStale(dir, prefix string, keep map[string]bool, removeIndex bool) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("safetensors %s: %w", dir, err)
	}
	shardRE := regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `-\d{5}-of-\d{5}\.safetensors$`)
	index := prefix + ".safetensors.index.json"
	var errs []error
	for _, e := range entries {
		name := e.Name()
		stale := (removeIndex && name == index) || (shardRE.MatchString(name) && !keep[name])
		if !stale || !e.Type().IsRegular() {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("safetensors %s: removing stale file: %w", filepath.Join(dir, name), err))
		}
	}
	return errors.Join(errs...)
}
