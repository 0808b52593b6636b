package train

import (
	"fmt"
	"io"
	"time"
)

// progress draws a one-line bar: step, loss, learning rate, tokens/s, ETA.
type progress struct {
	w            io.Writer
	total, start int
}

func newProgress(w io.Writer, total, start int) *progress {
	return &progress{w: w, total: total, start: start}
}

func (p *progress) update(m Metric, elapsed time.Duration, tokens int) {
	if p.w == nil {
		return
	}
	done := m.Step - p.start
	eta := time.Duration(float64(elapsed) / float64(done) * float64(p.total-m.Step)).Round(time.Second)
	width := 24
	fill := width * m.Step / p.total
	bar := make([]byte, width)
	for i := range bar {
		bar[i] = '.'
		if i < fill {
			bar[i] = '#'
		}
	}
	fmt.Fprintf(p.w, "\r[%s] step %d/%d  loss %.4f  lr %.2e  %.0f tok/s  ETA %v   ",
		bar, m.Step, p.total, m.Loss, m.LR, float64(tokens)/elapsed.Seconds(), eta)
	if m.ValLoss != nil {
		fmt.Fprintf(p.w, "\n  step %d: val loss %.4f  val perplexity %.3f\n", m.Step, *m.ValLoss, *m.ValPPL)
	}
}

func (p *progress) done() {
	if p.w != nil {
		fmt.Fprintln(p.w)
	}
}
