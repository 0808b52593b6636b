package sched

import (
	"math"
	"testing"
)

// Values computed from transformers' lambdas by hand.
func TestSchedules(t *testing.T) {
	tests := []struct {
		kind          string
		warmup, total int
		at            map[int]float64 // step → multiplier
	}{
		{"cosine", 10, 110, map[int]float64{0: 0, 5: 0.5, 10: 1, 60: 0.5, 110: 0, 35: 0.5 * (1 + math.Cos(math.Pi*0.25))}},
		{"linear", 4, 14, map[int]float64{0: 0, 2: 0.5, 4: 1, 9: 0.5, 14: 0, 20: 0}},
		{"constant", 2, 10, map[int]float64{0: 0, 1: 0.5, 2: 1, 9: 1}},
		{"cosine", 0, 4, map[int]float64{0: 1, 2: 0.5, 4: 0}},
	}
	for _, tt := range tests {
		s, err := New(tt.kind, 2e-3, tt.warmup, tt.total)
		if err != nil {
			t.Fatal(err)
		}
		for k, want := range tt.at {
			if got := s.At(k); math.Abs(got-2e-3*want) > 1e-15 {
				t.Errorf("%s warmup %d total %d: step %d lr %v, want %v", tt.kind, tt.warmup, tt.total, k, got, 2e-3*want)
			}
		}
	}
	if _, err := New("step", 1, 0, 1); err == nil {
		t.Fatal("unknown schedule accepted")
	}
}

func TestWarmupSteps(t *testing.T) {
	for _, tt := range []struct {
		w     float64
		total int
		want  int
	}{{0, 100, 0}, {0.03, 100, 3}, {0.03, 101, 4}, {5, 100, 5}} {
		if got, _ := WarmupSteps(tt.w, tt.total); got != tt.want {
			t.Errorf("WarmupSteps(%v, %d) = %d, want %d", tt.w, tt.total, got, tt.want)
		}
	}
	if _, err := WarmupSteps(-1, 10); err == nil {
		t.Fatal("negative warmup accepted")
	}
}
