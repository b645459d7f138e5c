// Package model is the remask/1 model file: a single .safetensors file that
// carries the weights, the architecture, the vocabulary and the provenance of
// one model (docs/model-format.md is the normative contract).
//
// This file holds the typed form of the `__metadata__` fields and the list of
// tensors an architecture needs (Expected), which the reader, the writer, the
// converter and the backends all share.
package model

import "fmt"

// Format is the value of the `format` metadata key this package reads and writes.
const Format = "remask/1"

// Kind is what a model computes.
type Kind string

const (
	// LanguageModel predicts a token per position (LM head, optional critic and sampler heads).
	LanguageModel Kind = "language_model"
	// SequenceScorer is the judge: one score per sequence from position 0.
	SequenceScorer Kind = "sequence_scorer"
	// TokenClassifier gives K class logits per position (an external remasking model).
	TokenClassifier Kind = "token_classifier"
)

// Attention masks.
const (
	Bidirectional = "bidirectional"
	Causal        = "causal"
)

// Position encodings.
const (
	Rotary   = "rotary"
	Absolute = "absolute"
	NoPos    = "none"
)

// Sampler neighbour modes (model.sampler.neighbors).
const (
	NeighborsZeros      = "zeros"
	NeighborsEmbeddings = "embeddings"
)

// Heads says which optional heads a language model has.
type Heads struct {
	Critic  bool `json:"critic"`
	Sampler bool `json:"sampler"`
}

// SamplerConfig configures the sampler head.
type SamplerConfig struct {
	// Neighbors is "zeros" for heads trained by the fork (its neighbour
	// embeddings were always zero, sampler-spec Q2) or "embeddings" for heads
	// trained with real neighbours.
	Neighbors string `json:"neighbors"`
	// MinNeighborsRatio is the wavefront bootstrap fraction.
	MinNeighborsRatio float64 `json:"min_neighbors_ratio"`
}

// Config is the `model` metadata object.
type Config struct {
	Kind             Kind           `json:"kind"`
	NLayer           int            `json:"n_layer"`
	NHead            int            `json:"n_head"`
	NEmbd            int            `json:"n_embd"`
	BlockSize        int            `json:"block_size"`
	VocabSize        int            `json:"vocab_size"`
	Bias             bool           `json:"bias"`
	Attention        string         `json:"attention"`
	PositionEncoding string         `json:"position_encoding"`
	RopeBase         float64        `json:"rope_base"`
	LayerNormEps     float64        `json:"layer_norm_eps"`
	Heads            *Heads         `json:"heads,omitempty"`
	Sampler          *SamplerConfig `json:"sampler,omitempty"`
	// CriticCalibration is the optional [D7] calibration table (100 numbers).
	CriticCalibration []float64 `json:"critic_calibration,omitempty"`
	NumTokenClasses   int       `json:"num_token_classes,omitempty"`
	// CLSTokenID is the id whose embedding is replaced by cls_embedding.
	CLSTokenID *int `json:"cls_token_id"`
}

// HasCritic reports whether a language model has a critic head.
func (c *Config) HasCritic() bool { return c.Kind == LanguageModel && c.Heads != nil && c.Heads.Critic }

// HasSampler reports whether a language model has a sampler head.
func (c *Config) HasSampler() bool {
	return c.Kind == LanguageModel && c.Heads != nil && c.Heads.Sampler
}

// HeadSize is n_embd / n_head.
func (c *Config) HeadSize() int { return c.NEmbd / c.NHead }

// OutputSize is the width of the per-position output of lm_head: the
// vocabulary for a language model, the class count for a token classifier,
// 0 for a judge.
func (c *Config) OutputSize() int {
	switch c.Kind {
	case LanguageModel:
		return c.VocabSize
	case TokenClassifier:
		return c.NumTokenClasses
	}
	return 0
}

// Vocab is the `vocab` metadata object.
type Vocab struct {
	Type          string   `json:"type"`
	Tokens        []string `json:"tokens"`
	MaskTokenID   *int     `json:"mask_token_id"`
	PadTokenID    *int     `json:"pad_token_id"`
	CLSTokenID    *int     `json:"cls_token_id"`
	BaseVocabSize int      `json:"base_vocab_size"`
}

// Source is the `source` metadata object: where the weights came from.
type Source struct {
	ConvertedFrom string `json:"converted_from,omitempty"`
	ForkFamily    string `json:"fork_family,omitempty"`
	IterNum       *int   `json:"iter_num,omitempty"`
	Trainer       string `json:"trainer,omitempty"`
	Dataset       string `json:"dataset,omitempty"`
	Created       string `json:"created,omitempty"`
}

// TensorSpec is a tensor an architecture needs, with its exact shape.
type TensorSpec struct {
	Name  string
	Shape []int
}

// Expected lists every tensor the architecture in c needs, in a stable
// order, with lm_head.weight listed only when it is not tied to
// transformer.wte.weight (language models tie it; the reader ties it back).
// It is the single source of truth for validation, writing and conversion.
func Expected(c *Config) []TensorSpec {
	C, V, L := c.NEmbd, c.VocabSize, c.NLayer
	var s []TensorSpec
	add := func(name string, shape ...int) { s = append(s, TensorSpec{name, shape}) }
	addLN := func(prefix string) {
		add(prefix+".weight", C)
		if c.Bias {
			add(prefix+".bias", C)
		}
	}
	addLinear := func(prefix string, out, in int, bias bool) {
		add(prefix+".weight", out, in)
		if bias {
			add(prefix+".bias", out)
		}
	}
	add("transformer.wte.weight", V, C)
	if c.PositionEncoding == Absolute {
		add("transformer.wpe.weight", c.BlockSize, C)
	}
	for i := 0; i < L; i++ {
		p := fmt.Sprintf("transformer.h.%d.", i)
		addLN(p + "ln_1")
		addLinear(p+"attn.c_attn", 3*C, C, c.Bias)
		addLinear(p+"attn.c_proj", C, C, c.Bias)
		addLN(p + "ln_2")
		addLinear(p+"mlp.c_fc", 4*C, C, c.Bias)
		addLinear(p+"mlp.c_proj", C, 4*C, c.Bias)
	}
	addLN("transformer.ln_f")
	if c.CLSTokenID != nil {
		add("cls_embedding", C)
	}
	switch c.Kind {
	case LanguageModel:
		// lm_head.weight is tied to transformer.wte.weight and not stored.
		if c.HasCritic() {
			add("critic_head.weight", 1, C)
		}
		if c.HasSampler() {
			addLinear("sampler_head.mlp.0", C, 3*C, c.Bias)
			addLN("sampler_head.mlp.2")
			addLinear("sampler_head.mlp.3", C, C, c.Bias)
			addLN("sampler_head.mlp.5")
			add("sampler_head.output_head.weight", V, C)
		}
	case TokenClassifier:
		add("lm_head.weight", c.NumTokenClasses, C)
	case SequenceScorer:
		add("sequence_head.base_predictor.weight", 1, C)
		add("sequence_head.A", 1)
		add("sequence_head.B", 1)
		add("sequence_head.temperature", 1)
	}
	return s
}
