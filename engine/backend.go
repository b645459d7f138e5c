// Package engine holds the contract between the sampler and the compute
// backends (the pure-Go CPU reference in engine/cpu, WebGPU in engine/gpu): a Backend
// loads a model file into a Net, and a Net runs the trunk and the heads.
//
// The interface is at the level of the model's own parts (trunk, LM head,
// critic head, sampler head, judge head) so that every sampling mode of
// engine/sampler can be written once, above it.
package engine

import (
	"context"

	"github.com/remask/remask/engine/model"
)

// Backend loads models for one kind of compute device.
type Backend interface {
	// Name says what runs the model, e.g. "cpu" or "webgpu: <adapter>".
	Name() string
	// Load prepares a validated model for this backend (weights uploaded
	// once). A canceled ctx stops it with an error wrapping ctx.Err().
	Load(ctx context.Context, m *model.Model) (Net, error)
}

// Hidden is a backend-owned handle to the trunk output h = ln_f(blocks(embed(tokens))),
// shape (B, T, C). It stays valid until the next Encode on the same Net.
type Hidden interface {
	// Dims returns the batch size and the sequence length.
	Dims() (B, T int)
}

// Net is one model loaded on a backend. Methods that a model kind lacks
// (a critic on a model without a critic head, say) return an error.
// A Net is not safe for concurrent use.
type Net interface {
	Model() *model.Model
	// Encode runs the trunk on tokens, row-major (B, T), T <= block_size.
	Encode(ctx context.Context, tokens []int32, B, T int) (Hidden, error)
	// Logits writes the lm_head output for every position, (B, T, V) for a
	// language model or (B, T, K) for a token classifier.
	Logits(ctx context.Context, h Hidden, dst []float32) error
	// CriticLogits writes the critic head's logit per position, (B, T).
	CriticLogits(ctx context.Context, h Hidden, dst []float32) error
	// SamplerLogits evaluates the sampler head at n positions: pos[i] is the
	// flat index b*T+t into h; left[i] and right[i] are the neighbour token
	// ids whose wte rows form the left and right thirds of the input, or -1
	// for a zero vector. dst is (n, V).
	SamplerLogits(ctx context.Context, h Hidden, pos, left, right []int32, dst []float32) error
	// JudgeEval writes the judge's evaluation sigmoid(A*(w.h[b,0])+B), (B).
	JudgeEval(ctx context.Context, h Hidden, dst []float32) error
}
