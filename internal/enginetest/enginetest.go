// Package enginetest is the engine contract's test suite: the checks every
// backend (engine/cpu, engine/gpu) must pass, written once. A backend's
// tests call Golden (its outputs against the PyTorch fixtures of
// testdata/golden) and Errors (the table of bad arguments the contract
// refuses, each with the error message it must give) with the backend
// under test; the random test models live here too so that every backend
// tests the same ones.
//
// It is for tests; it lives outside _test files only so that several
// packages can share it.
package enginetest

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/engine/model"
)

// Config is a tiny architecture for the tests: a bidirectional rotary
// language model, 2 layers, 2 heads, C = 16, block 12, vocabulary 11
// (9 letters, [MASK], [PAD]). Tests change fields for their variants.
func Config() model.Config {
	return model.Config{
		Kind:             model.LanguageModel,
		NLayer:           2,
		NHead:            2,
		NEmbd:            16,
		BlockSize:        12,
		VocabSize:        11,
		Bias:             true,
		Attention:        model.Bidirectional,
		PositionEncoding: model.Rotary,
		RopeBase:         10000,
		LayerNormEps:     1e-5,
	}
}

// RandomModel builds a valid model of cfg with seeded random weights:
// matrices and embeddings N(0, 0.3), LayerNorm weights 1 + N(0, 0.1),
// biases N(0, 0.05). The vocabulary is base characters plus [MASK] and
// [PAD] (the last two ids).
func RandomModel(t testing.TB, cfg model.Config, seed uint64) *model.Model {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	mask, pad := cfg.VocabSize-2, cfg.VocabSize-1
	vocab := model.Vocab{Type: "char", MaskTokenID: &mask, PadTokenID: &pad, BaseVocabSize: cfg.VocabSize - 2}
	for i := 0; i < cfg.VocabSize-2; i++ {
		vocab.Tokens = append(vocab.Tokens, string(rune('A'+i)))
	}
	vocab.Tokens = append(vocab.Tokens, "[MASK]", "[PAD]")
	if cfg.HasSampler() && cfg.Sampler == nil {
		cfg.Sampler = &model.SamplerConfig{Neighbors: model.NeighborsEmbeddings, MinNeighborsRatio: 0.01}
	}
	m := &model.Model{Config: cfg, Vocab: vocab, Tensors: map[string]*model.Tensor{}}
	for _, s := range model.Expected(&m.Config) {
		tn := &model.Tensor{Shape: s.Shape}
		tn.Data = make([]float32, tn.Numel())
		isLN := strings.Contains(s.Name, "ln_") || strings.HasSuffix(s.Name, "mlp.2.weight") || strings.HasSuffix(s.Name, "mlp.5.weight")
		for i := range tn.Data {
			g := rng.NormFloat64()
			switch {
			case strings.HasSuffix(s.Name, ".bias"):
				tn.Data[i] = float32(0.05 * g)
			case isLN:
				tn.Data[i] = float32(1 + 0.1*g)
			case s.Name == "sequence_head.A":
				tn.Data[i] = float32(1 + 0.2*g)
			default:
				tn.Data[i] = float32(0.3 * g)
			}
		}
		m.Tensors[s.Name] = tn
	}
	if cfg.Kind == model.LanguageModel {
		m.Tensors["lm_head.weight"] = m.Tensors["transformer.wte.weight"]
	}
	if err := m.Validate(); err != nil {
		t.Fatalf("test model does not validate: %v", err)
	}
	return m
}

// RandomTokens returns B*T ids in [0, V).
func RandomTokens(B, T, V int, seed uint64) []int32 {
	rng := rand.New(rand.NewPCG(seed, 7))
	ids := make([]int32, B*T)
	for i := range ids {
		ids[i] = int32(rng.IntN(V))
	}
	return ids
}

// Load loads m on be, failing the test on an error, and releases the Net
// when the test ends (Nets with a Close method: the GPU backend's).
func Load(t testing.TB, be engine.Backend, m *model.Model) engine.Net {
	t.Helper()
	n, err := be.Load(t.Context(), m)
	if err != nil {
		t.Fatalf("loading %s on %s: %v", m.Name(), be.Name(), err)
	}
	release(t, n)
	return n
}

// CancelAfter is a context whose Err reports nil for its first OK calls,
// then context.Canceled: it lets a backend start an operation and sees
// it stop at a later check (between layers, in a readback's wait).
type CancelAfter struct {
	context.Context
	OK int
}

// Err implements context.Context.
func (c *CancelAfter) Err() error {
	if c.OK > 0 {
		c.OK--
		return nil
	}
	return context.Canceled
}

func release(t testing.TB, n engine.Net) {
	if c, ok := n.(interface{ Close() }); ok {
		t.Cleanup(c.Close)
	}
}
