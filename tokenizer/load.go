package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// maxID bounds token ids so that a corrupt file cannot make us allocate
// gigabytes for the id -> token table.
const maxID = 1 << 22

// LoadFile loads a tokenizer.json, plus the tokenizer_config.json beside it if present.
func LoadFile(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	cfgPath := filepath.Join(filepath.Dir(path), "tokenizer_config.json")
	cfg, err := readOptional(cfgPath)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", cfgPath, err)
	}
	return parse(data, cfg, path, cfgPath)
}

// LoadDir loads dir/tokenizer.json (with dir/tokenizer_config.json if
// present), or, when there is no tokenizer.json, the SentencePiece model
// dir/tokenizer.model.
func LoadDir(dir string) (*Tokenizer, error) {
	jsonPath := filepath.Join(dir, "tokenizer.json")
	if _, err := os.Stat(jsonPath); err == nil {
		return LoadFile(jsonPath)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("tokenizer %s: %w", jsonPath, err)
	}
	modelPath := filepath.Join(dir, "tokenizer.model")
	if _, err := os.Stat(modelPath); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("tokenizer %s: neither tokenizer.json nor tokenizer.model found", dir)
		}
		return nil, fmt.Errorf("tokenizer %s: %w", modelPath, err)
	}
	t, err := LoadSentencePieceModel(modelPath)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "tokenizer_config.json")
	cfg, err := readOptional(cfgPath)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", cfgPath, err)
	}
	if cfg != nil {
		if err := t.applyConfig(cfg); err != nil {
			return nil, fmt.Errorf("tokenizer %s: %w", cfgPath, err)
		}
	}
	return t, nil
}

// Parse builds a tokenizer from the bytes of a tokenizer.json and, optionally
// (nil), a tokenizer_config.json.
func Parse(tokenizerJSON, tokenizerConfigJSON []byte) (*Tokenizer, error) {
	return parse(tokenizerJSON, tokenizerConfigJSON, "tokenizer.json", "tokenizer_config.json")
}

func readOptional(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return data, err
}

func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

// tokenizerFile is the top level of tokenizer.json. Truncation and padding are
// ignored: lorakit manages sequence lengths itself.
type tokenizerFile struct {
	AddedTokens   []addedToken    `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	Model         *modelJSON      `json:"model"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
}

func parse(data, cfg []byte, name, cfgName string) (*Tokenizer, error) {
	t, err := parseTokenizerJSON(data, name)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", name, err)
	}
	if cfg != nil {
		if err := t.applyConfig(cfg); err != nil {
			return nil, fmt.Errorf("tokenizer %s: %w", cfgName, err)
		}
	}
	return t, nil
}

func parseTokenizerJSON(data []byte, name string) (*Tokenizer, error) {
	var f tokenizerFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	t := &Tokenizer{name: name, bos: -1, eos: -1}
	var err error
	if t.model, err = parseModel(f.Model); err != nil {
		return nil, err // the messages name model.vocab, model.merges[i], ...
	}
	if t.normalizer, err = parseNormalizer(f.Normalizer); err != nil {
		return nil, fmt.Errorf("normalizer: %w", err)
	}
	if t.pre, err = parsePreTokenizer(f.PreTokenizer); err != nil {
		return nil, fmt.Errorf("pre_tokenizer: %w", err)
	}
	if t.post, err = parsePostProcessor(f.PostProcessor); err != nil {
		return nil, fmt.Errorf("post_processor: %w", err)
	}
	if t.decoder, err = parseDecoder(f.Decoder); err != nil {
		return nil, fmt.Errorf("decoder: %w", err)
	}
	t.joinDecode = isNull(f.Decoder)

	// The id table: model vocabulary, then added tokens (which win, as in HF).
	size := 0
	for _, id := range t.model.vocab() {
		size = max(size, id+1)
	}
	for i, a := range f.AddedTokens {
		if a.ID < 0 || a.ID >= maxID {
			return nil, fmt.Errorf("added_tokens[%d]: id %d out of range", i, a.ID)
		}
		if a.Content == "" {
			return nil, fmt.Errorf("added_tokens[%d]: empty content", i)
		}
		size = max(size, a.ID+1)
	}
	if size > maxID {
		return nil, fmt.Errorf("model.vocab: id %d out of range", size-1)
	}
	t.idToToken = make([]string, size)
	t.hasID = make([]bool, size)
	t.special = make([]bool, size)
	for tok, id := range t.model.vocab() {
		t.idToToken[id] = tok
		t.hasID[id] = true
	}
	t.added = make(map[string]int, len(f.AddedTokens))
	t.rawAdded, t.normAdded = newTokenMatcher(), newTokenMatcher()
	for i := range f.AddedTokens {
		a := &f.AddedTokens[i]
		t.idToToken[a.ID] = a.Content
		t.hasID[a.ID] = true
		t.special[a.ID] = a.Special
		t.added[a.Content] = a.ID
		if a.Normalized {
			pat := a.Content
			if t.normalizer != nil {
				pat = t.normalizer.normalize(pat)
			}
			t.normAdded.add(pat, a)
		} else {
			t.rawAdded.add(a.Content, a)
		}
	}
	for _, id := range append(append([]int(nil), t.post.prefix...), t.post.suffix...) {
		if id < 0 || id >= size {
			return nil, fmt.Errorf("post_processor: id %d is not in the vocabulary", id)
		}
	}
	if len(t.post.prefix) > 0 {
		t.bos = t.post.prefix[0]
	}
	return t, nil
}

