package sample

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

var inf = float32(math.Inf(1))
var nan = float32(math.NaN())

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		p    Params
		bad  string // substring of the error, "" = valid
	}{
		{"zero", Params{}, ""},
		{"typical", Params{Temperature: 0.8, TopK: 40, TopP: 0.95, MinP: 0.05, RepetitionPenalty: 1.1, Seed: 7}, ""},
		{"top_p one", Params{Temperature: 1, TopP: 1}, ""},
		{"negative temperature", Params{Temperature: -1}, "temperature"},
		{"nan temperature", Params{Temperature: nan}, "temperature"},
		{"inf temperature", Params{Temperature: inf}, "temperature"},
		{"negative top_k", Params{TopK: -1}, "top_k"},
		{"top_p above 1", Params{TopP: 1.5}, "top_p"},
		{"top_p negative", Params{TopP: -0.1}, "top_p"},
		{"top_p nan", Params{TopP: nan}, "top_p"},
		{"min_p above 1", Params{MinP: 2}, "min_p"},
		{"min_p negative", Params{MinP: -0.5}, "min_p"},
		{"penalty negative", Params{RepetitionPenalty: -1}, "repetition_penalty"},
		{"penalty inf", Params{RepetitionPenalty: inf}, "repetition_penalty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			if tt.bad == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.bad) {
				t.Fatalf("Validate() = %v, want error mentioning %q", err, tt.bad)
			}
		})
	}
}

func TestNewPanicsOnInvalid(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("New with TopP=2 did not panic")
		}
	}()
	New(Params{TopP: 2})
}

func TestGreedy(t *testing.T) {
	tests := []struct {
		name   string
		logits []float32
		want   int
	}{
		{"empty", nil, -1},
		{"single", []float32{-3}, 0},
		{"max in middle", []float32{1, 5, 2}, 1},
		{"tie lowest id", []float32{1, 5, 5, 2}, 1},
		{"nan ignored", []float32{nan, 1, nan, 3, nan}, 3},
		{"leading nan", []float32{nan, -1}, 1},
		{"all nan", []float32{nan, nan}, 0},
		{"all -inf", []float32{-inf, -inf, -inf}, 0},
		{"+inf wins", []float32{1, inf, inf}, 1},
		{"negatives", []float32{-5, -1, -3}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Greedy(tt.logits); got != tt.want {
				t.Fatalf("Greedy(%v) = %d, want %d", tt.logits, got, tt.want)
			}
		})
	}
}

func TestSampleZeroTemperatureIsGreedy(t *testing.T) {
	s := New(Params{TopK: 3, TopP: 0.5, Seed: 1})
	logits := []float32{0.5, 2, 2, -1}
	for range 10 {
		if got := s.Sample(logits, nil); got != 1 {
			t.Fatalf("Sample = %d, want 1", got)
		}
	}
}

func randLogits(r *rand.Rand, n int, scale float64) []float32 {
	l := make([]float32, n)
	for i := range l {
		l[i] = float32(r.NormFloat64() * scale)
	}
	return l
}

func TestTopK1IsGreedy(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, temp := range []float32{0.01, 0.3, 1, 2, 50, 1e4} {
		s := New(Params{Temperature: temp, TopK: 1, Seed: 3})
		for range 200 {
			logits := randLogits(r, 257, 2)
			if i := r.IntN(len(logits)); i%3 == 0 { // exact ties at the max
				m := logits[Greedy(logits)]
				logits[i] = m
				logits[r.IntN(len(logits))] = m
			}
			want := Greedy(logits)
			if got := s.Sample(logits, nil); got != want {
				t.Fatalf("T=%v: top-k=1 drew %d, greedy %d", temp, got, want)
			}
		}
	}
}

func TestTinyTopPKeepsOnlyMax(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, temp := range []float32{0.5, 1, 3} {
		for _, topK := range []int{0, 10} {
			s := New(Params{Temperature: temp, TopP: 1e-6, TopK: topK, Seed: 9})
			for range 200 {
				logits := randLogits(r, 100, 1)
				want := Greedy(logits)
				if got := s.Sample(logits, nil); got != want {
					t.Fatalf("T=%v topK=%d: tiny top-p drew %d, max is %d", temp, topK, got, want)
				}
			}
		}
	}
}

