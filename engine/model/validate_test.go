package model

import (
	"math"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	lm := testConfigs()[0].cfg    // rotary, bidirectional, critic + sampler heads, calibration
	judge := testConfigs()[4].cfg // sequence scorer with cls_token_id
	cls := testConfigs()[5].cfg   // token classifier
	for _, c := range []struct {
		name string
		base Config
		edit func(c *Config)
		want string // "" means valid
	}{
		{"lm valid", lm, func(c *Config) {}, ""},
		{"judge valid", judge, func(c *Config) {}, ""},
		{"classifier valid", cls, func(c *Config) {}, ""},
		{"ratio 1 allowed", lm, func(c *Config) { c.Sampler.MinNeighborsRatio = 1 }, ""},
		{"calibration bounds allowed", lm, func(c *Config) { c.CriticCalibration[0], c.CriticCalibration[99] = 0, 1 }, ""},
		{"no heads object", lm, func(c *Config) { c.Heads, c.Sampler, c.CriticCalibration = nil, nil, nil }, ""},
		{"cls id on a language model ([D7])", lm, func(c *Config) { c.CLSTokenID = intp(0) }, ""},

		{"kind", lm, func(c *Config) { c.Kind = "judge" }, `model.kind is "judge", want "language_model", "sequence_scorer" or "token_classifier"`},
		{"empty kind", lm, func(c *Config) { c.Kind = "" }, `model.kind is ""`},
		{"n_layer 0", lm, func(c *Config) { c.NLayer = 0 }, "model.n_layer is 0, want >= 1"},
		{"n_head 0", lm, func(c *Config) { c.NHead = 0 }, "model.n_head is 0, want >= 1"},
		{"n_embd -8", lm, func(c *Config) { c.NEmbd = -8 }, "model.n_embd is -8, want >= 1"},
		{"block_size 0", lm, func(c *Config) { c.BlockSize = 0 }, "model.block_size is 0, want >= 1"},
		{"vocab_size 0", lm, func(c *Config) { c.VocabSize = 0 }, "model.vocab_size is 0, want >= 1"},
		{"n_layer absurd", lm, func(c *Config) { c.NLayer = 1 << 30 }, "model.n_layer is 1073741824, larger than the supported maximum 4096"},
		{"n_embd absurd", lm, func(c *Config) { c.NEmbd, c.NHead = 1<<40, 1 }, "model.n_embd is 1099511627776, larger than the supported maximum"},
		{"head size not whole", lm, func(c *Config) { c.NHead = 3 }, "model.n_embd 8 is not a multiple of model.n_head 3"},
		{"rotary odd head size", lm, func(c *Config) { c.NEmbd, c.NHead = 6, 2 }, `model.position_encoding "rotary" needs an even head size, got n_embd/n_head = 6/2 = 3`},
		{"odd head size fine without rotary", lm, func(c *Config) { c.NEmbd, c.NHead, c.PositionEncoding, c.RopeBase = 6, 2, Absolute, 0 }, ""},
		{"attention", lm, func(c *Config) { c.Attention = "full" }, `model.attention is "full", want "bidirectional" or "causal"`},
		{"position encoding", lm, func(c *Config) { c.PositionEncoding = "alibi" }, `model.position_encoding is "alibi", want "rotary", "absolute" or "none"`},
		{"rope_base 0", lm, func(c *Config) { c.RopeBase = 0 }, "model.rope_base is 0, want a finite number > 0 with rotary positions"},
		{"rope_base NaN", lm, func(c *Config) { c.RopeBase = math.NaN() }, "model.rope_base is NaN"},
		{"rope_base negative without rotary", cls, func(c *Config) { c.RopeBase = -1 }, "model.rope_base is -1, want a finite number >= 0"},
		{"layer_norm_eps 0", lm, func(c *Config) { c.LayerNormEps = 0 }, "model.layer_norm_eps is 0, want a finite number > 0"},
		{"layer_norm_eps inf", lm, func(c *Config) { c.LayerNormEps = math.Inf(1) }, "model.layer_norm_eps is +Inf"},
		{"heads on a judge", judge, func(c *Config) { c.Heads = &Heads{Critic: true} }, `model.heads is set for kind "sequence_scorer"`},
		{"sampler head needs bidirectional", lm, func(c *Config) { c.Attention = Causal }, `model.heads.sampler needs model.attention "bidirectional", got "causal"`},
		{"sampler head needs a sampler config", lm, func(c *Config) { c.Sampler = nil }, "model.heads.sampler is true but model.sampler is missing"},
		{"neighbors", lm, func(c *Config) { c.Sampler.Neighbors = "random" }, `model.sampler.neighbors is "random", want "zeros"`},
		{"ratio 0", lm, func(c *Config) { c.Sampler.MinNeighborsRatio = 0 }, "model.sampler.min_neighbors_ratio is 0, want a number in (0, 1]"},
		{"ratio 1.5", lm, func(c *Config) { c.Sampler.MinNeighborsRatio = 1.5 }, "model.sampler.min_neighbors_ratio is 1.5"},
		{"ratio NaN", lm, func(c *Config) { c.Sampler.MinNeighborsRatio = math.NaN() }, "model.sampler.min_neighbors_ratio is NaN"},
		{"sampler config without sampler head", lm, func(c *Config) { c.Heads.Sampler = false }, "model.sampler is set but the model has no sampler head"},
		{"calibration of 99", lm, func(c *Config) { c.CriticCalibration = c.CriticCalibration[:99] }, "model.critic_calibration has 99 entries, want exactly 100"},
		{"empty calibration", lm, func(c *Config) { c.CriticCalibration = []float64{} }, "model.critic_calibration has 0 entries"},
		{"calibration above 1", lm, func(c *Config) { c.CriticCalibration[42] = 1.5 }, "model.critic_calibration[42] is 1.5, want a number in [0, 1]"},
		{"calibration NaN", lm, func(c *Config) { c.CriticCalibration[7] = math.NaN() }, "model.critic_calibration[7] is NaN"},
		{"calibration without critic", lm, func(c *Config) { c.Heads.Critic = false }, "model.critic_calibration is set but the model has no critic head"},
		{"classifier without classes", cls, func(c *Config) { c.NumTokenClasses = 0 }, `model.num_token_classes is 0, want 1..16777216 for a "token_classifier"`},
		{"classes on a language model", lm, func(c *Config) { c.NumTokenClasses = 2 }, `model.num_token_classes is 2 for kind "language_model"`},
		{"cls id negative", judge, func(c *Config) { c.CLSTokenID = intp(-1) }, "model.cls_token_id is -1, want an id in [0, 13)"},
		{"cls id = vocab_size", judge, func(c *Config) { c.CLSTokenID = intp(13) }, "model.cls_token_id is 13, want an id in [0, 13)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := cloneConfig(c.base)
			c.edit(&cfg)
			checkErr(t, cfg.Validate(), c.want)
		})
	}
}

