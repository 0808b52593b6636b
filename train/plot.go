package train

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// PlotLoss draws train and validation loss against the step from a
// metrics.jsonl file into a PNG.
func PlotLoss(metricsPath, pngPath string) error {
	f, err := os.Open(metricsPath)
	if err != nil {
		return err
	}
	defer f.Close()
	var trainPts, valPts plotter.XYs
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m Metric
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return fmt.Errorf("%s: %w", metricsPath, err)
		}
		trainPts = append(trainPts, plotter.XY{X: float64(m.Step), Y: m.Loss})
		if m.ValLoss != nil {
			valPts = append(valPts, plotter.XY{X: float64(m.Step), Y: *m.ValLoss})
		}
	}
	if len(trainPts) == 0 {
		return fmt.Errorf("%s: no metrics", metricsPath)
	}
	p := plot.New()
	p.Title.Text = "LoRA training"
	p.X.Label.Text = "step"
	p.Y.Label.Text = "loss (nats/token)"
	args := []any{"train", trainPts}
	if len(valPts) > 0 {
		args = append(args, "validation", valPts)
	}
	if err := plotutil.AddLinePoints(p, args...); err != nil {
		return err
	}
	tmp := strings.TrimSuffix(pngPath, ".png") + ".tmp.png"
	if err := p.Save(8*vg.Inch, 5*vg.Inch, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, pngPath)
}
