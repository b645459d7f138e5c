package checkpoint

import (
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/internal/safefile"
)

// Meta is the part of a dataset meta dict (data/<dataset>/meta.pkl, also
// embedded in a checkpoint as config['meta']) that defines a vocabulary
// (sampler-spec 2.5).
type Meta struct {
	// Source says where the meta came from, for messages.
	Source string
	// Dataset is meta['dataset_name'] ("" when absent).
	Dataset string
	// VocabSize is meta['vocab_size'], nil when absent.
	VocabSize *int
	// Itos maps id -> string; nil when the meta has no itos (not a
	// character vocabulary: a BPE dataset, for example).
	Itos map[int]string
	// Stoi maps string -> id; nil when absent.
	Stoi map[string]int
	// Special ids, nil when absent. char_diffusion metas never carry
	// base_vocab_size (spec 2.5); the converter derives it.
	MaskTokenID, PadTokenID, CLSTokenID, BaseVocabSize *int
}

// maxMetaBytes bounds a meta.pkl file (a character vocabulary's is about
// a kilobyte; a 50,000-token one a few megabytes).
const maxMetaBytes = 64 << 20

// ReadMeta reads a meta.pkl file (a plain pickled dict). The path must name
// a regular file of at most 64 MiB.
func ReadMeta(path string) (*Meta, error) {
	data, err := safefile.ReadFile(path, maxMetaBytes)
	if err != nil {
		return nil, fmt.Errorf("read meta: %w", openError(err))
	}
	v, err := unpickle(data, nil, newBudget(Limits{}, int64(len(data))))
	if err != nil {
		return nil, fmt.Errorf("%s: not a readable pickle (%v): pass the meta.pkl of the dataset the model was trained on", path, err)
	}
	nv, err := normalize(v, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	d, ok := nv.(Dict)
	if !ok {
		return nil, fmt.Errorf("%s: the pickle holds %s, want the dataset meta dict (stoi, itos, vocab_size, ...)", path, describe(nv))
	}
	return ParseMeta(path, d)
}

// openError says "open PATH: no such file or directory" for a missing
// file, however safefile found out (it stats before it opens).
func openError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Op == "stat" {
		return &fs.PathError{Op: "open", Path: pe.Path, Err: pe.Err}
	}
	return err
}

// ParseMeta reads the vocabulary fields of a meta dict; source names it in
// messages.
func ParseMeta(source string, d Dict) (*Meta, error) {
	m := &Meta{Source: source}
	var err error
	if s, ok := d["dataset_name"].(string); ok {
		m.Dataset = s
	}
	for _, f := range []struct {
		key string
		dst **int
	}{
		{"vocab_size", &m.VocabSize},
		{"mask_token_id", &m.MaskTokenID},
		{"pad_token_id", &m.PadTokenID},
		{"cls_token_id", &m.CLSTokenID},
		{"base_vocab_size", &m.BaseVocabSize},
	} {
		if *f.dst, err = optInt(d, f.key); err != nil {
			return nil, fmt.Errorf("%s: meta %v", source, err)
		}
	}
	switch itos := d["itos"].(type) {
	case nil:
	case Dict:
		m.Itos = make(map[int]string, len(itos))
		for k, v := range itos {
			id, ok1 := k.(int)
			s, ok2 := v.(string)
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("%s: meta itos maps %s to %s; want int ids to strings", source, describe(k), describe(v))
			}
			m.Itos[id] = s
		}
	case []any:
		m.Itos = make(map[int]string, len(itos))
		for id, v := range itos {
			s, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("%s: meta itos[%d] is %s, want a string", source, id, describe(v))
			}
			m.Itos[id] = s
		}
	default:
		return nil, fmt.Errorf("%s: meta itos is %s, want a dict id -> string", source, describe(itos))
	}
	if stoi, ok := d["stoi"].(Dict); ok {
		m.Stoi = make(map[string]int, len(stoi))
		for k, v := range stoi {
			s, ok1 := k.(string)
			id, ok2 := v.(int)
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("%s: meta stoi maps %s to %s; want strings to int ids", source, describe(k), describe(v))
			}
			m.Stoi[s] = id
		}
	}
	return m, nil
}

// isBPEVocabSize reports the vocabulary sizes of GPT-2's BPE (50257) and
// nanoGPT's padded copy of it (50304).
func isBPEVocabSize(n int) bool { return n == 50257 || n == 50304 }

// specialName is a bracketed token such as "[MASK]".
func specialName(s string) bool {
	return len(s) > 2 && strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]")
}

// vocabIDs are the special ids the converter settled on.
type vocabIDs struct {
	mask, pad, cls *int
}

