package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/lorakit/lorakit/format/safetensors"
	"github.com/lorakit/lorakit/model"
	"github.com/lorakit/lorakit/models"
)

func newInspectCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "inspect PATH",
		Short: "Summarise a model folder or a safetensors file: architecture, shapes, dtypes, parameters, bytes",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := models.DefaultName
			if len(args) == 1 {
				path = args[0]
			}
			return inspect(cmd.OutOrStdout(), path, all)
		},
	}
	cmd.Flags().BoolVar(&all, "tensors", false, "list every tensor")
	return cmd
}

func inspect(w io.Writer, path string, all bool) error {
	var set *safetensors.Set
	var src model.Source
	if st, err := os.Stat(path); err == nil && !st.IsDir() && filepath.Ext(path) == ".safetensors" {
		f, err := safetensors.Open(path)
		if err != nil {
			return err
		}
		if set, err = safetensors.NewSet(f); err != nil {
			return err
		}
		fmt.Fprintf(w, "file          %s\n", path)
	} else {
		if src, err = resolveSource(path); err != nil {
			return err
		}
		if set, err = src.Weights(); err != nil {
			return err
		}
		fmt.Fprintf(w, "model         %s\n", src.Name())
	}
	defer set.Close()
	if src != nil {
		c, err := model.ReadConfig(src)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "architecture  %s (model_type %s)\n", firstOr(c.Architectures, "?"), c.ModelType)
		fmt.Fprintf(w, "shape         hidden %d, layers %d, heads %d (kv %d, head_dim %d), intermediate %d, vocab %d\n",
			c.HiddenSize, c.NumLayers, c.NumHeads, c.NumKVHeads, c.HeadDim, c.IntermediateSize, c.VocabSize)
		fmt.Fprintf(w, "positions     %d, rope_theta %g, rms_norm_eps %g, tied embeddings %v\n", c.MaxPositions, c.RopeTheta, c.RMSNormEps, c.TieEmbeddings)
		if c.RopeScaling != nil {
			fmt.Fprintf(w, "rope_scaling  %+v\n", *c.RopeScaling)
		}
		if c.AttentionBias || c.QKNorm || c.SlidingWindow > 0 {
			fmt.Fprintf(w, "extras        qkv bias %v, qk norm %v, sliding window %d\n", c.AttentionBias, c.QKNorm, c.SlidingWindow)
		}
	}
	type agg struct{ tensors, params, bytes int }
	byType := map[string]*agg{}
	var total agg
	names := set.Names()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, n := range names {
		t, _ := set.Tensor(n)
		a := byType[string(t.DType)]
		if a == nil {
			a = &agg{}
			byType[string(t.DType)] = a
		}
		ne := t.NumElements()
		a.tensors++
		a.params += ne
		a.bytes += len(t.Data)
		total.tensors++
		total.params += ne
		total.bytes += len(t.Data)
		if all {
			fmt.Fprintf(tw, "  %s\t%s\t%v\n", n, t.DType, t.Shape)
		}
	}
	tw.Flush()
	types := make([]string, 0, len(byType))
	for k := range byType {
		types = append(types, k)
	}
	sort.Strings(types)
	for _, k := range types {
		a := byType[k]
		fmt.Fprintf(w, "dtype %-7s %d tensors, %d parameters, %s\n", k, a.tensors, a.params, humanBytes(a.bytes))
	}
	fmt.Fprintf(w, "total         %d tensors, %d parameters (%.2fM), %s\n", total.tensors, total.params, float64(total.params)/1e6, humanBytes(total.bytes))
	return nil
}

func firstOr(xs []string, def string) string {
	if len(xs) > 0 {
		return xs[0]
	}
	return def
}

func humanBytes(n int) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
