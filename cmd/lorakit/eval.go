package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/lorakit/lorakit/eval"
	"github.com/lorakit/lorakit/train/data"
)

func newEvalCmd() *cobra.Command {
	var modelPath, dataPath string
	var seqLen int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "eval --model PATH --data FILE.jsonl",
		Short: "Loss, perplexity and token count of a model on a JSONL file",
		Long: `Scores each line on its own: a {"text"} line is <bos> text <eos> with loss on
every predicted token (the eos too); prompt/completion lines score the completion.
Loss = total NLL / predicted tokens; perplexity = exp(loss), token-weighted over the file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if dataPath == "" {
				return fmt.Errorf("--data is required")
			}
			lm, err := loadModel(modelPath)
			if err != nil {
				return err
			}
			res, err := evalFile(lm, dataPath, nil, seqLen)
			if err != nil {
				return err
			}
			return printEval(cmd.OutOrStdout(), res, asJSON)
		},
	}
	cmd.Flags().StringVar(&modelPath, "model", "", "model folder (default: the embedded tiny-brown)")
	cmd.Flags().StringVar(&dataPath, "data", "", "JSONL file to score")
	cmd.Flags().IntVar(&seqLen, "seq-len", 0, "truncate examples to this many tokens (default: max_position_embeddings)")
	cmd.Flags().BoolVar(&asJSON, "json", false, `print one line {"loss":..,"perplexity":..,"tokens":..}`)
	return cmd
}

// evalFile scores a JSONL file, read from disk or given as bytes.
func evalFile(lm *loadedModel, name string, content []byte, seqLen int) (eval.Result, error) {
	var r io.Reader
	if content == nil {
		f, err := os.Open(name)
		if err != nil {
			return eval.Result{}, err
		}
		defer f.Close()
		r = f
	} else {
		r = bytesReader(content)
	}
	eos := -1
	if ids := lm.eosIDs(); len(ids) > 0 {
		eos = ids[0]
		if id, ok := lm.Tok.EOS(); ok {
			eos = id
		}
	}
	exs, err := data.Read(name, r, lm.Tok, data.Specials{BOS: lm.bosID(), EOS: eos})
	if err != nil {
		return eval.Result{}, err
	}
	if seqLen <= 0 {
		seqLen = lm.Model.Config.MaxPositions
	}
	if n := data.Truncate(exs, seqLen); n > 0 {
		slog.Warn("examples truncated", "file", name, "count", n, "seq_len", seqLen)
	}
	return eval.Evaluate(lm.Model, exs, eval.Options{})
}

func printEval(w io.Writer, res eval.Result, asJSON bool) error {
	if asJSON {
		b, _ := json.Marshal(map[string]any{"loss": res.Loss, "perplexity": res.Perplexity, "tokens": res.Tokens})
		_, err := fmt.Fprintf(w, "%s\n", b)
		return err
	}
	_, err := fmt.Fprintf(w, "loss %.6f  perplexity %.4f  tokens %d  examples %d\n", res.Loss, res.Perplexity, res.Tokens, res.Examples)
	return err
}