func TestVocabValidate(t *testing.T) {
	lm := testConfigs()[0].cfg    // vocab_size 12, sampler head
	judge := testConfigs()[4].cfg // vocab_size 13, model CLS 11 = vocab PAD
	for _, c := range []struct {
		name string
		cfg  Config
		edit func(v *Vocab)
		want string
	}{
		{"lm valid", lm, func(v *Vocab) {}, ""},
		{"judge: model CLS may alias vocab PAD", judge, func(v *Vocab) {}, ""},
		{"no special ids without a sampler head", judge, func(v *Vocab) { v.MaskTokenID, v.PadTokenID, v.CLSTokenID = nil, nil, nil }, ""},
		{"base = vocab size", judge, func(v *Vocab) {
			v.BaseVocabSize, v.MaskTokenID, v.PadTokenID, v.CLSTokenID = 13, nil, nil, nil
			v.Tokens[10], v.Tokens[11], v.Tokens[12] = "x", "y", "z"
		}, ""},

		{"type", lm, func(v *Vocab) { v.Type = "bpe" }, `vocab.type is "bpe", want "char"`},
		{"too few tokens", lm, func(v *Vocab) { v.Tokens = v.Tokens[:11] }, "vocab.tokens has 11 entries, want model.vocab_size = 12"},
		{"too many tokens", lm, func(v *Vocab) { v.Tokens = append(v.Tokens, "[X]") }, "vocab.tokens has 13 entries, want model.vocab_size = 12"},
		{"base 0", lm, func(v *Vocab) { v.BaseVocabSize = 0 }, "vocab.base_vocab_size is 0, want 1..12"},
		{"base above vocab", lm, func(v *Vocab) { v.BaseVocabSize = 13 }, "vocab.base_vocab_size is 13, want 1..12"},
		{"ordinary token of two characters", lm, func(v *Vocab) { v.Tokens[3] = "ab" }, `vocab.tokens[3] is "ab"; ids below vocab.base_vocab_size 10 must be exactly one character`},
		{"empty ordinary token", lm, func(v *Vocab) { v.Tokens[0] = "" }, `vocab.tokens[0] is ""`},
		{"mask id out of range", lm, func(v *Vocab) { v.MaskTokenID = intp(12) }, "vocab.mask_token_id is 12, want a special id in [10, 12)"},
		{"pad id negative", lm, func(v *Vocab) { v.PadTokenID = intp(-1) }, "vocab.pad_token_id is -1"},
		{"special id below base", lm, func(v *Vocab) { v.PadTokenID = intp(4) }, "vocab.pad_token_id is 4, want a special id in [10, 12)"},
		{"cls id out of range", judge, func(v *Vocab) { v.CLSTokenID = intp(13) }, "vocab.cls_token_id is 13"},
		{"special ids not distinct", lm, func(v *Vocab) { v.PadTokenID = intp(10) }, "vocab.mask_token_id and vocab.pad_token_id are both 10; special ids must be distinct"},
		{"sampler head needs a mask id", lm, func(v *Vocab) { v.MaskTokenID = nil }, "vocab.mask_token_id is null"},
		// Ambiguous vocabularies (issue 11, defect 13).
		{"line feed, tab, carriage return are characters", lm, func(v *Vocab) { v.Tokens[1], v.Tokens[2] = "\t", "\r" }, ""},
		{"two ids for one character", lm, func(v *Vocab) { v.Tokens[5] = v.Tokens[4] }, `vocab.tokens[4] and vocab.tokens[5] are both ",": one character has two ids, so text would encode ambiguously`},
		{"special equal to a character", lm, func(v *Vocab) { v.Tokens[11] = "a" }, `vocab.tokens[9] and vocab.tokens[11] are both "a": a special token equals an ordinary character`},
		{"two specials with one name", lm, func(v *Vocab) { v.Tokens[11] = "[MASK]" }, `vocab.tokens[10] and vocab.tokens[11] are both "[MASK]": two special tokens share one name`},
		{"empty special", lm, func(v *Vocab) { v.Tokens[10] = "" }, "vocab.tokens[10] is empty; a special token needs a name"},
		{"escape as a character", lm, func(v *Vocab) { v.Tokens[3] = "\x1b" }, "vocab.tokens[3] is the control character U+001B; an ordinary token may be any character but a control other than tab, line feed and carriage return"},
		{"NUL as a character", lm, func(v *Vocab) { v.Tokens[3] = "\x00" }, "vocab.tokens[3] is the control character U+0000"},
		{"DEL as a character", lm, func(v *Vocab) { v.Tokens[3] = "\x7f" }, "vocab.tokens[3] is the control character U+007F"},
		{"C1 CSI as a character", lm, func(v *Vocab) { v.Tokens[3] = "\u009b" }, "vocab.tokens[3] is the control character U+009B"},
		{"control in a special", lm, func(v *Vocab) { v.Tokens[10] = "[MASK]\x1b[2J" }, `vocab.tokens[10] is "[MASK]\x1b[2J", which holds the control character U+001B`},
		{"line feed in a special", lm, func(v *Vocab) { v.Tokens[10] = "[MA\nSK]" }, "which holds the control character U+000A"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := cloneConfig(c.cfg)
			v := testVocab(cfg.VocabSize, cfg.VocabSize%2 == 1)
			c.edit(&v)
			checkErr(t, v.Validate(&cfg), c.want)
		})
	}
}

// cloneConfig deep-copies the pointer and slice fields of c.
func cloneConfig(c Config) Config {
	if c.Heads != nil {
		h := *c.Heads
		c.Heads = &h
	}
	if c.Sampler != nil {
		s := *c.Sampler
		c.Sampler = &s
	}
	if c.CLSTokenID != nil {
		c.CLSTokenID = intp(*c.CLSTokenID)
	}
	c.CriticCalibration = append([]float64(nil), c.CriticCalibration...)
	if len(c.CriticCalibration) == 0 {
		c.CriticCalibration = nil
	}
	return c
}

// checkErr wants no error when want is "", else an error containing want.
func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Errorf("no error, want one containing %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Errorf("error %q\ndoes not contain %q", err, want)
	}
}
