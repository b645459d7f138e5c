package model

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode/utf8"
)

// Upper bounds on the sizes a model file may declare. They are far above any
// model remask runs, and keep a corrupted header from asking Expected for
// billions of tensors or from overflowing shape arithmetic (4*C*C fits int64).
const (
	maxLayers     = 4096
	maxEmbd       = 1 << 20
	maxBlockSize  = 1 << 24
	maxVocabSize  = 1 << 24
	maxClasses    = 1 << 24
	calibrationN  = 100 // entries of critic_calibration
	maxListedDiff = 200 // missing/unexpected tensors listed in one error
)

// Validate checks that c describes an architecture remask can run. The
// error names the `model` field (by its JSON name), the value found and
// what is allowed. Reader, writer, converter and backends all call it.
func (c *Config) Validate() error {
	switch c.Kind {
	case LanguageModel, SequenceScorer, TokenClassifier:
	default:
		return fmt.Errorf("model.kind is %q, want %q, %q or %q", c.Kind, LanguageModel, SequenceScorer, TokenClassifier)
	}
	for _, f := range []struct {
		name   string
		v, max int
	}{
		{"n_layer", c.NLayer, maxLayers},
		{"n_head", c.NHead, maxEmbd},
		{"n_embd", c.NEmbd, maxEmbd},
		{"block_size", c.BlockSize, maxBlockSize},
		{"vocab_size", c.VocabSize, maxVocabSize},
	} {
		if f.v < 1 {
			return fmt.Errorf("model.%s is %d, want >= 1", f.name, f.v)
		}
		if f.v > f.max {
			return fmt.Errorf("model.%s is %d, larger than the supported maximum %d", f.name, f.v, f.max)
		}
	}
	if c.NEmbd%c.NHead != 0 {
		return fmt.Errorf("model.n_embd %d is not a multiple of model.n_head %d (each head needs n_embd/n_head features)", c.NEmbd, c.NHead)
	}
	switch c.Attention {
	case Bidirectional, Causal:
	default:
		return fmt.Errorf("model.attention is %q, want %q or %q", c.Attention, Bidirectional, Causal)
	}
	switch c.PositionEncoding {
	case Rotary:
		if c.HeadSize()%2 != 0 {
			return fmt.Errorf("model.position_encoding %q needs an even head size, got n_embd/n_head = %d/%d = %d", Rotary, c.NEmbd, c.NHead, c.HeadSize())
		}
		if !(c.RopeBase > 0) || math.IsInf(c.RopeBase, 0) {
			return fmt.Errorf("model.rope_base is %v, want a finite number > 0 with rotary positions (fork models use 10000)", c.RopeBase)
		}
	case Absolute, NoPos:
		if !(c.RopeBase >= 0) || math.IsInf(c.RopeBase, 0) {
			return fmt.Errorf("model.rope_base is %v, want a finite number >= 0 (it is unused without rotary positions; write 0)", c.RopeBase)
		}
	default:
		return fmt.Errorf("model.position_encoding is %q, want %q, %q or %q", c.PositionEncoding, Rotary, Absolute, NoPos)
	}
	if !(c.LayerNormEps > 0) || math.IsInf(c.LayerNormEps, 0) {
		return fmt.Errorf("model.layer_norm_eps is %v, want a finite number > 0 (fork models use 1e-5)", c.LayerNormEps)
	}
	if c.Heads != nil && c.Kind != LanguageModel {
		return fmt.Errorf("model.heads is set for kind %q; only %q models have critic/sampler heads: remove it", c.Kind, LanguageModel)
	}
	if c.HasSampler() {
		if c.Attention != Bidirectional {
			return fmt.Errorf("model.heads.sampler needs model.attention %q, got %q", Bidirectional, c.Attention)
		}
		if c.Sampler == nil {
			return fmt.Errorf("model.heads.sampler is true but model.sampler is missing: add {\"neighbors\": %q, \"min_neighbors_ratio\": 0.01}", NeighborsZeros)
		}
		switch c.Sampler.Neighbors {
		case NeighborsZeros, NeighborsEmbeddings:
		default:
			return fmt.Errorf("model.sampler.neighbors is %q, want %q (heads trained by the fork) or %q", c.Sampler.Neighbors, NeighborsZeros, NeighborsEmbeddings)
		}
		if r := c.Sampler.MinNeighborsRatio; !(r > 0 && r <= 1) {
			return fmt.Errorf("model.sampler.min_neighbors_ratio is %v, want a number in (0, 1] (the fork uses 0.01)", r)
		}
	} else if c.Sampler != nil {
		return fmt.Errorf("model.sampler is set but the model has no sampler head (model.heads.sampler is false): remove model.sampler")
	}
	if c.CriticCalibration != nil {
		if !c.HasCritic() {
			return fmt.Errorf("model.critic_calibration is set but the model has no critic head (model.heads.critic is false): remove it")
		}
		if len(c.CriticCalibration) != calibrationN {
			return fmt.Errorf("model.critic_calibration has %d entries, want exactly %d", len(c.CriticCalibration), calibrationN)
		}
		for i, v := range c.CriticCalibration {
			if !(v >= 0 && v <= 1) {
				return fmt.Errorf("model.critic_calibration[%d] is %v, want a number in [0, 1]", i, v)
			}
		}
	}
	if c.Kind == TokenClassifier {
		if c.NumTokenClasses < 1 || c.NumTokenClasses > maxClasses {
			return fmt.Errorf("model.num_token_classes is %d, want 1..%d for a %q", c.NumTokenClasses, maxClasses, TokenClassifier)
		}
	} else if c.NumTokenClasses != 0 {
		return fmt.Errorf("model.num_token_classes is %d for kind %q; only %q models have it: remove it", c.NumTokenClasses, c.Kind, TokenClassifier)
	}
	if c.CLSTokenID != nil {
		if id := *c.CLSTokenID; id < 0 || id >= c.VocabSize {
			return fmt.Errorf("model.cls_token_id is %d, want an id in [0, %d) (model.vocab_size %d)", id, c.VocabSize, c.VocabSize)
		}
	}
	return nil
}

