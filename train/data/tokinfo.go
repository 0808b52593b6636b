package data

// Optional methods of a Tokenizer (tokenizer.Tokenizer has them all) that
// chat templates need: the text of <bos> and <eos> for the template's
// bos_token/eos_token, its own chat_template, and the special tokens, among
// which the end-of-turn markers are recognised (messages.go).
type (
	idToTokener interface{ IDToToken(id int) (string, bool) }
	bosEOSer    interface {
		BOS() (int, bool)
		EOS() (int, bool)
	}
	chatTemplater interface{ ChatTemplate() string }
	specialer     interface {
		VocabSize() int
		IsSpecial(id int) bool
	}
)

// tokInfo is what a reader knows of the tokenizer's special tokens.
type tokInfo struct {
	bosText, eosText string   // the template's bos_token, eos_token; "" when unknown
	addedBOS         string   // text of the <bos> the conventions put first
	specials         []string // text of every special token
}

// tokenInfo gathers tokInfo once per reader.
func (rd *reader) tokenInfo() *tokInfo {
	if rd.infoDone {
		return rd.info
	}
	rd.infoDone = true
	info := &tokInfo{}
	text := func(id int) string {
		if t, ok := rd.tok.(idToTokener); ok && id >= 0 {
			if s, ok := t.IDToToken(id); ok {
				return s
			}
		}
		return ""
	}
	// transformers passes tokenizer_config.json's bos_token/eos_token to the
	// template, and leaves out one that is None (Qwen 3's bos_token). A
	// tokenizer without these methods gets the model's ids; eos_token also
	// falls back to the model's eos.
	bos, eos := rd.sp.BOS, rd.sp.EOS
	if t, ok := rd.tok.(bosEOSer); ok {
		bos, eos = -1, -1
		if id, ok := t.BOS(); ok {
			bos = id
		}
		if id, ok := t.EOS(); ok {
			eos = id
		} else {
			eos = rd.sp.EOS
		}
	}
	info.bosText, info.eosText = text(bos), text(eos)
	if rd.sp.BOS >= 0 {
		info.addedBOS = text(rd.sp.BOS)
	} else if rd.tok.AddsBOS() {
		info.addedBOS = info.bosText
	}
	if t, ok := rd.tok.(specialer); ok {
		for id := 0; id < t.VocabSize(); id++ {
			if t.IsSpecial(id) {
				if s := text(id); s != "" {
					info.specials = append(info.specials, s)
				}
			}
		}
	}
	for _, s := range []string{info.bosText, info.eosText, text(rd.sp.EOS)} {
		if s != "" {
			info.specials = append(info.specials, s)
		}
	}
	rd.info = info
	return info
}

// templateVars are the variables a chat template gets besides messages and
// add_generation_prompt; an unknown token is left undefined, as
// transformers leaves out special tokens that are None.
func (info *tokInfo) templateVars() map[string]any {
	v := map[string]any{}
	if info.bosText != "" {
		v["bos_token"] = info.bosText
	}
	if info.eosText != "" {
		v["eos_token"] = info.eosText
	}
	return v
}
