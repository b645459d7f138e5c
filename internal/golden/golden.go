// Package golden reads the PyTorch-made fixtures of testdata/golden (written
// by tools/train/make_fixtures.py) and testdata/fork (fork_checkpoints.py):
// token inputs and the float64 outputs of our PyTorch model, which every
// backend's tests compare against. It is for tests; it lives outside _test
// files only so that several packages can share it.
package golden

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/engine/model"
)

// File is one fixture (the JSON schema of make_fixtures.py).
type File struct {
	Model        string        `json:"model"`
	Kind         model.Kind    `json:"kind"`
	Tokens       [][]int32     `json:"tokens"`        // (B, T)
	Logits       [][][]float64 `json:"logits"`        // (B, T, V or K)
	CriticLogits [][]float64   `json:"critic_logits"` // (B, T)
	Sampler      *struct {
		Pos    []int32     `json:"pos"`   // flat b*T+t
		Left   []int32     `json:"left"`  // neighbour id or -1
		Right  []int32     `json:"right"` // neighbour id or -1
		Logits [][]float64 `json:"logits"`
	} `json:"sampler"`
	Evaluation []float64 `json:"evaluation"` // (B), judges
}

// Read parses a fixture file.
func Read(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f File
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(f.Tokens) == 0 || len(f.Tokens[0]) == 0 {
		return nil, fmt.Errorf("%s: no token rows", path)
	}
	for _, r := range f.Tokens {
		if len(r) != len(f.Tokens[0]) {
			return nil, fmt.Errorf("%s: token rows of different lengths %d and %d", path, len(f.Tokens[0]), len(r))
		}
	}
	return &f, nil
}

// Batch returns the tokens row-major with their shape.
func (f *File) Batch() (tokens []int32, B, T int) {
	for _, r := range f.Tokens {
		tokens = append(tokens, r...)
	}
	return tokens, len(f.Tokens), len(f.Tokens[0])
}

// Output is one output of a fixture: the expected values, flattened, and
// how to compute them on a Net from the hidden states of the fixture's tokens.
type Output struct {
	Name string
	Want []float64
	Run  func(ctx context.Context, n engine.Net, h engine.Hidden, dst []float32) error
}

// Outputs lists the outputs the fixture holds: logits, critic_logits,
// sampler, evaluation, in that order.
func (f *File) Outputs() []Output {
	var outs []Output
	if f.Logits != nil {
		var want []float64
		for _, row := range f.Logits {
			for _, pos := range row {
				want = append(want, pos...)
			}
		}
		outs = append(outs, Output{"logits", want, func(ctx context.Context, n engine.Net, h engine.Hidden, d []float32) error {
			return n.Logits(ctx, h, d)
		}})
	}
	if f.CriticLogits != nil {
		outs = append(outs, Output{"critic_logits", flat(f.CriticLogits), func(ctx context.Context, n engine.Net, h engine.Hidden, d []float32) error {
			return n.CriticLogits(ctx, h, d)
		}})
	}
	if s := f.Sampler; s != nil {
		outs = append(outs, Output{"sampler", flat(s.Logits), func(ctx context.Context, n engine.Net, h engine.Hidden, d []float32) error {
			return n.SamplerLogits(ctx, h, s.Pos, s.Left, s.Right, d)
		}})
	}
	if f.Evaluation != nil {
		outs = append(outs, Output{"evaluation", f.Evaluation, func(ctx context.Context, n engine.Net, h engine.Hidden, d []float32) error {
			return n.JudgeEval(ctx, h, d)
		}})
	}
	return outs
}

func flat(v [][]float64) []float64 {
	var out []float64
	for _, r := range v {
		out = append(out, r...)
	}
	return out
}

// MaxAbsDiff is the largest |got[i] - want[i]| and its index (-1 when every
// difference is 0); a NaN counts as infinite.
func MaxAbsDiff(got []float32, want []float64) (float64, int) {
	d, at := 0.0, -1
	for i := range got {
		if e := math.Abs(float64(got[i]) - want[i]); e > d || math.IsNaN(e) {
			d, at = e, i
			if math.IsNaN(e) {
				return math.Inf(1), i
			}
		}
	}
	return d, at
}