// buildVocab turns a meta into the remask/1 vocabulary of a model with
// vocabSize ids. args supplies mask/pad ids that the meta lacks.
func buildVocab(meta *Meta, vocabSize int, argMask, argPad *int) (model.Vocab, []string, error) {
	var warnings []string
	src := meta.Source
	if meta.Itos == nil {
		if isBPEVocabSize(vocabSize) {
			return model.Vocab{}, nil, bpeError(vocabSize)
		}
		return model.Vocab{}, nil, fmt.Errorf("%s has no itos (id -> string table), so it is not a character vocabulary (a BPE/tiktoken dataset keeps none): remask/1 supports char-level models only", src)
	}
	if meta.VocabSize != nil && *meta.VocabSize > vocabSize {
		return model.Vocab{}, nil, fmt.Errorf("%s has vocab_size %d but the model has %d ids: this meta belongs to another model; pass the meta.pkl of the dataset the model was trained on", src, *meta.VocabSize, vocabSize)
	}
	ids := make([]int, 0, len(meta.Itos))
	for id := range meta.Itos {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	for _, id := range ids {
		if id < 0 || id >= vocabSize {
			return model.Vocab{}, nil, fmt.Errorf("%s: itos has id %d (%q), outside the model's %d ids: this meta belongs to another model", src, id, meta.Itos[id], vocabSize)
		}
	}
	// Strings for ids the itos lacks: the [SH] judge meta names [CLS] in stoi only.
	fromStoi := map[int]string{}
	for s, id := range meta.Stoi {
		if _, ok := meta.Itos[id]; !ok && id >= 0 && id < vocabSize {
			if prev, dup := fromStoi[id]; !dup || s < prev {
				fromStoi[id] = s
			}
		}
	}
	first := func(vals ...*int) *int {
		for _, v := range vals {
			if v != nil {
				x := *v
				return &x
			}
		}
		return nil
	}
	stoiID := func(s string) *int {
		if id, ok := meta.Stoi[s]; ok {
			return &id
		}
		return nil
	}
	ids2 := vocabIDs{
		mask: first(meta.MaskTokenID, argMask, stoiID("[MASK]")),
		pad:  first(meta.PadTokenID, argPad, stoiID("[PAD]")),
		cls:  first(meta.CLSTokenID, stoiID("[CLS]")),
	}
	for _, d := range []struct {
		name      string
		meta, arg *int
	}{{"mask_token_id", meta.MaskTokenID, argMask}, {"pad_token_id", meta.PadTokenID, argPad}} {
		if d.meta != nil && d.arg != nil && *d.meta != *d.arg {
			warnings = append(warnings, fmt.Sprintf("%s has %s %d but model_args has %d: using %d from the vocabulary", src, d.name, *d.meta, *d.arg, *d.meta))
		}
	}

	tokens := make([]string, vocabSize)
	special := map[int]bool{}
	var unnamed []string
	for _, p := range []*int{ids2.mask, ids2.pad, ids2.cls} {
		if p != nil {
			if *p < 0 || *p >= vocabSize {
				return model.Vocab{}, nil, fmt.Errorf("%s: special id %d is outside the model's %d ids", src, *p, vocabSize)
			}
			special[*p] = true
		}
	}
	for id := 0; id < vocabSize; id++ {
		s, ok := meta.Itos[id]
		switch {
		case ok:
		case fromStoi[id] != "":
			s = fromStoi[id]
		case ids2.mask != nil && id == *ids2.mask:
			s = "[MASK]"
		case ids2.pad != nil && id == *ids2.pad:
			s = "[PAD]"
		case ids2.cls != nil && id == *ids2.cls:
			s = "[CLS]"
		default:
			s = fmt.Sprintf("[UNUSED_%d]", id)
			unnamed = append(unnamed, fmt.Sprint(id))
		}
		tokens[id] = s
		if !ok || specialName(s) {
			special[id] = true
			continue
		}
		if utf8.RuneCountInString(s) != 1 && !special[id] {
			if isBPEVocabSize(vocabSize) {
				return model.Vocab{}, nil, bpeError(vocabSize)
			}
			return model.Vocab{}, nil, fmt.Errorf("%s: token id %d is %q (%d characters), not one character: remask/1 char models need one character per ordinary id; BPE or word-level vocabularies are not supported",
				src, id, s, utf8.RuneCountInString(s))
		}
	}
	if len(unnamed) > 0 {
		warnings = append(warnings, fmt.Sprintf("%s has no string for id %s: named [UNUSED_<id>] and treated as special (never sampled)", src, strings.Join(unnamed, ", ")))
	}
	base := vocabSize
	for id := range special {
		base = min(base, id)
	}
	for id := base; id < vocabSize; id++ {
		if !special[id] {
			return model.Vocab{}, nil, fmt.Errorf("%s: id %d is the ordinary character %q but special ids already start at %d (%s): remask/1 needs the characters first and the special tokens after them",
				src, id, tokens[id], base, tokens[base])
		}
	}
	if meta.BaseVocabSize != nil && *meta.BaseVocabSize != base {
		return model.Vocab{}, nil, fmt.Errorf("%s has base_vocab_size %d, but its first special id is %d (%s): the meta is inconsistent", src, *meta.BaseVocabSize, base, tokens[base])
	}
	if meta.VocabSize != nil && *meta.VocabSize < vocabSize {
		warnings = append(warnings, fmt.Sprintf("%s has vocab_size %d but the model has %d ids: ids %d..%d are special", src, *meta.VocabSize, vocabSize, *meta.VocabSize, vocabSize-1))
	}
	return model.Vocab{
		Type:          "char",
		Tokens:        tokens,
		MaskTokenID:   ids2.mask,
		PadTokenID:    ids2.pad,
		CLSTokenID:    ids2.cls,
		BaseVocabSize: base,
	}, warnings, nil
}

func bpeError(vocabSize int) error {
	return fmt.Errorf("vocab_size %d is GPT-2's BPE vocabulary: remask/1 supports char-level models only (the fork's char_diffusion datasets); a BPE model cannot be converted", vocabSize)
}

// errNoMeta is wrapped by the error for a checkpoint without a vocabulary.
var errNoMeta = errors.New("no vocabulary")

// optInt reads an optional int field of a dict: nil when absent or None.
func optInt(d Dict, key string) (*int, error) {
	v, ok := d[key]
	if !ok || v == nil {
		return nil, nil
	}
	n, ok := v.(int)
	if !ok {
		return nil, fmt.Errorf("%s is %s, want an int", key, describe(v))
	}
	return &n, nil
}