// Validate checks the vocabulary against the architecture c (which should
// already be valid). model.cls_token_id and vocab.cls_token_id may differ:
// the fork's judges alias CLS with the language model's PAD (sampler-spec Q9).
func (v *Vocab) Validate(c *Config) error {
	if v.Type != "char" {
		return fmt.Errorf("vocab.type is %q, want %q (the only tokenizer remask/1 knows)", v.Type, "char")
	}
	if len(v.Tokens) != c.VocabSize {
		return fmt.Errorf("vocab.tokens has %d entries, want model.vocab_size = %d (one string per id)", len(v.Tokens), c.VocabSize)
	}
	if v.BaseVocabSize < 1 || v.BaseVocabSize > c.VocabSize {
		return fmt.Errorf("vocab.base_vocab_size is %d, want 1..%d (model.vocab_size)", v.BaseVocabSize, c.VocabSize)
	}
	for id, tok := range v.Tokens[:v.BaseVocabSize] {
		if utf8.RuneCountInString(tok) != 1 {
			return fmt.Errorf("vocab.tokens[%d] is %q; ids below vocab.base_vocab_size %d must be exactly one character", id, tok, v.BaseVocabSize)
		}
		if r, _ := utf8.DecodeRuneInString(tok); !ordinaryRune(r) {
			return fmt.Errorf("vocab.tokens[%d] is the control character %U; an ordinary token may be any character but a control other than tab, line feed and carriage return (docs/model-format.md)", id, r)
		}
	}
	for id, tok := range v.Tokens[v.BaseVocabSize:] {
		id += v.BaseVocabSize
		if tok == "" {
			return fmt.Errorf("vocab.tokens[%d] is empty; a special token needs a name such as [MASK]", id)
		}
		for _, r := range tok {
			if isControl(r) {
				return fmt.Errorf("vocab.tokens[%d] is %q, which holds the control character %U; special tokens are printable names such as [MASK]", id, tok, r)
			}
		}
	}
	first := make(map[string]int, len(v.Tokens))
	for id, tok := range v.Tokens {
		if prev, dup := first[tok]; dup {
			why := "two special tokens share one name"
			switch {
			case id < v.BaseVocabSize:
				why = "one character has two ids"
			case prev < v.BaseVocabSize:
				why = "a special token equals an ordinary character"
			}
			return fmt.Errorf("vocab.tokens[%d] and vocab.tokens[%d] are both %q: %s, so text would encode ambiguously; every token string must be unique", prev, id, tok, why)
		}
		first[tok] = id
	}
	seen := map[int]string{}
	for _, s := range []struct {
		name string
		id   *int
	}{
		{"mask_token_id", v.MaskTokenID},
		{"pad_token_id", v.PadTokenID},
		{"cls_token_id", v.CLSTokenID},
	} {
		if s.id == nil {
			continue
		}
		id := *s.id
		if id < v.BaseVocabSize || id >= c.VocabSize {
			return fmt.Errorf("vocab.%s is %d, want a special id in [%d, %d) (vocab.base_vocab_size..model.vocab_size)", s.name, id, v.BaseVocabSize, c.VocabSize)
		}
		if other, dup := seen[id]; dup {
			return fmt.Errorf("vocab.%s and vocab.%s are both %d; special ids must be distinct", other, s.name, id)
		}
		seen[id] = s.name
	}
	if c.HasSampler() && v.MaskTokenID == nil {
		return fmt.Errorf("model.heads.sampler is true but vocab.mask_token_id is null; the sampler head needs the mask id")
	}
	return nil
}

