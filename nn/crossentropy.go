package nn

import (
	"math"

	"github.com/lorakit/lorakit/kernels"
)

// IgnoreIndex marks a target that takes no part in the loss, as in PyTorch.
const IgnoreIndex = -100

// CrossEntropy sums the negative log-likelihood of targets over the rows of
// logits [rows, V]; row i predicts targets[i], and rows whose target is
// IgnoreIndex are skipped. It returns the sum (float64) and the count, so a
// caller can divide by the count of the whole batch as HF ForCausalLMLoss does.
// Log-softmax as in torch: logsumexp shifted by the row maximum.
func CrossEntropy(logits []float32, targets []int, V int) (sum float64, count int) {
	for i, t := range targets {
		if t == IgnoreIndex {
			continue
		}
		row := logits[i*V : (i+1)*V]
		sum += kernels.LogSumExp(row) - float64(row[t])
		count++
	}
	return sum, count
}

// ShiftLabels turns per-position labels into per-position targets the way HF
// does: logits at position t predict labels[t+1]; the last position predicts
// nothing.
func ShiftLabels(labels []int) []int {
	t := make([]int, len(labels))
	for i := range t {
		if i+1 < len(labels) {
			t[i] = labels[i+1]
		} else {
			t[i] = IgnoreIndex
		}
	}
	return t
}

// Perplexity is exp of a mean NLL.
func Perplexity(meanNLL float64) float64 { return math.Exp(meanNLL) }