func TestMinP(t *testing.T) {
	// At T=1, p_i/p_max = exp(l_i - l_max): ratios 1, e^-1=.368, e^-2=.135, e^-3=.050.
	logits := []float32{-1, 0, -3, -2}
	tests := []struct {
		minP float32
		want []int // tokens that may be drawn
	}{
		{0.5, []int{1}},
		{0.3, []int{0, 1}},
		{0.1, []int{0, 1, 3}},
		{0.04, []int{0, 1, 2, 3}},
		{1, []int{1}},
	}
	for _, tt := range tests {
		s := New(Params{Temperature: 1, MinP: tt.minP, Seed: 11})
		seen := map[int]bool{}
		for range 20000 {
			seen[s.Sample(logits, nil)] = true
		}
		var got []int
		for id := range seen {
			got = append(got, id)
		}
		slices.Sort(got)
		if !slices.Equal(got, tt.want) {
			t.Errorf("min_p=%v: drew %v, want exactly %v", tt.minP, got, tt.want)
		}
	}
}

func TestRepetitionPenalty(t *testing.T) {
	tests := []struct {
		name    string
		penalty float32
		logits  []float32
		history []int
		want    []float32
	}{
		{"positive divided, negative multiplied", 2,
			[]float32{2, -2, 0.5, 3}, []int{0, 1},
			[]float32{1, -4, 0.5, 3}},
		{"repeated id penalised once", 2,
			[]float32{2, -2, 0.5, 3}, []int{1, 1, 0, 1, 0},
			[]float32{1, -4, 0.5, 3}},
		{"penalty below one rewards", 0.5,
			[]float32{2, -2, 0.5}, []int{0, 1},
			[]float32{4, -1, 0.5}},
		{"zero stays zero", 1.3,
			[]float32{0, 1}, []int{0},
			[]float32{0, 1}},
		{"out of range ids ignored", 2,
			[]float32{4, 4}, []int{-1, 2, 99, 1},
			[]float32{4, 2}},
		{"off at 1", 1,
			[]float32{4, -4}, []int{0, 1},
			[]float32{4, -4}},
		{"off at 0", 0,
			[]float32{4, -4}, []int{0, 1},
			[]float32{4, -4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Params{RepetitionPenalty: tt.penalty})
			for call := range 2 { // the second call checks the de-dup stamps reset
				l := slices.Clone(tt.logits)
				s.Sample(l, tt.history)
				if !slices.Equal(l, tt.want) {
					t.Fatalf("call %d: logits after penalty = %v, want %v", call, l, tt.want)
				}
			}
		})
	}
	// The penalty changes the greedy choice: 2/2 = 1 < 1.5.
	s := New(Params{RepetitionPenalty: 2})
	if got := s.Sample([]float32{2, 1.5}, []int{0}); got != 1 {
		t.Fatalf("greedy after penalty = %d, want 1", got)
	}
}

// refDist is a deliberately naive HF pipeline (full sort, float64, HF's own
// ascending-cumsum top-p formula) that the fast path is checked against.
func refDist(logits []float32, history []int, p Params) []float64 {
	l := slices.Clone(logits)
	if p.RepetitionPenalty != 0 && p.RepetitionPenalty != 1 {
		done := map[int]bool{}
		for _, id := range history {
			if id < 0 || id >= len(l) || done[id] {
				continue
			}
			done[id] = true
			if l[id] < 0 {
				l[id] *= p.RepetitionPenalty
			} else {
				l[id] /= p.RepetitionPenalty
			}
		}
	}
	n := len(l)
	scores := make([]float64, n)
	for i, v := range l {
		scores[i] = float64(v) / float64(p.Temperature)
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { // descending
		switch {
		case scores[a] > scores[b]:
			return -1
		case scores[a] < scores[b]:
			return 1
		}
		return 0
	})
	keep := make([]bool, n)
	for _, i := range idx {
		keep[i] = true
	}
	if p.TopK > 0 && p.TopK < n {
		for _, i := range idx[p.TopK:] {
			keep[i] = false
		}
	}
	softmax := func() []float64 {
		q := make([]float64, n)
		var m float64 = math.Inf(-1)
		for i := range q {
			if keep[i] {
				m = math.Max(m, scores[i])
			}
		}
		var s float64
		for i := range q {
			if keep[i] {
				q[i] = math.Exp(scores[i] - m)
				s += q[i]
			}
		}
		for i := range q {
			q[i] /= s
		}
		return q
	}
	if p.TopP > 0 && p.TopP < 1 {
		q := softmax()
		var cum float64
		for j := n - 1; j >= 0; j-- { // ascending
			i := idx[j]
			cum += q[i]
			if cum <= 1-float64(p.TopP) && j != 0 {
				keep[i] = false
			}
		}
	}
	if p.MinP > 0 {
		q := softmax()
		pmax := q[idx[0]]
		for i := range q {
			if q[i] < float64(p.MinP)*pmax {
				keep[i] = false
			}
		}
	}
	return softmax()
}

