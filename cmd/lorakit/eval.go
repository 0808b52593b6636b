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
	var adapters []string
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
			if err := lm.attachAdapters(adapters); err != nil {
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
	cmd.Flags().StringArrayVar(&adapters, "adapter", nil, "PEFT adapter folder applied unmerged (repeat to combine several)")
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
	exs, err := data.Read(name, r, lm.Tok, lm.specials())
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

// specials are the ids the data conventions put around text: <bos> unless the
// tokenizer adds it, and the tokenizer's eos (else the config's first).
func (lm *loadedModel) specials() data.Specials {
	eos := -1
	if ids := lm.eosIDs(); len(ids) > 0 {
		eos = ids[0]
	}
	if id, ok := lm.Tok.EOS(); ok {
		eos = id
	}
	return data.Specials{BOS: lm.bosID(), EOS: eos}
}

// readData reads a JSONL training or validation file and truncates long
// examples to the sequence length, saying so.
func (lm *loadedModel) readData(path string, opts data.Options) ([]data.Example, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	exs, err := data.ReadOptions(path, f, lm.Tok, lm.specials(), opts)
	if err != nil {
		return nil, err
	}
	if n := data.Truncate(exs, opts.SeqLen); n > 0 {
		slog.Warn("examples truncated", "file", path, "count", n, "seq_len", opts.SeqLen)
	}
	return exs, nil
}
