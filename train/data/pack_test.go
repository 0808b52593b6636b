package data

import (
	"reflect"
	"testing"
)

func ex(line int, ids, labels []int) Example {
	return Example{Line: line, InputIDs: ids, Labels: labels}
}

func TestCountTargets(t *testing.T) {
	const X = IgnoreIndex
	cases := []struct {
		exs  []Example
		want int
	}{
		{nil, 0},
		{[]Example{ex(1, []int{0, 5, 6}, []int{0, 5, 6})}, 2}, // position 0 is never predicted
		{[]Example{ex(1, []int{0, 5, 6}, []int{X, X, 6}), ex(2, []int{7}, []int{7})}, 1},
		{[]Example{ex(1, []int{0, 5}, []int{X, X})}, 0},
	}
	for i, c := range cases {
		if got := CountTargets(c.exs); got != c.want {
			t.Errorf("%d: CountTargets = %d, want %d", i, got, c.want)
		}
	}
}

func TestTruncate(t *testing.T) {
	exs := []Example{ex(1, []int{1, 2, 3}, []int{1, 2, 3}), ex(2, []int{1}, []int{1})}
	if n := Truncate(exs, 2); n != 1 || !exs[0].Truncated || len(exs[0].Labels) != 2 || exs[1].Truncated {
		t.Fatalf("n=%d %+v", n, exs)
	}
	if n := Truncate(exs, 0); n != 0 {
		t.Fatal("Truncate(0) cut")
	}
}

func TestPack(t *testing.T) {
	const X = IgnoreIndex
	in := []Example{
		ex(1, []int{0, 5, 6, 1}, []int{X, X, 6, 1}),
		ex(2, []int{0, 7, 1}, []int{0, 7, 1}),
		ex(3, []int{0, 8, 8, 8, 1}, []int{0, 8, 8, 8, 1}),
		ex(5, []int{0, 9, 9, 9, 9, 9, 9, 9, 1}, []int{0, 9, 9, 9, 9, 9, 9, 9, 1}), // longer than a row
		ex(6, []int{0, 1}, []int{X, 1}),
	}
	before := CountTargets(in)
	got := Pack(in, 8)
	want := []Example{
		{Line: 1, InputIDs: []int{0, 5, 6, 1, 0, 7, 1}, Labels: []int{X, X, 6, 1, X, 7, 1}},
		{Line: 3, InputIDs: []int{0, 8, 8, 8, 1}, Labels: []int{X, 8, 8, 8, 1}},
		{Line: 5, InputIDs: []int{0, 9, 9, 9, 9, 9, 9, 9}, Labels: []int{X, 9, 9, 9, 9, 9, 9, 9}, Truncated: true},
		{Line: 6, InputIDs: []int{0, 1}, Labels: []int{X, 1}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Pack:\n got %+v\nwant %+v", got, want)
	}
	// Only the truncated example lost targets (its <eos>).
	if after := CountTargets(got); after != before-1 {
		t.Errorf("CountTargets %d -> %d", before, after)
	}
	if in[0].Labels[0] != X || len(in[0].InputIDs) != 4 || in[3].Truncated {
		t.Error("Pack changed its input")
	}
	if got := Pack(in, 0); len(got) != len(in) {
		t.Error("Pack(0) should return the examples as they are")
	}
	if got := Pack(nil, 8); len(got) != 0 {
		t.Error("Pack(nil)")
	}
}