// TestDistribution draws 100k tokens per configuration and checks the
// counts against refDist: a chi-square statistic within mean + 5 sd of its
// distribution, every token within 5 binomial sigma, and never a token
// refDist gives probability 0.
func TestDistribution(t *testing.T) {
	logits := []float32{1.2, -0.3, 0.8, 2.0, -1.5, 0.1, 1.9, -0.7, 0.4, -2.2}
	history := []int{3, 0, 4, 3}
	tests := []struct {
		name string
		p    Params
	}{
		{"softmax T=1", Params{Temperature: 1}},
		{"T=0.5", Params{Temperature: 0.5}},
		{"T=2", Params{Temperature: 2}},
		{"top-k 4", Params{Temperature: 1, TopK: 4}},
		{"top-p 0.8", Params{Temperature: 1, TopP: 0.8}},
		{"top-k 6 top-p 0.7 T=0.8", Params{Temperature: 0.8, TopK: 6, TopP: 0.7}},
		{"min-p 0.2", Params{Temperature: 1, MinP: 0.2}},
		{"all + penalty", Params{Temperature: 0.9, TopK: 7, TopP: 0.9, MinP: 0.05, RepetitionPenalty: 1.3}},
	}
	const draws = 100_000
	for ti, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.p.Seed = uint64(100 + ti)
			want := refDist(logits, history, tt.p)
			s := New(tt.p)
			counts := make([]int, len(logits))
			buf := make([]float32, len(logits))
			for range draws {
				copy(buf, logits)
				counts[s.Sample(buf, history)]++
			}
			var chi2 float64
			df := -1
			for i, c := range counts {
				e := want[i] * draws
				if want[i] == 0 {
					if c != 0 {
						t.Errorf("token %d has probability 0 but was drawn %d times", i, c)
					}
					continue
				}
				df++
				d := float64(c) - e
				chi2 += d * d / e
				if sigma := math.Sqrt(e * (1 - want[i])); math.Abs(d) > 5*sigma+1 {
					t.Errorf("token %d: %d draws, expected %.0f (5 sigma = %.0f)", i, c, e, 5*sigma)
				}
			}
			if df > 0 {
				if limit := float64(df) + 5*math.Sqrt(2*float64(df)); chi2 > limit {
					t.Errorf("chi-square %.1f with %d dof exceeds %.1f; counts %v, want p %v", chi2, df, limit, counts, want)
				}
			}
		})
	}
}

func TestSeeds(t *testing.T) {
	logits := randLogits(rand.New(rand.NewPCG(7, 7)), 1000, 1)
	seq := func(seed uint64) []int {
		s := New(Params{Temperature: 1, TopK: 50, TopP: 0.95, Seed: seed})
		out := make([]int, 64)
		for i := range out {
			out[i] = s.Sample(logits, nil)
		}
		return out
	}
	a, b, c := seq(42), seq(42), seq(43)
	if !slices.Equal(a, b) {
		t.Fatalf("same seed gave different sequences:\n%v\n%v", a, b)
	}
	if slices.Equal(a, c) {
		t.Fatalf("seeds 42 and 43 gave the same sequence %v", a)
	}
}

