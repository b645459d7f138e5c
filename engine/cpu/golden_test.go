package cpu

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remask/remask/engine/model"
)

// goldenDir holds the PyTorch fixtures written by tools/train/make_fixtures.py
// (./build.sh goldens): NAME.safetensors plus NAME.json with the inputs and
// the outputs of the PyTorch model, computed in float64.
const goldenDir = "../../testdata/golden"

// goldenTol is the largest absolute error allowed against PyTorch. The
// fixtures are tiny (C = 32), so float32 arithmetic stays far below it.
const goldenTol = 1e-4

type golden struct {
	Model        string        `json:"model"`
	Kind         model.Kind    `json:"kind"`
	Tokens       [][]int32     `json:"tokens"`
	Logits       [][][]float64 `json:"logits"`
	CriticLogits [][]float64   `json:"critic_logits"`
	Sampler      *struct {
		Pos    []int32     `json:"pos"`
		Left   []int32     `json:"left"`
		Right  []int32     `json:"right"`
		Logits [][]float64 `json:"logits"`
	} `json:"sampler"`
	Evaluation []float64 `json:"evaluation"`
}

func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no golden fixtures in %s: run ./build.sh goldens (tools/train/make_fixtures.py) to write them", goldenDir)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var g golden
			if err := json.Unmarshal(data, &g); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			m, err := model.Load(filepath.Join(goldenDir, g.Model))
			if err != nil {
				t.Fatal(err)
			}
			if m.Config.Kind != g.Kind {
				t.Fatalf("%s says kind %q, the model file %q", file, g.Kind, m.Config.Kind)
			}
			net := mustLoad(t, m, 2)
			B := len(g.Tokens)
			if B == 0 {
				t.Fatalf("%s: no token rows", file)
			}
			T := len(g.Tokens[0])
			var tokens []int32
			for _, row := range g.Tokens {
				if len(row) != T {
					t.Fatalf("%s: token rows of different lengths %d and %d", file, T, len(row))
				}
				tokens = append(tokens, row...)
			}
			ctx := context.Background()
			h, err := net.Encode(ctx, tokens, B, T)
			if err != nil {
				t.Fatal(err)
			}

			// compare checks one output and reports its max abs error.
			checked := 0
			compare := func(what string, got []float32, want []float64) {
				t.Helper()
				checked++
				if len(got) != len(want) {
					t.Errorf("%s: %d values, golden has %d", what, len(got), len(want))
					return
				}
				d, at := maxAbsDiff(got, want)
				t.Logf("%s: max abs error %.3g over %d values", what, d, len(want))
				if d > goldenTol {
					t.Errorf("%s: max abs error %.3g > %g at index %d (got %v, PyTorch %v)", what, d, goldenTol, at, got[at], want[at])
				}
			}

			if g.Logits != nil {
				got := make([]float32, B*T*m.Config.OutputSize())
				if err := net.Logits(ctx, h, got); err != nil {
					t.Fatal(err)
				}
				var want []float64
				for _, row := range g.Logits {
					for _, pos := range row {
						want = append(want, pos...)
					}
				}
				compare("logits", got, want)
			} else if g.Kind != model.SequenceScorer {
				t.Errorf("%s: a %s fixture without logits", file, g.Kind)
			}
			if (g.CriticLogits != nil) != m.Config.HasCritic() {
				t.Errorf("%s: critic_logits present = %v, model has a critic head = %v", file, g.CriticLogits != nil, m.Config.HasCritic())
			}
			if g.CriticLogits != nil {
				got := make([]float32, B*T)
				if err := net.CriticLogits(ctx, h, got); err != nil {
					t.Fatal(err)
				}
				var want []float64
				for _, row := range g.CriticLogits {
					want = append(want, row...)
				}
				compare("critic_logits", got, want)
			}
			if (g.Sampler != nil) != m.Config.HasSampler() {
				t.Errorf("%s: sampler present = %v, model has a sampler head = %v", file, g.Sampler != nil, m.Config.HasSampler())
			}
			if s := g.Sampler; s != nil {
				got := make([]float32, len(s.Pos)*m.Config.VocabSize)
				if err := net.SamplerLogits(ctx, h, s.Pos, s.Left, s.Right, got); err != nil {
					t.Fatal(err)
				}
				var want []float64
				for _, row := range s.Logits {
					want = append(want, row...)
				}
				compare("sampler logits", got, want)
			}
			if g.Kind == model.SequenceScorer {
				got := make([]float32, B)
				if err := net.JudgeEval(ctx, h, got); err != nil {
					t.Fatal(err)
				}
				compare("evaluation", got, g.Evaluation)
			}
			if checked == 0 {
				t.Errorf("%s: no outputs to compare", file)
			}
		})
	}
}
