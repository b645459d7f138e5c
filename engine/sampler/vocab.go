package sampler

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/remask/remask/engine/model"
)

// charIDs maps each ordinary character of a char vocabulary (ids below
// base_vocab_size, one rune each) to its id.
func charIDs(v *model.Vocab) map[rune]int32 {
	m := make(map[rune]int32, len(v.Tokens))
	for id, tok := range v.Tokens {
		if id >= v.BaseVocabSize {
			break
		}
		if r, n := utf8.DecodeRuneInString(tok); n == len(tok) && n > 0 {
			m[r] = int32(id)
		}
	}
	return m
}

// EncodeText turns text into ids, one per character. Characters outside the
// vocabulary are an error that lists them, or with unknown == "drop" are
// dropped and listed in the returned slice. field names the option for errors.
func EncodeText(v *model.Vocab, text, unknown, field string) (ids []int32, dropped []rune, err error) {
	ids2 := charIDs(v)
	missing := map[rune]int{}
	for _, r := range text {
		id, ok := ids2[r]
		if !ok {
			missing[r]++
			continue
		}
		ids = append(ids, id)
	}
	if len(missing) == 0 {
		return ids, nil, nil
	}
	keys := sortedKeys(missing)
	if unknown == UnknownDrop {
		return ids, keys, nil
	}
	quoted := make([]string, len(keys))
	for i, r := range keys {
		quoted[i] = fmt.Sprintf("%q", string(r))
	}
	return nil, keys, optErr(field, "characters not in the model's vocabulary: %s; remove them, or set unknown_chars to \"drop\" to leave them out",
		strings.Join(quoted, ", "))
}

// Decode turns ids into text like the reference: the mask id prints as
// [MASK], the pad id as [PAD], other ids as their vocabulary string, and ids
// outside the vocabulary as [UNK].
func Decode(v *model.Vocab, tokens []int32) string {
	var b strings.Builder
	for _, t := range tokens {
		id := int(t)
		switch {
		case v.MaskTokenID != nil && id == *v.MaskTokenID:
			b.WriteString("[MASK]")
		case v.PadTokenID != nil && id == *v.PadTokenID:
			b.WriteString("[PAD]")
		case id >= 0 && id < len(v.Tokens):
			b.WriteString(v.Tokens[id])
		default:
			b.WriteString("[UNK]")
		}
	}
	return b.String()
}