// tokenizerConfig holds the parts of tokenizer_config.json lorakit uses.
type tokenizerConfig struct {
	BOS          json.RawMessage `json:"bos_token"`
	EOS          json.RawMessage `json:"eos_token"`
	CleanUp      *bool           `json:"clean_up_tokenization_spaces"`
	ChatTemplate json.RawMessage `json:"chat_template"`
	AddBOS       *bool           `json:"add_bos_token"`
	AddEOS       *bool           `json:"add_eos_token"`
}

func (t *Tokenizer) applyConfig(data []byte) error {
	var c tokenizerConfig
	if err := json.Unmarshal(data, &c); err != nil {
		return err
	}
	if c.CleanUp != nil {
		t.cleanUp = *c.CleanUp
	}
	for _, x := range []struct {
		raw json.RawMessage
		dst *int
		key string
	}{{c.BOS, &t.bos, "bos_token"}, {c.EOS, &t.eos, "eos_token"}} {
		tok, set, err := configToken(x.raw)
		if err != nil {
			return fmt.Errorf("%s: %w", x.key, err)
		}
		if !set {
			continue
		}
		*x.dst = -1
		if id, ok := t.TokenToID(tok); ok {
			*x.dst = id
		}
	}
	if t.fromSPM {
		// No post-processor: BOS unless add_bos_token is false, EOS if add_eos_token.
		t.post = postProcessor{}
		if t.bos >= 0 && (c.AddBOS == nil || *c.AddBOS) {
			t.post.prefix = []int{t.bos}
		}
		if t.eos >= 0 && c.AddEOS != nil && *c.AddEOS {
			t.post.suffix = []int{t.eos}
		}
	}
	tmpl, err := chatTemplate(c.ChatTemplate)
	if err != nil {
		return fmt.Errorf("chat_template: %w", err)
	}
	t.chatTemplate = tmpl
	return nil
}

// configToken reads a special token given as a string or as an AddedToken
// object {"content": ...}; set is false when the key is absent, and null
// counts as set but empty.
func configToken(raw json.RawMessage) (tok string, set bool, err error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return "", false, nil
	}
	if isNull(raw) {
		return "", true, nil
	}
	if err := json.Unmarshal(raw, &tok); err == nil {
		return tok, true, nil
	}
	var obj struct {
		Content string `json:"content"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return "", false, err
	}
	return obj.Content, true, nil
}

// chatTemplate reads chat_template: a string, or a list of {"name", "template"}
// from which the "default" one is taken.
func chatTemplate(raw json.RawMessage) (string, error) {
	if isNull(raw) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var list []struct {
		Name     string `json:"name"`
		Template string `json:"template"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return "", err
	}
	for _, e := range list {
		if e.Name == "default" {
			return e.Template, nil
		}
	}
	return "", nil
}