func TestNonFinite(t *testing.T) {
	tests := []struct {
		name   string
		p      Params
		logits []float32
		ok     func(int) bool
	}{
		{"nan never drawn", Params{Temperature: 1}, []float32{nan, 0, nan, 0.1}, func(i int) bool { return i == 1 || i == 3 }},
		{"nan never drawn top-k", Params{Temperature: 1, TopK: 2}, []float32{nan, 0, nan, 0.1, -1}, func(i int) bool { return i == 1 || i == 3 }},
		{"nan never drawn top-p", Params{Temperature: 1, TopP: 0.99}, []float32{nan, 0, nan, 0.1}, func(i int) bool { return i == 1 || i == 3 }},
		{"all nan", Params{Temperature: 1}, []float32{nan, nan, nan}, func(i int) bool { return i == 0 }},
		{"all -inf top-k", Params{Temperature: 1, TopK: 2}, []float32{-inf, -inf, -inf}, func(i int) bool { return i == 0 }},
		{"+inf lowest id", Params{Temperature: 1}, []float32{0, inf, 3, inf}, func(i int) bool { return i == 1 }},
		{"+inf lowest id top-k", Params{Temperature: 1, TopK: 2, TopP: 0.5}, []float32{0, inf, 3, inf}, func(i int) bool { return i == 1 }},
		{"tiny temperature", Params{Temperature: 1e-30}, []float32{1, 1.0001, -1}, func(i int) bool { return i == 1 }},
		{"huge logits", Params{Temperature: 1}, []float32{3e38, -3e38, 3e38}, func(i int) bool { return i == 0 || i == 2 }},
		{"empty", Params{Temperature: 1}, nil, func(i int) bool { return i == -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(tt.p)
			for range 500 {
				if got := s.Sample(slices.Clone(tt.logits), nil); !tt.ok(got) {
					t.Fatalf("Sample(%v) = %d", tt.logits, got)
				}
			}
		})
	}
}

// TestTopKSelection checks the heap selection against a full sort,
// including many exact ties (values drawn from a small set).
func TestTopKSelection(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 300 {
		n := 1 + r.IntN(300)
		logits := make([]float32, n)
		for i := range logits {
			logits[i] = float32(r.IntN(20) - 10)
			if r.IntN(30) == 0 {
				logits[i] = nan
			}
		}
		k := 1 + r.IntN(n)
		var all []cand
		for i, v := range logits {
			if v == v {
				all = append(all, cand{id: int32(i), logit: v})
			}
		}
		slices.SortFunc(all, byRank)
		want := all[:min(k, len(all))]
		got := selectTopK(nil, logits, k)
		if !slices.Equal(got, want) {
			t.Fatalf("selectTopK(k=%d) = %v, want %v", k, got, want)
		}
	}
}

func TestNoAllocs(t *testing.T) {
	logits := randLogits(rand.New(rand.NewPCG(1, 1)), 49152, 3)
	history := []int{1, 5, 9, 5, 300, 49151}
	for _, p := range []Params{
		{Temperature: 0.8, TopK: 40, TopP: 0.95, RepetitionPenalty: 1.1},
		{Temperature: 0.8, TopP: 0.95, MinP: 0.05, RepetitionPenalty: 1.1},
		{Temperature: 1},
	} {
		s := New(p)
		s.Sample(logits, history) // first call sizes the buffers
		if a := testing.AllocsPerRun(20, func() { s.Sample(logits, history) }); a != 0 {
			t.Errorf("%+v: %v allocations per Sample, want 0", p, a)
		}
	}
}

func benchSample(b *testing.B, p Params) {
	logits := randLogits(rand.New(rand.NewPCG(1, 1)), 49152, 3)
	s := New(p)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		s.Sample(logits, nil)
	}
}

func BenchmarkSampleTopK40TopP95(b *testing.B) {
	benchSample(b, Params{Temperature: 0.8, TopK: 40, TopP: 0.95, Seed: 1})
}

func BenchmarkSampleTopP95NoTopK(b *testing.B) {
	benchSample(b, Params{Temperature: 0.8, TopP: 0.95, Seed: 1})
}

func BenchmarkSampleMinP(b *testing.B) {
	benchSample(b, Params{Temperature: 0.8, MinP: 0.05, Seed: 1})
}

func BenchmarkGreedy(b *testing.B) {
	logits := randLogits(rand.New(rand.NewPCG(1, 1)), 49152, 3)
	for b.Loop() {
		Greedy(logits)
	}
}
