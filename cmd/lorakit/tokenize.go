package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

func newTokenizeCmd() *cobra.Command {
	var tokPath string
	var addSpecial bool
	cmd := &cobra.Command{
		Use:   "tokenize --tokenizer PATH [--add-special] [TEXT]",
		Short: "Print token ids as a JSON array; with no TEXT, one array per {\"text\": ...} line of stdin",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tok, err := loadTokenizer(tokPath)
			if err != nil {
				return err
			}
			out := bufio.NewWriter(cmd.OutOrStdout())
			defer out.Flush()
			printIDs := func(ids []int) error {
				if ids == nil {
					ids = []int{}
				}
				b, _ := json.Marshal(ids)
				_, err := fmt.Fprintf(out, "%s\n", b)
				return err
			}
			if len(args) == 1 {
				return printIDs(tok.Encode(args[0], addSpecial))
			}
			return eachTextLine(cmd.InOrStdin(), "stdin", func(text string) error {
				return printIDs(tok.Encode(text, addSpecial))
			})
		},
	}
	cmd.Flags().StringVar(&tokPath, "tokenizer", "", "model folder, tokenizer.json or tokenizer.model (default: the embedded tiny-brown)")
	cmd.Flags().BoolVar(&addSpecial, "add-special", false, "add the special tokens the tokenizer's post-processor adds (e.g. <s>)")
	return cmd
}

// eachTextLine calls fn with the "text" field of every JSON line of r.
func eachTextLine(r io.Reader, name string, fn func(string) error) error {
	br := bufio.NewReaderSize(r, 1<<20)
	for line := 1; ; line++ {
		b, err := br.ReadBytes('\n')
		if s := strings.TrimSpace(string(b)); s != "" {
			var rec struct {
				Text *string `json:"text"`
			}
			if jerr := json.Unmarshal([]byte(s), &rec); jerr != nil || rec.Text == nil {
				return fmt.Errorf("%s:%d: want a JSON object with a string field \"text\"", name, line)
			}
			if ferr := fn(*rec.Text); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s:%d: %w", name, line, err)
		}
	}
}