// Validate checks the whole model: the config, the vocabulary, and that
// Tensors holds exactly the tensors of Expected(&m.Config) with their exact
// shapes and as many values as the shape says. For a language model
// "lm_head.weight" may be present only as the tied copy of
// "transformer.wte.weight" (the same *Tensor, or equal values).
func (m *Model) Validate() error {
	if err := m.Config.Validate(); err != nil {
		return err
	}
	if err := m.Vocab.Validate(&m.Config); err != nil {
		return err
	}
	want := Expected(&m.Config)
	var problems []string
	for _, s := range want {
		t, ok := m.Tensors[s.Name]
		switch {
		case !ok || t == nil:
			problems = append(problems, fmt.Sprintf("missing tensor %s %v", s.Name, s.Shape))
		case !slices.Equal(t.Shape, s.Shape):
			problems = append(problems, fmt.Sprintf("tensor %s: shape %v, want %v", s.Name, t.Shape, s.Shape))
		case len(t.Data) != t.Numel():
			problems = append(problems, fmt.Sprintf("tensor %s: %d values, want %d for shape %v", s.Name, len(t.Data), t.Numel(), t.Shape))
		}
	}
	expected := make(map[string]bool, len(want))
	for _, s := range want {
		expected[s.Name] = true
	}
	for _, name := range sortedKeys(m.Tensors) {
		if expected[name] {
			continue
		}
		if name == "lm_head.weight" && m.Config.Kind == LanguageModel {
			if err := checkTiedHead(m.Tensors[name], m.Tensors["transformer.wte.weight"]); err != nil {
				problems = append(problems, err.Error())
			}
			continue
		}
		problems = append(problems, fmt.Sprintf("unexpected tensor %s", name))
	}
	if len(problems) > 0 {
		return fmt.Errorf("tensors do not match the %s architecture of model: %s", m.Config.Kind, strings.Join(problems, "; "))
	}
	return nil
}

// checkTiedHead accepts lm_head only as a tie to wte: the same tensor, or a
// bitwise-equal copy. remask supports tied language-model heads only.
func checkTiedHead(head, wte *Tensor) error {
	if head == wte {
		return nil
	}
	if head == nil || wte == nil || !slices.Equal(head.Shape, wte.Shape) || len(head.Data) != len(wte.Data) {
		return fmt.Errorf("tensor lm_head.weight is not tied to transformer.wte.weight (remask supports tied language-model heads only)")
	}
	for i := range head.Data {
		if math.Float32bits(head.Data[i]) != math.Float32bits(wte.Data[i]) {
			return fmt.Errorf("tensor lm_head.weight differs from transformer.wte.weight at element %d (%v vs %v); remask supports tied language-model heads only", i, head.Data[i], wte.Data[i])
		}
	}
	return nil
}

// isControl reports whether r is a control character: C0 (U+0000-U+001F),
// DEL (U+007F) or C1 (U+0080-U+009F).
func isControl(r rune) bool { return r < 0x20 || r >= 0x7f && r <= 0x9f }

// ordinaryRune reports whether r may be an ordinary (one-character) token:
// any character but a control, except the three controls of plain text
// files, tab, line feed and carriage return ('\n' is a token of every
// char-level Shakespeare model). docs/model-format.md states the rule.
func ordinaryRune(r rune) bool { return !isControl(r) || r == '\t' || r == '\n' || r == '\r' }

// sortedKeys returns the names of a tensor map in a stable order for messages.
func sortedKeys(m map[string]*Tensor) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
