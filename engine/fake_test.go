package engine

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lorakit/lorakit/lora"
	"github.com/lorakit/lorakit/model/llama"
	"github.com/lorakit/lorakit/models"
	"github.com/lorakit/lorakit/tokenizer"
)

// fakeModel stands in for a Llama model: its "logits" make the next token a
// function of the last token, the position and the adapter, so every
// sequence has a known output, and it records what each step contained.
type fakeModel struct {
	vocab int
	shift map[*lora.Adapter]int // per-adapter offset of the next token

	inside     atomic.Int32
	concurrent atomic.Bool // set if two Forward calls ever overlapped

	mu    sync.Mutex
	steps [][]*lora.Adapter // adapters of each step, in order
	sizes []int             // sequences per step
	delay time.Duration
	gate  chan struct{} // when set, every Forward waits for a value
	fail  error
	// onStep, when set, sees every step before it runs (under mu).
	onStep func(st *llama.Step)
}

func newFake(vocab int) *fakeModel {
	return &fakeModel{vocab: vocab, shift: map[*lora.Adapter]int{}}
}

// next is the token the fake predicts after tok at position pos.
func (f *fakeModel) next(a *lora.Adapter, tok, pos int) int {
	// Stay within printable single-byte tokens of tiny-brown's vocabulary
	// (ids 100..1099) so decoded text is non-empty.
	return 100 + (tok*7+pos*3+f.shift[a]*11)%1000
}

func (f *fakeModel) Forward(st *llama.Step) ([]float32, error) {
	if f.inside.Add(1) > 1 {
		f.concurrent.Store(true)
	}
	defer f.inside.Add(-1)
	f.mu.Lock()
	delay, gate, fail := f.delay, f.gate, f.fail
	if f.onStep != nil {
		f.onStep(st)
	}
	ads := append([]*lora.Adapter(nil), st.Adapters...)
	if st.Adapters == nil {
		ads = make([]*lora.Adapter, len(st.Tokens))
	}
	f.steps = append(f.steps, ads)
	f.sizes = append(f.sizes, len(st.Tokens))
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if delay > 0 {
		time.Sleep(delay)
	}
	if fail != nil {
		return nil, fail
	}
	logits := make([]float32, len(st.Tokens)*f.vocab)
	for r, toks := range st.Tokens {
		c := st.Caches[r]
		if len(toks) == 0 {
			return nil, errors.New("fake: empty token list")
		}
		if c.Cap() < c.Len+len(toks) {
			return nil, errors.New("fake: cache not grown before the step")
		}
		c.Reserve(c.Len + len(toks))
		c.Len += len(toks)
		logits[r*f.vocab+f.next(ads[r], toks[len(toks)-1], c.Len-1)] = 1
	}
	return logits, nil
}

// expected is what the fake generates for a prompt, greedily.
func (f *fakeModel) expected(a *lora.Adapter, prompt []int, n int) []int {
	var out []int
	last, pos := prompt[len(prompt)-1], len(prompt)-1
	for len(out) < n {
		last = f.next(a, last, pos)
		pos++
		out = append(out, last)
	}
	return out
}

var fakeSpec = Spec{Layers: 2, KVDim: 4, Vocab: 4096, MaxPositions: 512}

var (
	tokOnce sync.Once
	tinyTok *tokenizer.Tokenizer
	tokErr  error
)

// tinyBrownTokenizer is the embedded model's tokenizer, parsed once.
func tinyBrownTokenizer(t testing.TB) *tokenizer.Tokenizer {
	tokOnce.Do(func() {
		src := models.TinyBrown()
		tj, _ := src.ReadFile("tokenizer.json")
		tc, _ := src.ReadFile("tokenizer_config.json")
		tinyTok, tokErr = tokenizer.Parse(tj, tc)
	})
	if tokErr != nil {
		t.Fatal(tokErr)
	}
	return tinyTok
}

// tokDecodeOpts decode as a StreamDecoder does: specials kept, no clean-up.
var tokDecodeOpts = tokenizer.DecodeOptions{}
