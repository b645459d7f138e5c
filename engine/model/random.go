package model

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// Standard is the diffusion-first fork's standard char-level shape, the
// shape of the shipped models: 6 layers, 6 heads, n_embd 384, block_size
// 1024, vocabulary 67 (65 characters, [MASK], [PAD]), rotary, bidirectional,
// no biases, critic and sampler heads (real neighbour embeddings).
func Standard() Config {
	return Config{Kind: LanguageModel, NLayer: 6, NHead: 6, NEmbd: 384, BlockSize: 1024, VocabSize: 67,
		Attention: Bidirectional, PositionEncoding: Rotary, RopeBase: 10000, LayerNormEps: 1e-5,
		Heads:   &Heads{Critic: true, Sampler: true},
		Sampler: &SamplerConfig{Neighbors: NeighborsEmbeddings, MinNeighborsRatio: 0.01}}
}

// Random builds a language model of cfg with seeded random weights, for
// benchmarks and tests: matrices and biases N(0, std), LayerNorm weights
// 1 + N(0, 0.1) (so that every term of every kernel matters), and a char
// vocabulary of VocabSize-2 placeholder characters, [MASK] and [PAD].
func Random(cfg Config, seed uint64, std float64) (*Model, error) {
	if cfg.Kind != LanguageModel || cfg.VocabSize < 3 {
		return nil, fmt.Errorf("model.Random: want a language model with vocab_size >= 3, got %s with %d", cfg.Kind, cfg.VocabSize)
	}
	mask, pad := cfg.VocabSize-2, cfg.VocabSize-1
	vocab := Vocab{Type: "char", MaskTokenID: &mask, PadTokenID: &pad, BaseVocabSize: cfg.VocabSize - 2}
	for i := 0; i < cfg.VocabSize-2; i++ {
		vocab.Tokens = append(vocab.Tokens, string(rune(0x100+i)))
	}
	vocab.Tokens = append(vocab.Tokens, "[MASK]", "[PAD]")
	m := &Model{Path: fmt.Sprintf("random %dx%d model (seed %d)", cfg.NLayer, cfg.NEmbd, seed), Config: cfg, Vocab: vocab,
		DType: F32, Tensors: map[string]*Tensor{}}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	for _, s := range Expected(&m.Config) {
		t := &Tensor{Shape: s.Shape}
		t.Data = make([]float32, t.Numel())
		isLN := strings.Contains(s.Name, "ln_") || strings.HasPrefix(s.Name, "sampler_head.mlp.2") || strings.HasPrefix(s.Name, "sampler_head.mlp.5")
		for i := range t.Data {
			if isLN && strings.HasSuffix(s.Name, ".weight") {
				t.Data[i] = float32(1 + 0.1*rng.NormFloat64())
			} else {
				t.Data[i] = float32(std * rng.NormFloat64())
			}
		}
		m.Tensors[s.Name] = t
	}
	m.Tensors["lm_head.weight"] = m.Tensors["transformer.wte.weight"]
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("model.Random: %w", err)
	}
	return m, nil
}
