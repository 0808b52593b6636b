package data

// Truncate cuts examples longer than n tokens and marks them; it returns how
// many it cut, for the log (DESIGN.md §4: truncation is said).
func Truncate(exs []Example, n int) (truncated int) {
	for i := range exs {
		if n > 0 && len(exs[i].InputIDs) > n {
			exs[i].InputIDs = exs[i].InputIDs[:n]
			exs[i].Labels = exs[i].Labels[:n]
			exs[i].Truncated = true
			truncated++
		}
	}
	return truncated
}

// CountTargets is the number of tokens the examples put a loss on: labels
// other than IgnoreIndex at positions 1 and later (the loss shifts labels,
// so position 0 is never predicted). Zero over a whole dataset means there
// is nothing to learn (e.g. every completion empty).
func CountTargets(exs []Example) int {
	n := 0
	for _, ex := range exs {
		for i := 1; i < len(ex.Labels); i++ {
			if ex.Labels[i] != IgnoreIndex {
				n++
			}
		}
	}
	return n
}

// Pack concatenates examples, in order, into rows of at most seqLen tokens:
// an example goes into the current row when it fits, else it starts a new
// one, so no example is split across rows. An example longer than seqLen
// is truncated (and marked) in a row of its own; Truncate first to report
// those. Each example keeps its own <bos>…<eos> and labels, except that the
// label of each example's first token is IgnoreIndex: in a row it would ask
// the previous example's last token to predict the next example's <bos>,
// which transformers' DataCollatorWithFlattening and TRL's packing also
// mask; so CountTargets is the same before and after packing.
//
// Attention is not isolated: a token may attend to the earlier examples of
// its row, and positions run on across them, as with TRL's packing without
// padding_free and Axolotl's sample packing without flash-attention's
// variable-length kernels (the model takes no position ids or
// block-diagonal mask). Packing thus changes what each token is conditioned
// on, and the loss, compared with unpacked training. A row's Line is that of its first example. seqLen <= 0 returns exs.
func Pack(exs []Example, seqLen int) []Example {
	if seqLen <= 0 {
		return exs
	}
	var rows []Example
	var cur Example
	flush := func() {
		if len(cur.InputIDs) > 0 {
			rows = append(rows, cur)
		}
		cur = Example{}
	}
	for _, ex := range exs {
		ids, labels, truncated := ex.InputIDs, ex.Labels, ex.Truncated
		if len(ids) > seqLen {
			ids, labels, truncated = ids[:seqLen], labels[:seqLen], true
		}
		if len(ids) == 0 {
			continue
		}
		if len(cur.InputIDs)+len(ids) > seqLen {
			flush()
		}
		if len(cur.InputIDs) == 0 {
			cur.Line = ex.Line
			cur.InputIDs = make([]int, 0, seqLen)
			cur.Labels = make([]int, 0, seqLen)
		}
		cur.InputIDs = append(cur.InputIDs, ids...)
		cur.Labels = append(cur.Labels, IgnoreIndex)
		cur.Labels = append(cur.Labels, labels[1:]...)
		cur.Truncated = cur.Truncated || truncated
	}
	flush()
	return rows
}
